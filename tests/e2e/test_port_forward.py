"""`kubectl port-forward` (the real kubectl 1.32) to a pod and to `svc/NAME`, through Shoal.

One all-in-one server with the process runtime (pods share the host network, so every port
is a free one).  The pod runs Python's HTTP server over a directory holding a small page and
a 1 MiB file.  kubectl forwards to it by pod and by Service (kubectl resolves the Service to
a pod itself: selector, then the named targetPort to the container port), serves several
concurrent requests and the large file through the tunnel, reports a refused connection on a
port nothing listens on, and exits 0 when interrupted.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ShoalProcess, free_port

pytestmark = pytest.mark.e2e

BIG = 1024 * 1024 + 12345  # a little over 1 MiB: many SPDY frames, not a round number


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    base = tmp_path_factory.mktemp("portfwd")
    with ShoalProcess(base / "data", disable="proxy,dns", extra_args=("--runtime", "process", "--kubelet-port", "0",
                                                                  "--node-name", "pf-node")) as server:
        try:
            deadline = time.monotonic() + 60
            while server.kubectl("get", "node", "pf-node", check=False).returncode != 0:
                assert time.monotonic() < deadline, "the node never registered"
                time.sleep(0.3)
            server.kubectl("wait", "--for=condition=Ready", "node/pf-node", "--timeout=60s")
            yield server
        finally:
            server.kubectl("delete", "pods,services", "--all", "--wait=true", "--timeout=30s", check=False)


@pytest.fixture(scope="module")
def web(cluster: ShoalProcess, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """A pod serving ``www`` on a free port, behind Service ``web`` (port 80 → targetPort http)."""
    www = tmp_path_factory.mktemp("www")
    (www / "index.html").write_text("hello through the tunnel\n")
    payload = os.urandom(BIG)
    (www / "big.bin").write_bytes(payload)
    port = free_port()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "labels": {"app": "web"}},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "web", "image": "python",
               "command": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                           "--directory", str(www)],
               "ports": [{"name": "http", "containerPort": port}],
               "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}
    for item in (pod, service):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(item))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/web-0", "--timeout=60s")
    return port, hashlib.sha256(payload).hexdigest()


class PortForward:
    """A running `kubectl port-forward TARGET LOCAL:REMOTE`, stopped (by PID) on exit."""

    def __init__(self, cluster: ShoalProcess, target: str, remote: int | str) -> None:
        self.local = free_port()
        cache = cluster.data_dir.parent / "kubectl-cache"
        self.log_path = cluster.data_dir.parent / f"port-forward-{self.local}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cache), "port-forward",
             target, f"{self.local}:{remote}"], stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        self.cluster = cluster

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "Forwarding from" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"kubectl port-forward exited {self.proc.returncode}:\n{self.output()}\n"
                                     f"--- server log ---\n{self.cluster.log()}")
            assert time.monotonic() < deadline, f"port-forward not ready:\n{self.output()}"
            time.sleep(0.1)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.local}{path}", timeout=30) as answer:
            assert answer.status == 200
            return bytes(answer.read())

    def stop(self) -> int:
        """Interrupt kubectl as Ctrl-C does; its exit code."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            return self.proc.returncode
        finally:
            self._log.close()

    def __enter__(self) -> PortForward:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _exercise(forward: PortForward, digest: str) -> None:
    assert forward.get("/index.html") == b"hello through the tunnel\n"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        pages = list(pool.map(lambda _: forward.get("/index.html"), range(24)))
        big = pool.submit(forward.get, "/big.bin")
        more = list(pool.map(lambda _: forward.get("/index.html"), range(8)))
        body = big.result(timeout=60)
    assert pages == more[:1] * 24 and more == pages[:8]
    assert len(body) == BIG and hashlib.sha256(body).hexdigest() == digest


def test_port_forward_to_pod(cluster: ShoalProcess, web: tuple[int, str]) -> None:
    port, digest = web
    with PortForward(cluster, "pod/web-0", port) as forward:
        _exercise(forward, digest)
        assert forward.proc.poll() is None, forward.output()
    assert forward.proc.returncode == 0, forward.output()
    assert "Handling connection for" in forward.output()


def test_port_forward_to_service(cluster: ShoalProcess, web: tuple[int, str]) -> None:
    _, digest = web
    with PortForward(cluster, "svc/web", 80) as forward:
        _exercise(forward, digest)
        assert forward.proc.poll() is None, forward.output()
    assert forward.proc.returncode == 0, forward.output()


def test_port_forward_reports_a_refused_connection(cluster: ShoalProcess, web: tuple[int, str]) -> None:
    """Nothing listens on the port: kubectl prints the agent's error, and (kubectl 1.32's way
    with any error on a forwarded connection) then ends with "lost connection to pod"."""
    nothing = free_port()
    with PortForward(cluster, "pod/web-0", nothing) as forward:
        with pytest.raises(OSError):
            forward.get("/")
        forward.proc.wait(timeout=15)
    assert (f"an error occurred forwarding {forward.local} -> {nothing}: error forwarding port {nothing} to pod "
            f"default/web-0, uid ") in forward.output()
    assert f"dial tcp 127.0.0.1:{nothing}: connect: connection refused" in forward.output()
    assert "lost connection to pod" in forward.output() and forward.proc.returncode == 1


def test_port_forward_to_a_missing_pod_fails_clearly(cluster: ShoalProcess) -> None:
    result = cluster.kubectl("port-forward", "pod/nope", f"{free_port()}:80", check=False, timeout=30)
    assert result.returncode != 0
    assert 'pods "nope" not found' in result.stderr


def test_port_forward_is_in_discovery(cluster: ShoalProcess) -> None:
    resources = json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    entry = next(r for r in resources if r["name"] == "pods/portforward")
    assert entry["kind"] == "PodPortForwardOptions" and set(entry["verbs"]) == {"create", "get"}
    assert Path(cluster.kubeconfig).exists()
