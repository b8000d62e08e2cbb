"""Probes against real sockets on 127.0.0.1: handlers, thresholds, startup gating, on a fake clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from shoal.agent.probes import ProbeManager, RunningContainer, resolve_port, run_probe
from shoal.agent.runtime.process import ProcessDriver
from shoal.kube.clock import FakeClock
from shoal.kube.objects import Obj

START = 1_700_000_000.0


class HttpServer:
    """A tiny HTTP server whose answer code the test sets; it remembers request headers."""

    def __init__(self) -> None:
        self.code = 200
        self.hits = 0
        self.headers: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.hits += 1
        self.headers = head.decode().split("\r\n")
        writer.write(f"HTTP/1.1 {self.code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    srv = HttpServer()
    await srv.start()
    yield srv
    await srv.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_resolve_port() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert [resolve_port(port, container) for port in (80, "81", "http")] == [80, 81, 8080]
    with pytest.raises(ValueError, match="'admin' not found"):
        resolve_port("admin", container)


async def test_handlers(server: HttpServer, tmp_path: Path) -> None:
    driver = ProcessDriver(tmp_path)
    container = {"name": "c", "ports": [{"name": "web", "containerPort": server.port}]}
    async with httpx.AsyncClient(trust_env=False) as http:
        async def probe(spec: Obj) -> tuple[bool, str]:
            outcome = await run_probe(spec, container=container, container_id="none", pod_ip="127.0.0.1",
                                      driver=driver, http=http)
            return outcome.success, outcome.message

        get = {"httpGet": {"path": "healthz", "port": "web", "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}
        assert await probe(get) == (True, "")
        assert server.headers[0] == "GET /healthz HTTP/1.1"
        assert "X-Probe: yes" in server.headers and "User-Agent: kube-probe/1.32" in server.headers
        server.code = 302
        assert (await probe(get))[0]
        server.code = 500
        assert await probe(get) == (False, "HTTP probe failed with statuscode: 500")
        closed = _closed_port()
        assert await probe({"httpGet": {"path": "/", "port": closed}}) == (
            False, f'Get "http://127.0.0.1:{closed}/": connect: connection refused')
        assert await probe({"tcpSocket": {"port": server.port}}) == (True, "")
        assert await probe({"tcpSocket": {"port": closed}}) == (
            False, f"dial tcp 127.0.0.1:{closed}: connect: connection refused")
        assert await probe({"grpc": {"port": 1}}) == (False, "grpc probes are not supported by shoal")
        assert await probe({"httpGet": {"port": "nope"}}) == (False, "port 'nope' not found in container 'c'")


class Harness:
    def __init__(self, tmp_path: Path, pod: Obj) -> None:
        self.clock = FakeClock(START)
        self.changes: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.pod = pod
        self.manager = ProbeManager(ProcessDriver(tmp_path), self.clock, on_change=self.changes.append,
                                    record=self._record)

    async def _record(self, pod: Obj, container: str, type_: str, reason: str, message: str) -> None:
        self.events.append((container, reason, message))

    async def tick(self, seconds: float, server: HttpServer, hits: int) -> None:
        """Advance the clock and wait until the server saw ``hits`` requests in total."""
        await _until(lambda: self.clock.sleepers > 0, "a probe worker to sleep")
        self.clock.advance(seconds)
        await _until(lambda: server.hits >= hits, f"{hits} probe requests")
        await asyncio.sleep(0.05)  # let the worker record the result


def _pod(port: int, **probes: Obj) -> Obj:
    return {"metadata": {"uid": "u1", "name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "app", **probes}]}}


async def test_readiness_thresholds(server: HttpServer, tmp_path: Path) -> None:
    probe = {"httpGet": {"path": "/", "port": server.port}, "initialDelaySeconds": 5, "periodSeconds": 10,
             "successThreshold": 2, "failureThreshold": 2, "timeoutSeconds": 1}
    h = Harness(tmp_path, _pod(server.port, readinessProbe=probe))
    h.manager.update_pod(h.pod, "127.0.0.1", {"app": RunningContainer("c1", START)})
    try:
        assert not h.manager.ready("u1", "app", "c1")
        await h.tick(5, server, 1)
        assert not h.manager.ready("u1", "app", "c1")  # one success of two
        await h.tick(10, server, 2)
        assert h.manager.ready("u1", "app", "c1") and h.changes == ["u1"]
        server.code = 503
        await h.tick(10, server, 3)
        assert h.manager.ready("u1", "app", "c1")  # one failure of two
        assert h.events == [("app", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503")]
        await h.tick(10, server, 4)
        assert not h.manager.ready("u1", "app", "c1") and h.changes == ["u1", "u1"]
        assert not h.manager.ready("u1", "app", "other-container-id")
        assert h.manager.kill_reason("u1", "app", "c1") is None
    finally:
        await h.manager.close()


async def test_liveness_failure_asks_for_a_kill_and_stops(server: HttpServer, tmp_path: Path) -> None:
    probe = {"httpGet": {"path": "/", "port": server.port}, "periodSeconds": 3, "failureThreshold": 2}
    h = Harness(tmp_path, _pod(server.port, livenessProbe=probe))
    server.code = 500
    h.manager.update_pod(h.pod, "127.0.0.1", {"app": RunningContainer("c1", START)})
    try:
        await _until(lambda: server.hits >= 1, "the first liveness probe")
        await asyncio.sleep(0.05)
        assert h.manager.kill_reason("u1", "app", "c1") is None  # initial result is success
        await h.tick(3, server, 2)
        assert h.manager.kill_reason("u1", "app", "c1") == "Container app failed liveness probe, will be restarted"
        assert h.manager.ready("u1", "app", "c1")  # no readiness probe: ready while running
        assert h.clock.sleepers == 0  # the worker stopped probing
        # The restarted container gets a fresh worker, which starts from success again.
        server.code = 200
        h.manager.update_pod(h.pod, "127.0.0.1", {"app": RunningContainer("c2", h.clock.now())})
        await _until(lambda: server.hits >= 3, "a probe of the new container")
        assert h.manager.kill_reason("u1", "app", "c2") is None
    finally:
        await h.manager.close()


async def test_startup_probe_gates_liveness(server: HttpServer, tmp_path: Path) -> None:
    startup = {"tcpSocket": {"port": server.port}, "periodSeconds": 1, "failureThreshold": 30}
    live = {"httpGet": {"path": "/live", "port": server.port}, "periodSeconds": 1}
    h = Harness(tmp_path, _pod(server.port, startupProbe=startup, livenessProbe=live))
    closed = _closed_port()
    h.pod["spec"]["containers"][0]["startupProbe"] = {**startup, "tcpSocket": {"port": closed}}
    h.manager.update_pod(h.pod, "127.0.0.1", {"app": RunningContainer("c1", START)})
    try:
        await _until(lambda: any(e[1] == "Unhealthy" for e in h.events), "a failed startup probe")
        assert not h.manager.started("u1", "app", "c1") and not h.manager.ready("u1", "app", "c1")
        assert server.hits == 0  # liveness does not run before startup succeeded
        # The spec changes (a new pod object with a working startup probe): workers restart.
        h.pod = _pod(server.port, startupProbe=startup, livenessProbe=live)
        h.manager.update_pod(h.pod, "127.0.0.1", {"app": RunningContainer("c1", START)})
        await _until(lambda: h.manager.started("u1", "app", "c1"), "the startup probe to pass")
        await h.tick(1, server, 1)
        assert server.headers[0] == "GET /live HTTP/1.1"
    finally:
        await h.manager.close()


async def test_previous_readiness_is_kept_for_adopted_containers(server: HttpServer, tmp_path: Path) -> None:
    probe = {"httpGet": {"path": "/", "port": server.port}, "initialDelaySeconds": 60}
    h = Harness(tmp_path, _pod(server.port, readinessProbe=probe))
    h.manager.update_pod(h.pod, "127.0.0.1", {"app": RunningContainer("c1", START, was_ready=True)})
    try:
        assert h.manager.ready("u1", "app", "c1")
        assert not h.manager.ready("u1", "app", "c0")  # another instance starts unready
        await _until(lambda: h.clock.sleepers == 1, "the worker to wait for its initial delay")
        h.manager.remove_pod("u1")
        await _until(lambda: h.clock.sleepers == 0, "the worker to stop")
    finally:
        await h.manager.close()
