"""The service proxy with a real HAProxy, in a network namespace the test makes.

The API is the in-process harness (real ApiServer, SQLite); the proxy runs in the test's event
loop with HAProxy, the ClusterIPs and the backends inside the namespace ``shoal-pt-…`` (deleted
after, with every process the test started).  Backends are Python HTTP servers on 127.0.0.1x
addresses of the namespace's loopback, answering their own name; the Services are selectorless
with EndpointSlices the tests write, as a user managing endpoints does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.client import proxystatus, resources
from shoal.client.rest import ApiClient
from shoal.proxy.config import ProxyConfig
from shoal.proxy.proxy import ServiceProxy
from tests.support.api_harness import ApiHarness
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[3]
BACKEND = """
import http.server, sys
name = sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", str(len(name))); self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((sys.argv[2], int(sys.argv[3])), H).serve_forever()
"""


@pytest.fixture
def netns() -> Iterator[str]:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed (scripts/setup.sh installs it): the proxy tests need it")
    name = f"shoal-pt-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(netns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


class Backends:
    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, ip: str, port: int = 8080) -> None:
        """Start a backend and wait until it answers (as a pod is an endpoint only once ready)."""
        self.procs[name] = subprocess.Popen(in_ns(self.netns, sys.executable, "-c", BACKEND, name, ip, str(port)))
        deadline = time.monotonic() + 10
        while _curl(self.netns, f"http://{ip}:{port}/") != (200, name):
            assert time.monotonic() < deadline, f"backend {name} did not start"
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@contextlib.asynccontextmanager
async def running_proxy(client: ApiClient, netns: str, run_dir: Path) -> AsyncIterator[ServiceProxy]:
    proxy = ServiceProxy(client, ProxyConfig(node_name="n1", run_dir=run_dir, netns=netns,
                                                  metrics_address="127.0.0.1:0"))
    stop = asyncio.Event()
    task = asyncio.create_task(proxy.run(stop))
    try:
        await eventually(lambda: _started(proxy, task), what="HAProxy to start")
        yield proxy
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _started(proxy: ServiceProxy, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return proxy.haproxy.admin_socket.exists() and proxy.haproxy._pid is not None


def service(name: str, *, port: int = 80, port_name: str = "http", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}], **spec}}


def endpoint_slice(service_name: str, endpoints: list[tuple[str, dict[str, bool]]], *, port: int = 8080,
                   port_name: str = "http") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-x", "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": c, "nodeName": "n1"} for ip, c in endpoints]}


READY = {"ready": True, "serving": True, "terminating": False}
TERMINATING = {"ready": False, "serving": True, "terminating": True}


async def curl(netns: str, url: str) -> tuple[int, str]:
    """One request from inside the namespace (off the event loop, which runs the proxy)."""
    return await asyncio.to_thread(_curl, netns, url)


def _curl(netns: str, url: str) -> tuple[int, str]:
    out = subprocess.run(in_ns(netns, "curl", "-s", "-m", "3", "-w", "\n%{http_code}", url),
                         capture_output=True, text=True, timeout=10)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


def start_load(netns: str, url: str, *, seconds: float, rate: float = 50.0) -> subprocess.Popen[str]:
    return subprocess.Popen(in_ns(netns, sys.executable, "-m", "tests.support.load", url, "--rate", str(rate),
                                  "--seconds", str(seconds)),
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


async def load_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    result: dict[str, Any] = json.loads(out)
    print(f"load: {result['sent']} requests, {result['failed']} failed, by backend {result['bodies']}")
    return result


async def test_clusterip_and_nodeport_follow_endpoints_without_reloads(tmp_path: Path, netns: str) -> None:
    backends = Backends(netns)
    async with ApiHarness(tmp_path / "api") as api:
        client = await api.client()
        try:
            for i in (1, 2, 3):
                backends.start(f"b{i}", f"127.0.0.1{i}")
            svc = await client.create(resources.SERVICES, service("web", type="NodePort"), "default")
            ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
            await client.create(resources.ENDPOINTSLICES, endpoint_slice("web", [("127.0.0.11", READY)]), "default")
            async with running_proxy(client, netns, tmp_path / "proxy") as proxy:
                assert await curl(netns, f"http://{ip}/") == (200, "b1")
                assert await curl(netns, f"http://127.0.0.1:{node_port}/") == (200, "b1")
                reloads = proxy.haproxy.reloads
                load = start_load(netns, f"http://{ip}/", seconds=6)
                await asyncio.sleep(1)
                await client.patch(resources.ENDPOINTSLICES, "web-x", endpoint_slice(
                    "web", [("127.0.0.11", READY), ("127.0.0.12", READY), ("127.0.0.13", READY)]), "default")
                await asyncio.sleep(1.5)
                backends.kill("b2")  # dies with nobody told: health checks and retries cover it
                await asyncio.sleep(1.5)
                # b1 terminating: drained, gets nothing new
                await client.patch(resources.ENDPOINTSLICES, "web-x", endpoint_slice(
                    "web", [("127.0.0.11", TERMINATING), ("127.0.0.12", READY), ("127.0.0.13", READY)]), "default")
                drained_at = time.monotonic()
                result = await load_result(load)
                assert result["failed"] == 0, result["errors"]
                assert {"b1", "b3"} <= set(result["bodies"])
                assert proxy.haproxy.reloads == reloads, "endpoint changes must not reload HAProxy"
                assert proxy.runtime_updates >= 2
                after = [(await curl(netns, f"http://{ip}/"))[1] for _ in range(6)]
                assert set(after) == {"b3"}, (after, time.monotonic() - drained_at)
                lease = await client.get(resources.LEASES, proxystatus.proxy_lease_name("n1"), "kube-node-lease")
                assert int(lease["metadata"]["annotations"][proxystatus.SYNCED_REVISION]) > 0
                assert proxy.metrics_bound is not None
                async with httpx.AsyncClient() as http:
                    text = (await http.get("http://{}:{}/metrics".format(*proxy.metrics_bound))).text
                labels = 'namespace="default",port="http",service="web"'
                assert f"shoal_proxy_requests_total{{{labels}}}" in text
                requests = float(text.split(f"shoal_proxy_requests_total{{{labels}}} ")[1].split()[0])
                assert requests >= 6
                assert f'shoal_proxy_responses_total{{code="2xx",{labels}}}' in text
                b3 = 'endpoint="127.0.0.13:8080",namespace="default",pod="",port="http",service="web"'
                assert f"shoal_proxy_endpoint_up{{{b3}}} 1.0" in text
                assert "shoal_proxy_sync_seconds_count" in text
        finally:
            backends.close()


async def test_reload_for_a_new_service_drops_no_request_and_deletion_stops_listening(
        tmp_path: Path, netns: str) -> None:
    backends = Backends(netns)
    async with ApiHarness(tmp_path / "api") as api:
        client = await api.client()
        try:
            backends.start("b1", "127.0.0.11")
            backends.start("b2", "127.0.0.12")
            svc = await client.create(resources.SERVICES, service("web"), "default")
            ip = svc["spec"]["clusterIP"]
            await client.create(resources.ENDPOINTSLICES, endpoint_slice(
                "web", [("127.0.0.11", READY), ("127.0.0.12", READY)]), "default")
            async with running_proxy(client, netns, tmp_path / "proxy") as proxy:
                load = start_load(netns, f"http://{ip}/", seconds=5)
                await asyncio.sleep(1)
                other = await client.create(resources.SERVICES, service("other", port=81), "default")
                await eventually(lambda: proxy.haproxy.reloads >= 1, what="a reload")
                empty = await curl(netns, f"http://{other['spec']['clusterIP']}:81/")
                await client.delete(resources.SERVICES, "other", "default")
                result = await load_result(load)
                assert result["failed"] == 0, result["errors"]
                assert empty[0] == 503, "a Service without endpoints answers 503 at once"
                addr = other["spec"]["clusterIP"]
                await eventually(lambda: addr not in subprocess.run(
                    ["ip", "-n", netns, "addr", "show", "lo"], capture_output=True, text=True).stdout,
                                 what="the deleted Service's ClusterIP to leave lo")
                code, _ = await curl(netns, f"http://{addr}:81/")
                assert code == 0, "nothing listens on a deleted Service's address"
        finally:
            backends.close()


UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5353))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(sys.argv[1].encode(), peer)
"""
UDP_CLIENT = """
import collections, socket, sys
seen = collections.Counter()
for _ in range(int(sys.argv[3])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
    try:
        seen[s.recvfrom(100)[0].decode()] += 1
    except OSError as exc:
        seen[type(exc).__name__] += 1
    s.close()
print(dict(seen))
"""


def start_udp_echoes(netns: str, ips: list[str]) -> list[subprocess.Popen[bytes]]:
    """UDP servers answering their own address, on port 5353."""
    return [subprocess.Popen(in_ns(netns, sys.executable, "-c", UDP_ECHO, ip)) for ip in ips]


async def udp_answers(netns: str, ip: str, port: int, count: int = 20) -> dict[str, int]:
    out = await asyncio.to_thread(subprocess.run, in_ns(netns, sys.executable, "-c", UDP_CLIENT, ip, str(port),
                                                        str(count)), capture_output=True, text=True, timeout=60)
    answers: dict[str, int] = json.loads(out.stdout.replace("'", '"'))
    return answers


async def test_udp_ports_are_dnat_to_ready_endpoints(tmp_path: Path, netns: str) -> None:
    echoes = start_udp_echoes(netns, ["127.0.0.11", "127.0.0.12"])
    async with ApiHarness(tmp_path / "api") as api:
        client = await api.client()
        try:
            udp = service("dns", port=53, port_name="dns")
            udp["spec"]["ports"][0]["protocol"] = "UDP"
            svc = await client.create(resources.SERVICES, udp, "default")
            ip = svc["spec"]["clusterIP"]
            piece = endpoint_slice("dns", [("127.0.0.11", READY), ("127.0.0.12", READY)], port=5353, port_name="dns")
            piece["ports"][0]["protocol"] = "UDP"
            await client.create(resources.ENDPOINTSLICES, piece, "default")
            async with running_proxy(client, netns, tmp_path / "proxy") as proxy:
                await eventually(lambda: proxy.udp._applied, what="the UDP rules")
                await eventually(lambda: udp_answers(netns, ip, 53, 1), what="an answer")  # echoes started
                answers = await udp_answers(netns, ip, 53)
                assert set(answers) == {"127.0.0.11", "127.0.0.12"}, answers
                piece["endpoints"][1]["conditions"] = TERMINATING
                await client.update(resources.ENDPOINTSLICES, {**piece, "metadata": {
                    **piece["metadata"], "namespace": "default"}})
                await eventually(lambda: "127.0.0.12" not in (proxy.udp._applied or ""), what="the nft update")
                assert await udp_answers(netns, ip, 53, 10) == {"127.0.0.11": 10}
                assert proxy.haproxy.reloads == 0, "UDP changes never reload HAProxy"
            tables = (await asyncio.to_thread(subprocess.run, in_ns(netns, "nft", "list", "tables"),
                                              capture_output=True, text=True)).stdout
            assert proxy.udp.table not in tables, "the proxy's table is gone after it stopped"
        finally:
            for echo in echoes:
                echo.kill()
                echo.wait(5)


async def test_client_ip_affinity_sticks_and_sctp_ports_get_an_event(tmp_path: Path, netns: str) -> None:
    backends = Backends(netns)
    async with ApiHarness(tmp_path / "api") as api:
        client = await api.client()
        try:
            for i in (1, 2, 3):
                backends.start(f"b{i}", f"127.0.0.1{i}")
            sticky = await client.create(resources.SERVICES, service("sticky", sessionAffinity="ClientIP"), "default")
            await client.create(resources.ENDPOINTSLICES, endpoint_slice(
                "sticky", [(f"127.0.0.1{i}", READY) for i in (1, 2, 3)]), "default")
            sctp = service("sctp", port_name="sig")
            sctp["spec"]["ports"][0]["protocol"] = "SCTP"
            await client.create(resources.SERVICES, sctp, "default")
            async with running_proxy(client, netns, tmp_path / "proxy"):
                answers = [(await curl(netns, f"http://{sticky['spec']['clusterIP']}/"))[1] for _ in range(6)]
                assert len(set(answers)) == 1 and answers[0] in {"b1", "b2", "b3"}, answers

                async def event() -> list[dict[str, Any]]:
                    found = await client.list(resources.EVENTS, "default")
                    return [e for e in found["items"] if e["involvedObject"]["name"] == "sctp"]
                (warning,) = await eventually(event, what="a Warning Event about the SCTP port")
                assert warning["type"] == "Warning" and warning["reason"] == "UnsupportedProtocol"
                assert "SCTP" in warning["message"]
        finally:
            backends.close()
