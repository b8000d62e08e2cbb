"""A bounded connection flood against a TLS server, for the connection-limit tests and bench.

:class:`Flood` opens ``count`` TCP connections to ``127.0.0.1:port`` from the given source
addresses (all of 127.0.0.0/8 is local on Linux, so ``127.0.0.2``, ``127.0.0.3``, ... spread a
flood over client addresses), one of three kinds:

* ``idle``: completes the TLS handshake, then sends nothing;
* ``slow``: completes the TLS handshake, then sends a request's headers one byte every
  ``slow_interval`` seconds (slowloris), never finishing them;
* ``tcp``: connects and never starts TLS.

It runs in a thread with one ``selectors`` loop (plain non-blocking ``ssl.SSLSocket``\\ s:
about 30 KiB each on the client side, where asyncio would allocate 256 KiB), keeps at most
``in_flight`` handshakes going at once, and records for every connection when it was
established and when the server closed it (EOF, reset or TLS alert).  Everything is
bounded: :meth:`Flood.start` opens each connection at most once, the thread stops at
``stop()`` or after ``max_seconds``, and ``stop()`` closes every socket it opened.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

SLOW_REQUEST = (b"GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"User-Agent: slowloris\r\n" + b"X-Padding: " + b"a" * 4000 + b"\r\n\r\n")


def raise_own_fd_limit() -> int:
    """Lift this process's soft open-file limit to the hard one (the flood needs a socket each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def sources(count: int, first: int = 2) -> list[str]:
    """``count`` loopback source addresses from ``127.0.0.<first>`` on."""
    return [f"127.0.{(first + i) // 250}.{(first + i) % 250 + 1}" if first + i >= 250 else f"127.0.0.{first + i}"
            for i in range(count)]


@dataclass(eq=False)
class Conn:
    kind: str
    source: str
    sock: socket.socket | ssl.SSLSocket
    state: str = "connecting"  # connecting | handshake | open | closed | failed
    opened_at: float = 0.0
    established_at: float | None = None
    closed_at: float | None = None
    sent: int = 0
    next_send: float = 0.0


@dataclass
class Flood:
    port: int
    count: int
    kinds: dict[str, int]  # kind -> share of count, e.g. {"idle": 9, "slow": 1}
    addresses: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    slow_interval: float = 1.0
    in_flight: int = 200
    max_seconds: float = 120.0
    conns: list[Conn] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)
        self._lock = threading.Lock()
        self.refused_connects = 0
        plan: list[str] = []
        total = sum(self.kinds.values())
        for kind, share in self.kinds.items():
            plan += [kind] * (self.count * share // total)
        plan += [next(iter(self.kinds))] * (self.count - len(plan))
        # Interleave the kinds so each source address gets a mix.
        self._plan = [plan[i] for i in sorted(range(len(plan)), key=lambda i: (i * 7919) % len(plan))]

    # -- views (thread-safe snapshots) ------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            result: dict[str, int] = {}
            for conn in self.conns:
                result[conn.state] = result.get(conn.state, 0) + 1
            result["refused_connects"] = self.refused_connects
            result["planned_left"] = len(self._plan)
            return result

    def snapshot(self) -> list[Conn]:
        with self._lock:
            return list(self.conns)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.sock.close()
                if conn.state not in ("closed", "failed"):
                    conn.state = "dropped"
        with contextlib.suppress(OSError):
            self._selector.close()

    def __enter__(self) -> Flood:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        ends = time.monotonic() + self.max_seconds
        pending = 0
        index = 0
        while not self._stop.is_set() and time.monotonic() < ends:
            while self._plan and pending < self.in_flight:
                kind = self._plan.pop()
                pending += self._open(kind, self.addresses[index % len(self.addresses)])
                index += 1
            for key, _ in self._selector.select(timeout=0.05):
                conn: Conn = key.data
                before = conn.state
                self._step(conn)
                if before in ("connecting", "handshake") and conn.state not in ("connecting", "handshake"):
                    pending -= 1
            self._send_slow()

    def _open(self, kind: str, source: str) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind((source, 0))
            code = sock.connect_ex(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            with self._lock:
                self.refused_connects += 1
            return 0
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            with self._lock:
                self.refused_connects += 1
            return 0
        conn = Conn(kind, source, sock, opened_at=time.monotonic())
        with self._lock:
            self.conns.append(conn)
        self._selector.register(sock, selectors.EVENT_WRITE, conn)
        return 1

    def _step(self, conn: Conn) -> None:
        now = time.monotonic()
        try:
            if conn.state == "connecting":
                error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, "connect failed")
                if conn.kind == "tcp":
                    self._established(conn, now)
                    return
                self._selector.unregister(conn.sock)
                conn.sock = self._context.wrap_socket(conn.sock, do_handshake_on_connect=False)
                conn.state = "handshake"
                self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
            if conn.state == "handshake":
                assert isinstance(conn.sock, ssl.SSLSocket)
                try:
                    conn.sock.do_handshake()
                except ssl.SSLWantReadError:
                    self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
                    return
                except ssl.SSLWantWriteError:
                    self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
                    return
                self._established(conn, now)
                return
            # open: readable means the server sent something: a session ticket, or its close
            data = conn.sock.recv(65536)
            if not data:
                self._closed(conn, now, "closed")
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except (OSError, ssl.SSLError):
            self._closed(conn, now, "closed" if conn.state == "open" else "failed")

    def _established(self, conn: Conn, now: float) -> None:
        with self._lock:
            conn.state = "open"
            conn.established_at = now
            conn.next_send = now
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _closed(self, conn: Conn, now: float, state: str) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
        with self._lock:
            conn.state = state
            conn.closed_at = now

    def _send_slow(self) -> None:
        now = time.monotonic()
        for conn in self.conns:
            if conn.kind != "slow" or conn.state != "open" or conn.next_send > now:
                continue
            try:
                conn.sock.send(SLOW_REQUEST[conn.sent % (len(SLOW_REQUEST) - 4):][:1])
            except (ssl.SSLWantWriteError, BlockingIOError):
                continue
            except (OSError, ssl.SSLError):
                self._closed(conn, now, "closed")
                continue
            conn.sent += 1
            conn.next_send = now + self.slow_interval
