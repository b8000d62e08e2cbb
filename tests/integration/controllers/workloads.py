"""Helpers for the workload-controller tests (ReplicaSet, Deployment, node IPAM, leases).

These tests run the controllers in-process against a real ``shoal server`` started with its
own controllers, agent and scheduler disabled (so nothing else acts on the objects), one per
test module.  No kubelet exists there, so :class:`Kubelet` plays one: it marks the pods it
accepts Running and Ready through the ``pods/status`` subresource, as an agent would.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from tests.support.kubelet import mark_ready
from tests.support.server import QUIET, ShoalProcess


def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    """A server whose own controllers, agent and scheduler are off; stopped afterwards."""
    with ShoalProcess(tmp_path_factory.mktemp("workloads") / "data", disable=QUIET) as server:
        yield server




async def new_namespace(client: ApiClient) -> str:
    name = f"wl-{uuid.uuid4().hex[:8]}"
    await client.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}})
    return name


def pod_template(labels: dict[str, str], image: str = "busybox:1") -> Obj:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "main", "image": image}]}}


async def pods(client: ApiClient, namespace: str, *, active: bool = True) -> list[Obj]:
    items = (await client.list(resources.PODS, namespace))["items"]
    return [p for p in items if not (active and p["metadata"].get("deletionTimestamp"))]


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class Kubelet:
    """Marks every pod of ``namespace`` that ``accept`` likes Ready, shortly after it appears."""

    def __init__(self, client: ApiClient, namespace: str, accept: Callable[[Obj], bool] = lambda pod: True,
                 delay: float = 0.05) -> None:
        self.client = client
        self.namespace = namespace
        self.accept = accept
        self.delay = delay
        self.readied: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for pod in await pods(self.client, self.namespace):
                name = pod["metadata"]["name"]
                if name in self.readied or is_ready(pod) or not self.accept(pod):
                    continue
                try:
                    await mark_ready(self.client, pod)
                except NotFoundError:
                    continue
                self.readied.add(name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.delay)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Kubelet]:
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop))
        try:
            yield self
        finally:
            stop.set()
            await asyncio.wait_for(task, 10.0)


def image_of(obj: Obj) -> str:
    """The first container image of a pod, or of a Deployment/ReplicaSet template."""
    spec = obj["spec"]
    pod_spec = spec["template"]["spec"] if "template" in spec else spec
    return str(pod_spec["containers"][0]["image"])


def condition(obj: Obj, type_: str) -> Obj | None:
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == type_:
            return dict(found)
    return None


class Recorder:
    """Watches one resource type in a namespace and keeps a snapshot after every event.

    ``snapshots[i]`` maps name -> object as seen after the i-th event, so a test can assert an
    invariant held at every observed step."""

    def __init__(self, client: ApiClient, ref: resources.ResourceRef, namespace: str) -> None:
        self.client = client
        self.ref = ref
        self.namespace = namespace
        self.current: dict[str, Obj] = {}
        self.snapshots: list[dict[str, Obj]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self, version: str) -> None:
        stream = self.client.watch(self.ref, self.namespace, resource_version=version, allow_bookmarks=False)
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                name = event.object["metadata"]["name"]
                if event.type == "DELETED":
                    self.current.pop(name, None)
                else:
                    self.current[name] = event.object
                self.snapshots.append(dict(self.current))

    @contextlib.asynccontextmanager
    async def recording(self) -> AsyncIterator[Recorder]:
        listed = await self.client.list(self.ref, self.namespace)
        self.current = {obj["metadata"]["name"]: obj for obj in listed["items"]}
        self.snapshots = [dict(self.current)]
        self._task = asyncio.create_task(self._run(listed["metadata"]["resourceVersion"]))
        try:
            yield self
        finally:
            self._task.cancel()
            await asyncio.wait((self._task,))
            if not self._task.cancelled() and self._task.exception() is not None:
                raise AssertionError("the watch failed") from self._task.exception()
