"""kubectl logs/exec end to end: real kubectl → real API server → AgentServer → real processes.

The API server is a real ``shoal server`` process (agent, scheduler and controllers off) with a
Node whose status points at an :class:`~shoal.agent.server.AgentServer` run by this module in a
background thread (its own event loop, so the blocking kubectl calls cannot starve it).  The
containers are real processes under the process runtime driver, which runs exec commands on
the host; the pod → container lookup is a table filled in by the fixture.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from shoal.agent import server as agent_server
from shoal.agent.runtime.driver import ContainerSpec, SandboxSpec, State
from shoal.agent.runtime.process import ProcessDriver
from shoal.security.pki import ensure_pki
from tests.support.server import ShoalProcess

pytestmark = pytest.mark.integration

T = TypeVar("T")
NS = "default"


#: (pod, container) → (current container ID, previous container ID or None), filled in by the
#: ``cluster`` fixture; unknown pairs are "not found"; pods in WAITING have not started.
CONTAINERS: dict[tuple[str, str], tuple[str, str | None]] = {}
WAITING = {"waiting"}


def lookup(namespace: str, pod: str, container: str, previous: bool) -> str:
    if pod in WAITING:
        raise agent_server.waiting_to_start(container, pod, "ContainerCreating")
    ids = CONTAINERS.get((pod, container))
    if namespace != NS or ids is None:
        raise agent_server.container_not_found(container, pod)
    current, old = ids
    if previous:
        if old is None:
            raise agent_server.previous_not_found(container, pod)
        return old
    return current


async def run_container(driver: ProcessDriver, sandbox_id: str, name: str, script: str) -> str:
    container_id = await driver.create_container(sandbox_id, ContainerSpec(
        name=name, image="busybox", command=("sh", "-c", script)))
    await driver.start_container(container_id)
    return container_id


async def start_containers(driver: ProcessDriver, trigger: Path) -> None:
    """The pods' containers: real processes under the process driver."""
    sandbox = await driver.create_sandbox(SandboxSpec(pod_uid=str(uuid.uuid4()), namespace=NS, name="app",
                                                      hostname="app"))
    old = await run_container(driver, sandbox.id, "app", "echo previous run")
    deadline = time.monotonic() + 10
    while (await driver.inspect_container(old)).state is not State.EXITED:
        assert time.monotonic() < deadline, "the first instance did not exit"
        await asyncio.sleep(0.02)
    app = await run_container(driver, sandbox.id, "app", "echo one; echo two; echo three; exec sleep 600")
    follow = await run_container(driver, sandbox.id, "follow",
                                 f"echo first; while [ ! -e {trigger} ]; do sleep 0.05; done; echo late; "
                                 f"exec sleep 600")
    CONTAINERS.update({("app", "app"): (app, old), ("follow", "app"): (follow, None),
                       ("two", "a"): (app, None), ("two", "b"): (app, None)})


class AgentThread:
    """An AgentServer and its driver on an event loop in a background thread."""

    def __init__(self, driver: ProcessDriver, ca_pem: bytes, cert_dir: Path) -> None:
        self.driver = driver
        self.ca_pem = ca_pem
        self.cert_dir = cert_dir
        self.port = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.server: agent_server.AgentServer | None = None
        self.thread = threading.Thread(target=self._thread, name="agent-server", daemon=True)

    def _thread(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.server = server = agent_server.AgentServer(
            self.driver, pod_lookup=lookup, bind="127.0.0.1", port=0, ca_pem=self.ca_pem, cert_dir=self.cert_dir)
        try:
            async with server:
                self.port = server.port
                self.ready.set()
                await self.stopping.wait()
        finally:
            await self.driver.purge()

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(20)
        if self.error is not None:
            raise self.error
        assert self.port, "agent server did not start"

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        assert self.loop is not None

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(20)

    def stop(self) -> None:
        if self.loop is not None and self.stopping is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(20)


def apply(shoal: ShoalProcess, obj: dict[str, Any]) -> None:
    shoal.kubectl("apply", "-f", "-", input=json.dumps(obj))


def patch_status(shoal: ShoalProcess, kind: str, name: str, status: dict[str, Any]) -> None:
    shoal.kubectl("patch", kind, name, "--subresource=status", "--type=merge", "-p",
                  json.dumps({"status": status}))


def pod(name: str, node: str | None, *containers: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox"} for c in containers or ("app",)]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


@dataclass
class Cluster:
    shoal: ShoalProcess
    agent: AgentThread
    trigger: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("agent-server")
    shoal = ShoalProcess(base / "data", disable="agent,proxy,dns,controllers,scheduler")
    shoal.start()
    driver = ProcessDriver(base / "runtime")
    agent = AgentThread(driver, shoal.ca_file.read_bytes(), base / "agent-tls")
    trigger = base / "trigger"
    try:
        agent.start()
        agent.call(lambda: start_containers(driver, trigger))
        node = f"agent-{uuid.uuid4().hex[:6]}"
        apply(shoal, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
        patch_status(shoal, "node", node, {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}})
        for name, containers in (("app", ()), ("follow", ()), ("two", ("a", "b")), ("waiting", ())):
            apply(shoal, pod(name, node, *containers))
        apply(shoal, pod("unscheduled", None))
        patch_status(shoal, "pod", "app", {"phase": "Running"})
        yield Cluster(shoal, agent, trigger)
    finally:
        agent.stop()
        shoal.stop()


def wait_line(stream: Any, timeout: float = 10.0) -> str:
    """One line from a pipe, or fail after ``timeout`` seconds (the pipe is read in a thread)."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, f"no line within {timeout}s"
    return box[0]


# -- logs ---------------------------------------------------------------------------------

def test_logs(cluster: Cluster) -> None:
    assert cluster.shoal.kubectl("logs", "app").stdout == "one\ntwo\nthree\n"
    assert cluster.shoal.kubectl("logs", "app", "--tail=2").stdout == "two\nthree\n"
    assert cluster.shoal.kubectl("logs", "app", "--limit-bytes=6").stdout == "one\ntw"
    assert cluster.shoal.kubectl("logs", "app", "--since=1h").stdout == "one\ntwo\nthree\n"
    assert cluster.shoal.kubectl("logs", "app", "-c", "app", "--previous").stdout == "previous run\n"


def test_logs_timestamps(cluster: Cluster) -> None:
    lines = cluster.shoal.kubectl("logs", "app", "--timestamps").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two", "three"]
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", line.split(" ", 1)[0]), line


def test_logs_follow_receives_new_lines(cluster: Cluster) -> None:
    shoal = cluster.shoal
    cmd = ["kubectl", "--kubeconfig", str(shoal.kubeconfig), "--cache-dir",
           str(shoal.data_dir.parent / "kubectl-cache"), "logs", "-f", "follow"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_line(proc.stdout) == "first\n"
        cluster.trigger.touch()  # the container prints "late" only now
        assert wait_line(proc.stdout) == "late\n"
        assert proc.poll() is None  # still following
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    # kubectl is gone: the API server closes its stream from the agent, and the agent its log reader.
    assert cluster.agent.server is not None
    connections = cluster.agent.server.uvicorn.server_state.connections
    deadline = time.monotonic() + 10
    while connections:
        assert time.monotonic() < deadline, "the agent still serves the log stream after kubectl left"
        time.sleep(0.05)


def test_log_errors_are_kubernetes_statuses(cluster: Cluster) -> None:
    shoal = cluster.shoal
    result = shoal.kubectl("logs", "waiting", check=False)
    assert result.returncode == 1
    assert 'container "app" in pod "waiting" is waiting to start: ContainerCreating' in result.stderr
    result = shoal.kubectl("logs", "follow", "--previous", check=False)
    assert 'previous terminated container "app" in pod "follow" not found' in result.stderr
    result = shoal.kubectl("logs", "unscheduled", check=False)
    assert "pod unscheduled does not have a host assigned" in result.stderr
    result = shoal.kubectl("logs", "app", "-c", "nope", check=False)
    assert "container nope is not valid for pod app" in result.stderr
    # kubectl always names the container; without one the server picks or explains.
    context = ssl.create_default_context(cafile=str(shoal.ca_file))
    with httpx.Client(verify=context, headers={"Authorization": f"Bearer {shoal.token}"}) as client:
        answer = client.get(f"{shoal.url}/api/v1/namespaces/{NS}/pods/two/log")
        assert answer.status_code == 400
        assert answer.json()["message"] == "a container name must be specified for pod two, choose one of: [a b]"
        assert client.get(f"{shoal.url}/api/v1/namespaces/{NS}/pods/app/log").text == "one\ntwo\nthree\n"
        answer = client.get(f"{shoal.url}/api/v1/namespaces/{NS}/pods/app/log?tailLines=-1")
        assert answer.status_code == 422


# -- exec ---------------------------------------------------------------------------------

def test_exec_prints_output(cluster: Cluster) -> None:
    hostname = Path("/etc/hostname").read_text()  # the process driver runs commands on the host
    assert cluster.shoal.kubectl("exec", "app", "--", "cat", "/etc/hostname").stdout == hostname
    result = cluster.shoal.kubectl("exec", "app", "--", "sh", "-c", "echo out; echo err >&2")
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_exec_exit_code_propagates(cluster: Cluster) -> None:
    result = cluster.shoal.kubectl("exec", "app", "--", "sh", "-c", "exit 3", check=False)
    assert result.returncode == 3
    assert "command terminated with exit code 3" in result.stderr


def test_exec_stdin_is_echoed(cluster: Cluster) -> None:
    result = cluster.shoal.kubectl("exec", "-i", "app", "--", "cat", input="hello\nworld\n")
    assert result.stdout == "hello\nworld\n"
    result = cluster.shoal.kubectl("exec", "-i", "app", "--", "sh", "-c", "exit 4", input="x" * 100_000,
                                   check=False)
    assert result.returncode == 4


def test_exec_errors(cluster: Cluster) -> None:
    shoal = cluster.shoal
    result = shoal.kubectl("exec", "unscheduled", "--", "true", check=False)
    assert result.returncode == 1
    assert "pod unscheduled does not have a host assigned" in result.stderr
    result = shoal.kubectl("exec", "waiting", "--", "true", check=False)
    assert 'container "app" in pod "waiting" is waiting to start: ContainerCreating' in result.stderr
    result = shoal.kubectl("exec", "app", "--", "/nonexistent/binary", check=False)
    assert result.returncode == 1
    assert "error executing command in container" in result.stderr


def test_exec_websocket_needs_the_bearer_token(cluster: Cluster) -> None:
    shoal = cluster.shoal
    context = ssl.create_default_context(cafile=str(shoal.ca_file))
    url = f"wss://127.0.0.1:{shoal.port}/api/v1/namespaces/{NS}/pods/app/exec?command=echo&command=hi&stdout=true"

    async def attempt(headers: dict[str, str]) -> list[bytes]:
        async with connect(url, ssl=context, subprotocols=[Subprotocol("v5.channel.k8s.io")],
                           additional_headers=headers, proxy=None) as ws:
            return [bytes(m) if isinstance(m, bytes) else m.encode() async for m in ws]

    with pytest.raises(InvalidStatus) as info:
        asyncio.run(attempt({}))
    assert info.value.response.status_code == 401
    frames = asyncio.run(attempt({"Authorization": f"Bearer {shoal.token}"}))
    assert frames == [b"\x01hi\n", b'\x03{"metadata":{},"status":"Success"}']


def exec_url(shoal: ShoalProcess, pod_name: str, *command: str, **flags: bool) -> str:
    query = "&".join([f"command={quote(c)}" for c in command] + [f"{k}=true" for k, on in flags.items() if on])
    return f"wss://127.0.0.1:{shoal.port}/api/v1/namespaces/{NS}/pods/{pod_name}/exec?{query}"


def api_ws(shoal: ShoalProcess, url: str, protocol: str = "v5.channel.k8s.io") -> connect:
    return connect(url, ssl=ssl.create_default_context(cafile=str(shoal.ca_file)),
                   subprotocols=[Subprotocol(protocol)], proxy=None,
                   additional_headers={"Authorization": f"Bearer {shoal.token}"})


async def collect(ws: Any) -> bytes:
    """Everything received on channels 1 and 2 until channel 3; returns it and checks the Status."""
    out = b""
    async for message in ws:
        assert isinstance(message, bytes)
        if message[0] == 3:
            assert json.loads(message[1:])["status"] == "Success", message
            return out
        out += message[1:]
    raise AssertionError("no status frame")


def test_exec_tty_resize_and_pings(cluster: Cluster) -> None:
    """A TTY session with a resize, kept open while idle: client pings are answered through the relay."""
    url = exec_url(cluster.shoal, "app", "sh", "-c", "read x; tty; stty size; echo got $x", stdin=True,
                   stdout=True, tty=True)

    async def session() -> bytes:
        async with api_ws(cluster.shoal, url) as ws:
            await ws.send(b'\x04{"Width":100,"Height":30}')
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
            await ws.send(b"\x00hi\n")
            return await asyncio.wait_for(collect(ws), 10)

    output = asyncio.run(session()).decode()
    assert "/dev/pts/" in output
    assert "30 100" in output
    assert "got hi" in output


def test_exec_v4_subprotocol(cluster: Cluster) -> None:
    async def session() -> tuple[bytes, str | None]:
        async with api_ws(cluster.shoal, exec_url(cluster.shoal, "app", "echo", "v4", stdout=True),
                          "v4.channel.k8s.io") as ws:
            return await collect(ws), ws.subprotocol

    assert asyncio.run(session()) == (b"v4\n", "v4.channel.k8s.io")


def test_exec_process_is_killed_when_the_client_leaves(cluster: Cluster) -> None:
    url = exec_url(cluster.shoal, "app", "sh", "-c", "echo $$; exec sleep 60", stdout=True)

    async def session() -> int:
        async with api_ws(cluster.shoal, url) as ws:
            first = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(first, bytes)
            return int(first[1:])

    pid = asyncio.run(session())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"exec process {pid} still runs after the client left"
        time.sleep(0.05)


# -- the agent's own authentication -------------------------------------------------------

def test_agent_requires_the_api_servers_client_certificate(cluster: Cluster) -> None:
    url = f"https://127.0.0.1:{cluster.agent.port}/containerLogs/{NS}/app/app"
    with httpx.Client(verify=False) as anonymous, pytest.raises(httpx.TransportError):
        anonymous.get(url)
    pki = ensure_pki(cluster.shoal.data_dir, [], [])
    cert, key = pki.issue_client_cert("system:node:other", ["system:nodes"])
    cert_file, key_file = cluster.shoal.data_dir.parent / "node.crt", cluster.shoal.data_dir.parent / "node.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert_file, key_file)
    with httpx.Client(verify=context) as node_client:
        answer = node_client.get(url)
    assert answer.status_code == 403
    assert answer.json()["reason"] == "Forbidden"
    tls = cluster.shoal.data_dir / "tls"
    context.load_cert_chain(tls / "apiserver-agent-client.crt", tls / "apiserver-agent-client.key")
    with httpx.Client(verify=context) as apiserver_client:
        assert apiserver_client.get(url).text == "one\ntwo\nthree\n"

