"""Helpers for the agent tests: run an agent for a block, make and bind pods, poll for a state."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.agent import NodeAgent
from shoal.agent.config import AgentConfig
from shoal.agent.runtime.driver import RuntimeDriver
from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from tests.support import wait

#: Short backoffs and fast loops so the tests see several restarts in a few seconds.
FAST = {"backoff_initial": 0.5, "backoff_max": 4.0, "relist_interval": 0.2, "status_interval": 1.0,
        "lease_duration": 4}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def running_agent(client: ApiClient, driver: RuntimeDriver, node_name: str, data_dir: Path,
                        **options: Any) -> AsyncIterator[NodeAgent]:
    """Run a NodeAgent for the block; it is stopped (containers left running) at the end.
    ``options`` are :class:`AgentConfig` fields (over :data:`FAST`)."""
    agent = NodeAgent(client, driver, AgentConfig(node_name=node_name, data_dir=data_dir, **{**FAST, **options}))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        if not driver.needs_pod_cidr:  # else it waits for a podCIDR the test gives
            await wait_started(agent, task)
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def wait_started(agent: NodeAgent, task: asyncio.Task[None], within: float = 20.0) -> None:
    """Wait until the agent syncs pods; fail if it ended or took longer than ``within``."""
    started = asyncio.ensure_future(agent.started.wait())
    await asyncio.wait((started, task), timeout=within, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        task.result()
    if not agent.started.is_set():
        pytest.fail(f"the agent did not start within {within}s")


async def purge(driver: RuntimeDriver) -> None:
    """Remove every sandbox (and so every container) the driver knows: test cleanup."""
    for sandbox in await driver.list_sandboxes():
        with contextlib.suppress(Exception):
            await driver.remove_sandbox(sandbox.id)
    for container in await driver.list_containers():
        with contextlib.suppress(Exception):
            await driver.remove_container(container.id)


eventually = functools.partial(wait.eventually, within=20.0)


def pod_manifest(name: str, *containers: Obj, restart: str = "Always", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": list(containers), **spec}}


def shell(name: str, script: str, **extra: Any) -> Obj:
    """A container running ``sh -c script`` (the process driver needs an explicit command)."""
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **extra}


def httpd(name: str, port: int, **extra: Any) -> Obj:
    """A busybox web server on 127.0.0.1:port serving ``/`` (an index page) and nothing else."""
    # The process driver starts a container in its own state directory (removed with it).
    return shell(name, f"echo ok > index.html && exec busybox httpd -f -p 127.0.0.1:{port} -h .",
                 ports=[{"name": "http", "containerPort": port}], **extra)


async def create_bound(client: ApiClient, namespace: str, node: str, manifest: Obj) -> Obj:
    """Create the pod and bind it to ``node`` (no scheduler runs in these tests)."""
    pod = await client.create(resources.PODS, manifest, namespace)
    name = pod["metadata"]["name"]
    await client.request("POST", resources.PODS.object_path(name, namespace, "binding"),
                         body={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                               "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    return pod


async def get_pod(client: ApiClient, namespace: str, name: str) -> Obj | None:
    try:
        return await client.get(resources.PODS, name, namespace)
    except NotFoundError:
        return None


def condition(pod: Obj, kind: str) -> str:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return ""


def container_status(pod: Obj, name: str, key: str = "containerStatuses") -> Obj:
    for status in (pod.get("status") or {}).get(key) or []:
        if status.get("name") == name:
            return dict(status)
    return {}


async def events(client: ApiClient, namespace: str, pod_name: str) -> list[tuple[str, str]]:
    """(reason, message) of the Events about the pod, oldest first."""
    found = await client.list(resources.EVENTS, namespace)
    items = [e for e in found["items"] if (e.get("involvedObject") or {}).get("name") == pod_name]
    # Creation order: resourceVersions grow with every write, and are compared as numbers ("999" < "1000").
    items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(str(e.get("reason")), str(e.get("message"))) for e in items]


def pod_check(client: ApiClient, namespace: str, name: str,
              predicate: Callable[[Obj], bool]) -> Callable[[], Awaitable[Obj | None]]:
    """A check for :func:`eventually`: the pod once ``predicate`` holds for it."""
    async def check() -> Obj | None:
        pod = await get_pod(client, namespace, name)
        return pod if pod is not None and predicate(pod) else None
    return check


async def http_get(port: int, host: str = "127.0.0.1", path: str = "/") -> tuple[int, bytes]:
    """One HTTP/1.0 GET; (status code, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except OSError:
        return False
    writer.close()
    return True
