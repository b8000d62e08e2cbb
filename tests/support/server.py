"""Run a real ``shoal server`` process for tests and benchmarks.

``ShoalProcess`` starts ``python -m shoal server`` on 127.0.0.1 with a free port and its own
data dir, waits for ``/readyz`` and ``kubeconfig.yaml``, and stops the process it started (by
PID, SIGTERM then SIGKILL) even when the test fails.  ``kubectl(...)`` runs the real
/usr/bin/kubectl against it with a private discovery cache.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from shoal.client.rest import ApiClient

#: Every component off but the API: for tests that drive the API themselves.
QUIET = "agent,dns,proxy,controllers,scheduler"


@contextlib.asynccontextmanager
async def connected(server: ShoalProcess) -> AsyncIterator[ApiClient]:
    """An :class:`ApiClient` on ``server`` with its admin kubeconfig, closed afterwards."""
    client = ApiClient.from_kubeconfig(server.kubeconfig)
    try:
        yield client
    finally:
        await client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ShoalProcess:
    data_dir: Path
    datastore: str = "sqlite"
    #: Components not to run; the node agent, the service proxy and cluster DNS are off unless a
    #: test asks for real containers or Services.
    disable: str = "agent,proxy,dns"
    extra_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: Run the server (and kubectl) inside this network namespace, as a node of ``shoal up``:
    #: its ClusterIPs, pod bridge and HAProxy live there, never on the host.
    netns: str | None = None

    def in_netns(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the server's network namespace (as is without one)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv] if self.netns else argv

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def token(self) -> str:
        config = yaml.safe_load(self.kubeconfig.read_text())
        return str(config["users"][0]["user"]["token"])

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    @staticmethod
    def shoal_command() -> list[str]:
        return [sys.executable, "-m", "shoal"]

    def start(self, timeout: float = 20.0) -> float:
        """Start the server; returns seconds until /readyz answered 200."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        args = [*self.shoal_command(), "server", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--datastore", self.datastore]
        if self.disable:
            args += ["--disable", self.disable]
        args += list(self.extra_args)
        began = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.in_netns(args), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        deadline = began + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shoal server exited with {self.proc.returncode}:\n{self.log()}")
            if self.netns:
                probe = subprocess.run(self.in_netns(["curl", "-sk", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}",
                                                      f"{self.url}/readyz"]), capture_output=True, text=True)
                if probe.stdout == "200" and self.kubeconfig.exists():
                    return time.perf_counter() - began
                time.sleep(0.05)
                continue
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=1)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200 and self.kubeconfig.exists():
                    return time.perf_counter() - began
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"shoal server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> ShoalProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.stop_haproxy()

    def stop_haproxy(self) -> None:
        """Stop the HAProxy master this server's proxy started, which outlives a kill -9 of the
        server (a restarted server adopts it): by the pid in its pid file, only if that pid is
        an haproxy of this data dir."""
        pid_file = self.data_dir / "agent" / "proxy" / "haproxy.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return
        if b"haproxy" in cmdline and str(self.data_dir).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cache = self.data_dir.parent / "kubectl-cache"
        cmd = self.in_netns(["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(cache), *args])
        result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                                 f"{result.stderr}\n--- server log ---\n{self.log()}")
        return result
