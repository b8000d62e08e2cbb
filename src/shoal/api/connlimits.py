"""The API server's connection limits and the book that enforces the caps.

:class:`ConnectionLimits` holds every timeout and cap (the defaults are production values;
tests pass short ones).  :class:`ConnectionBook` counts the open connections per client
address and in all, and decides at each accept, before any TLS work:

* under both caps: admitted;
* at a cap: the oldest connection *not inside a request* (still before or in its TLS
  handshake, reading request headers, or idle between requests) of that address, or of all
  for the total cap, is aborted to make room, and the new one is admitted.  A flood can
  therefore cycle idle connections but cannot lock a new client out, and a request in
  progress (a watch, a log or exec stream) is never cut;
* at a cap with nothing to evict: refused (the caller aborts it at once; logged at most
  once a minute).

Invariants: ``total`` and ``per_address`` count the admitted connections not yet released;
an evicted connection is released at once (its socket closes a loop iteration later);
``release`` of an entry already released is a no-op.  The idle dicts keep insertion order
(oldest first) and hold exactly the admitted entries not marked busy.

When the number of open connections has fallen by ``TRIM_AFTER_CLOSES`` from its high
mark, the book releases the heap (:meth:`shoal.api.procres.Heap.release`: Python's free
lists pin its small-object arenas, glibc keeps freed pages until trimmed) once the closes
have stopped for ``TRIM_DELAY`` seconds (at most ``TRIM_MAX_DEFER`` after the fall), and
shrinks its own tables, which keep the size of their high mark; a steady churn at a
constant count (evictions under a flood) never trims.  The connections' objects are freed
by reference counting (the protocols break their reference cycles, and the socket
transport's, when the connection is lost), not by the collector: ``shoal server`` freezes
its heap (``gc.freeze``) 10 s after start, and cyclic garbage frozen there would never be
collected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Protocol

from shoal.api import procres

log = logging.getLogger(__name__)

#: Files kept free beside the connections and the accept batch: the store, logs, the
#: components' own clients.
FD_RESERVE = 128
#: Trim once the open connections fell this much from their high mark ...
TRIM_AFTER_CLOSES = 256
#: ... and no connection closed for this long (seconds), or this long after the first close.
TRIM_DELAY = 1.0
TRIM_MAX_DEFER = 5.0
#: How often a refused connection is logged at most (seconds).
REFUSAL_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    """Timeouts in seconds and caps on connections (see :mod:`shoal.api.serving`)."""

    #: From accept to the end of the TLS handshake.
    tls_handshake_timeout: float = 10.0
    #: From the handshake (first request) or the request's first byte (next ones) to the end
    #: of its headers; data arriving does not extend it.  kube-apiserver: ReadHeaderTimeout.
    header_timeout: float = 32.0
    #: A keep-alive connection waiting for its next request.  kube-apiserver: IdleTimeout.
    idle_timeout: float = 90.0
    #: A TLS close waits this long for the peer's close_notify before dropping the socket.
    tls_shutdown_timeout: float = 5.0
    #: Concurrent connections in all; the open-file limit minus FD_RESERVE caps it further.
    max_connections: int = 8192
    #: Concurrent connections from one client IP address.
    per_address: int = 1024
    #: Request line and headers of one request (kube-apiserver: MaxHeaderBytes); else 431.
    max_header_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("tls_handshake_timeout", "header_timeout", "idle_timeout", "tls_shutdown_timeout"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        for name in ("max_connections", "per_address", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")

    def within_fd_limit(self, fd_limit: int, backlog: int) -> ConnectionLimits:
        """These limits with ``max_connections`` lowered to fit ``fd_limit`` open files.

        asyncio accepts up to ``backlog`` sockets in one go before any is admitted or
        refused, so that many descriptors must stay free beside the connections.
        """
        room = max(1, fd_limit - backlog - FD_RESERVE)
        if self.max_connections <= room:
            return self
        log.warning("open-file limit %d: at most %d connections instead of %d", fd_limit, room,
                    self.max_connections)
        return replace(self, max_connections=room)


class Entry(Protocol):
    """What the book keeps per connection."""

    address: str
    counted: bool

    def abort(self) -> None: ...


class ConnectionBook:
    """Counts connections per address and in all; knows which may be closed to make room."""

    def __init__(self, limits: ConnectionLimits, loop: asyncio.AbstractEventLoop,
                 heap: procres.Heap | None = None) -> None:
        self.limits = limits
        self.loop = loop
        self.heap = heap or procres.Heap()
        self.total = 0
        self.per_address: dict[str, int] = {}
        #: Every admitted entry not yet released.
        self.live: set[Entry] = set()
        self._idle: dict[Entry, None] = {}
        self._idle_by_address: dict[str, dict[Entry, None]] = {}
        self.refused = 0
        self.evicted = 0
        self._refusal_logged = -REFUSAL_LOG_INTERVAL
        self._high = 0
        self._first_close = 0.0
        self._last_close = 0.0
        self._trim: asyncio.TimerHandle | None = None

    def admit(self, entry: Entry) -> bool:
        """Count ``entry`` in, evicting an idle connection at a cap; False: refused."""
        address = entry.address
        if (self.per_address.get(address, 0) >= self.limits.per_address
                and not self._evict_first(self._idle_by_address.get(address, {}))):
            return self._refuse(f"{self.limits.per_address} connections from {address}")
        if self.total >= self.limits.max_connections and not self._evict_first(self._idle):
            return self._refuse(f"{self.limits.max_connections} connections in all")
        entry.counted = True
        self.live.add(entry)
        self.total += 1
        self._high = max(self._high, self.total)
        self.per_address[address] = self.per_address.get(address, 0) + 1
        self.idle(entry)
        return True

    def busy(self, entry: Entry) -> None:
        """``entry`` is inside a request: never closed to make room."""
        self._idle.pop(entry, None)
        by_address = self._idle_by_address.get(entry.address)
        if by_address is not None:
            by_address.pop(entry, None)
            if not by_address:
                del self._idle_by_address[entry.address]

    def idle(self, entry: Entry) -> None:
        """``entry`` waits (for its handshake or next request): the newest eviction candidate."""
        if not entry.counted:
            return
        self.busy(entry)
        self._idle[entry] = None
        self._idle_by_address.setdefault(entry.address, {})[entry] = None

    def release(self, entry: Entry) -> None:
        if not entry.counted:
            return
        entry.counted = False
        self.live.discard(entry)
        self.busy(entry)
        self.total -= 1
        left = self.per_address[entry.address] - 1
        if left:
            self.per_address[entry.address] = left
        else:
            del self.per_address[entry.address]
        self._closed()

    def abort_all(self, *, idle_only: bool = False) -> None:
        """Abort the connections (only those not inside a request with ``idle_only``)."""
        for entry in list(self._idle if idle_only else self.live):
            entry.abort()

    def _evict_first(self, candidates: dict[Entry, None]) -> bool:
        for entry in candidates:
            self.release(entry)  # counted out now; its connection_lost comes later
            entry.abort()
            self.evicted += 1
            return True
        return False

    def _refuse(self, why: str) -> bool:
        self.refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL:
            self._refusal_logged = now
            log.warning("refusing connections: %s, none idle (%d refused so far)", why, self.refused)
        return False

    # -- giving memory back ------------------------------------------------------------------
    def _closed(self) -> None:
        now = self.loop.time()
        self._last_close = now
        if self._high - self.total >= TRIM_AFTER_CLOSES and self._trim is None:
            self._first_close = now
            self._trim = self.loop.call_later(TRIM_DELAY, self._maybe_trim)

    def _maybe_trim(self) -> None:
        now = self.loop.time()
        quiet_at = self._last_close + TRIM_DELAY
        if now < quiet_at and now < self._first_close + TRIM_MAX_DEFER:
            self._trim = self.loop.call_later(quiet_at - now, self._maybe_trim)
            return
        self._trim = None
        began = time.perf_counter()
        # Fresh tables: a dict or set keeps the size of its most entries after they leave.
        self.live = set(self.live)
        self._idle = dict(self._idle)
        self._idle_by_address = {address: dict(entries) for address, entries in self._idle_by_address.items()}
        self.per_address = dict(self.per_address)
        self.heap.release()
        log.info("connections down from %d to %d: released the heap in %.1f ms", self._high, self.total,
                 (time.perf_counter() - began) * 1000)
        self._high = self.total

    def close(self) -> None:
        """Cancel the pending trim (the server stops)."""
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
