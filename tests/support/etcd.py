"""Run a real, single-member etcd (Debian's ``etcd-server``, ``/usr/bin/etcd``) for tests.

``start_etcd(tmp_dir)`` starts etcd on 127.0.0.1 with a free client port and a free peer
port, its data and log under ``tmp_dir``, waits until ``/health`` answers, and returns an
:class:`EtcdProcess`.  ``stop()`` (or leaving the ``with`` block) kills that process by PID.
A missing binary or an etcd that does not come up raises :class:`EtcdStartError`: tests that
need etcd fail, they never skip.

    with start_etcd(tmp_path) as etcd:
        store = open_store(etcd.url, data_dir)   # etcd.url == "etcd://127.0.0.1:PORT"
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["EtcdProcess", "EtcdStartError", "find_etcd", "free_port", "start_etcd"]

DEFAULT_BINARY = "/usr/bin/etcd"


class EtcdStartError(RuntimeError):
    """etcd is missing or did not become healthy."""


def find_etcd() -> str:
    """The etcd binary: ``$SHOAL_ETCD_BINARY``, ``/usr/bin/etcd`` or ``etcd`` on PATH."""
    override = os.environ.get("SHOAL_ETCD_BINARY")
    for candidate in (override, DEFAULT_BINARY, shutil.which("etcd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EtcdStartError("etcd not found (apt-get install etcd-server); these tests need a real etcd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class EtcdProcess:
    """A running etcd member; ``url`` is the ``--datastore`` value for Shoal."""

    process: subprocess.Popen[bytes]
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def endpoint(self) -> str:
        """The client URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        """The datastore string, ``etcd://127.0.0.1:PORT``."""
        return f"etcd://127.0.0.1:{self.client_port}"

    def healthy(self) -> bool:
        try:
            reply = httpx.get(f"{self.endpoint}/health", timeout=1.0)
        except httpx.TransportError:
            return False
        return reply.status_code == 200 and reply.json().get("health") == "true"

    def wipe(self) -> None:
        """Delete every key (revisions and the compacted revision stay as they are)."""
        reply = httpx.post(
            f"{self.endpoint}/v3/kv/deleterange", json={"key": "AA==", "range_end": "AA=="}, timeout=10.0
        )
        reply.raise_for_status()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate etcd (SIGTERM, then SIGKILL after 5 s) and reap it.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL etcd at once (a crash), and reap it."""
        self._stopped = True
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> EtcdProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _launch(binary: str, tmp_dir: Path, name: str) -> EtcdProcess:
    client, peer = free_port(), free_port()
    data_dir = tmp_dir / f"{name}-data"
    log_path = tmp_dir / f"{name}-{client}.log"
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    args = [
        binary,
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        "--initial-cluster-state=new",
        "--logger=zap",
        "--log-level=warn",
        f"--log-outputs={log_path}",
    ]
    with open(log_path.with_suffix(".out"), "wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    return EtcdProcess(process, client, peer, data_dir, log_path)


def start_etcd(tmp_dir: Path, *, name: str = "shoal-test", timeout: float = 20.0) -> EtcdProcess:
    """Start etcd with its files under ``tmp_dir`` and wait until it is healthy.

    A port taken between picking and binding makes etcd exit; that is retried twice with
    new ports.  On any failure the process is killed before the error is raised.
    """
    binary = find_etcd()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for _attempt in range(3):
        etcd = _launch(binary, tmp_dir, name)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if etcd.process.poll() is not None:
                    break
                if etcd.healthy():
                    return etcd
                time.sleep(0.05)
        except BaseException:
            etcd.kill()
            raise
        code = etcd.process.poll()
        etcd.kill()
        problems.append(f"exit code {code}: {etcd.log_tail()}")
        if code is None:
            break  # still running but never healthy: retrying will not help
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
    raise EtcdStartError(f"etcd did not become healthy within {timeout}s:\n" + "\n---\n".join(problems))
