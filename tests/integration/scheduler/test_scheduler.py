"""The scheduler against a real API server: binding, FailedScheduling, selectors, taints,
spreading, retry on a new node, restart."""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from shoal.scheduler import Scheduler
from tests.integration.scheduler.helpers import node, register
from tests.support import wait

pytestmark = pytest.mark.e2e

NS = "default"


@asynccontextmanager
async def scheduling(client: ApiClient, scheduler: Scheduler | None = None, **kwargs: Any) -> AsyncIterator[Scheduler]:
    """Run ``scheduler`` (a new one by default) until the block ends; its caches synced first."""
    scheduler = scheduler or Scheduler(client, rng=random.Random(42), **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:
        await eventually(lambda: _synced(scheduler, task), what="the scheduler's caches")
        yield scheduler
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)


async def _synced(scheduler: Scheduler, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # surface a crash instead of timing out
    return scheduler.pods.has_synced and scheduler.nodes.has_synced


eventually = functools.partial(wait.eventually, within=10.0)


def pod(name: str, *, cpu: str = "100m", owner: Obj | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": NS}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}], **spec}}


async def node_of(client: ApiClient, name: str) -> str:
    return str((await client.get(resources.PODS, name, NS))["spec"].get("nodeName") or "")


async def bound(client: ApiClient, *names: str) -> bool:
    return all([await node_of(client, name) for name in names])


async def events_for(client: ApiClient, name: str, reason: str) -> list[Obj]:
    events = (await client.list(resources.EVENTS, NS))["items"]
    return [e for e in events if e["involvedObject"]["name"] == name and e["reason"] == reason]


async def test_a_pod_lands_and_one_too_big_stays_pending_with_the_reason(client: ApiClient) -> None:
    await client.create(resources.PODS, pod("small"))
    await client.create(resources.PODS, pod("huge", cpu="100"))
    async with scheduling(client):
        await eventually(lambda: bound(client, "small"), what="small to be bound")
        small = await client.get(resources.PODS, "small", NS)
        assert small["spec"]["nodeName"] in ("n1", "n2")  # n3's taint is not tolerated
        condition = next(c for c in small["status"]["conditions"] if c["type"] == "PodScheduled")
        assert condition["status"] == "True"
        await eventually(lambda: _has_events(client, "small", "Scheduled"), what="the Scheduled event")
        [scheduled] = await events_for(client, "small", "Scheduled")
        assert scheduled["message"] == f"Successfully assigned {NS}/small to {small['spec']['nodeName']}"
        assert (scheduled["type"], scheduled["source"]["component"]) == ("Normal", "default-scheduler")

        expected = ("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                    "2 Insufficient cpu. preemption: 0/3 nodes are available: "
                    "3 Preemption is not helpful for scheduling.")
        await eventually(lambda: _has_events(client, "huge", "FailedScheduling"), what="FailedScheduling")
        [failed] = await events_for(client, "huge", "FailedScheduling")
        assert (failed["type"], failed["message"]) == ("Warning", expected)
        await eventually(lambda: _unschedulable(client, "huge", expected), what="PodScheduled=False")
        assert await node_of(client, "huge") == ""


async def _backing_off(scheduler: Scheduler) -> bool:
    return scheduler.queue.attempts(f"{NS}/needs-a-lot") >= 1


async def _has_events(client: ApiClient, name: str, reason: str) -> bool:
    return bool(await events_for(client, name, reason))


async def _unschedulable(client: ApiClient, name: str, message: str) -> bool:
    conditions = (await client.get(resources.PODS, name, NS)).get("status", {}).get("conditions") or []
    return any(c["type"] == "PodScheduled" and c["status"] == "False" and c["reason"] == "Unschedulable"
               and c["message"] == message for c in conditions)


async def test_node_selector_and_taints_are_honoured(client: ApiClient) -> None:
    gpu_toleration = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    names = [f"plain-{i}" for i in range(6)]
    for name in names:
        await client.create(resources.PODS, pod(name))
    await client.create(resources.PODS, pod("wants-ssd", nodeSelector={"disk": "ssd"}))
    await client.create(resources.PODS, pod("gpu-job", tolerations=gpu_toleration, affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n3"]}]}]}}}))
    await client.create(resources.PODS, pod("wants-hdd", nodeSelector={"disk": "hdd"}))
    async with scheduling(client):
        await eventually(lambda: bound(client, *names, "wants-ssd", "gpu-job"), what="pods to be bound")
        assert {await node_of(client, name) for name in names} <= {"n1", "n2"}
        assert await node_of(client, "wants-ssd") == "n1"
        assert await node_of(client, "gpu-job") == "n3"
        await eventually(lambda: _has_events(client, "wants-hdd", "FailedScheduling"), what="FailedScheduling")
        [failed] = await events_for(client, "wants-hdd", "FailedScheduling")
        assert failed["message"].startswith(
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
            "2 node(s) didn't match Pod's node affinity/selector. ")


async def test_pods_of_one_owner_spread_evenly(client: ApiClient) -> None:
    owner = await client.create(resources.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                       "metadata": {"name": "web", "namespace": NS}})
    tolerate_all = [{"operator": "Exists"}]
    names = [f"web-{i}" for i in range(6)]
    # A pod of another owner already on n1 must not stop the even spread.
    await client.create(resources.PODS, pod("other", cpu="1", nodeName="n1"))
    async with scheduling(client):
        for name in names:
            await client.create(resources.PODS, pod(name, owner=owner, tolerations=tolerate_all))
        await eventually(lambda: bound(client, *names), what="the web pods to be bound")
    placement = Counter([await node_of(client, name) for name in names])
    assert placement == {"n1": 2, "n2": 2, "n3": 2}


async def test_a_pending_pod_is_retried_as_soon_as_a_node_is_added(client: ApiClient) -> None:
    await client.create(resources.PODS, pod("big", cpu="6"))
    async with scheduling(client, initial_backoff=30.0, max_backoff=30.0) as scheduler:
        await eventually(lambda: _has_events(client, "big", "FailedScheduling"), what="FailedScheduling")
        assert scheduler.queue.backing_off == 1
        await register(client, node("n4", cpu="8", memory="16Gi"))
        # The backoff is 30 s: only the node event can explain a quick binding.
        await eventually(lambda: bound(client, "big"), within=5.0, what="big to land on the new node")
    assert await node_of(client, "big") == "n4"


async def test_a_not_ready_node_gets_nothing_and_the_scheduler_restarts(client: ApiClient) -> None:
    await register(client, node("n5", cpu="64", memory="256Gi", ready="False"))
    await client.create(resources.PODS, pod("needs-a-lot", cpu="16"))
    async with scheduling(client) as scheduler:
        await eventually(lambda: _has_events(client, "needs-a-lot", "FailedScheduling"), what="FailedScheduling")
        [failed] = await events_for(client, "needs-a-lot", "FailedScheduling")
        assert "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }" in failed["message"]
    await client.create(resources.PODS, pod("after-restart"))
    async with scheduling(client, scheduler):  # run() again on the same object starts from scratch
        await eventually(lambda: bound(client, "after-restart"), what="scheduling after a restart")
        await eventually(lambda: _backing_off(scheduler), what="needs-a-lot to be picked up again")
    assert await node_of(client, "after-restart") in ("n1", "n2")
