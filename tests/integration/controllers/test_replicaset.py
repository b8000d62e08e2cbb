"""The ReplicaSet controller against a live API server (the test plays the kubelet)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from shoal.client import resources
from shoal.client.errors import ConflictError
from shoal.client.informer import InformerFactory
from shoal.client.rest import ApiClient
from shoal.controllers.replicaset import ReplicaSetController
from shoal.kube.objects import Obj
from tests.integration.controllers import workloads
from tests.integration.controllers.helpers import eventually, running
from tests.support import kubelet

pytestmark = pytest.mark.e2e

RS = "replicaset"


def replicaset(name: str, namespace: str, replicas: int, **spec: Any) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": workloads.pod_template(labels), **spec}}


async def scale(client: ApiClient, name: str, namespace: str, replicas: int) -> None:
    await client.patch(resources.REPLICASETS, name, {"spec": {"replicas": replicas}}, namespace)


async def count_is(client: ApiClient, namespace: str, wanted: int) -> bool:
    return len(await workloads.pods(client, namespace)) == wanted


async def test_creates_pods_from_the_template_and_reports_status(client: ApiClient, ns: str) -> None:
    rs = await client.create(resources.REPLICASETS, replicaset("web", ns, 3))
    async with running(client, RS):
        await eventually(lambda: count_is(client, ns, 3), what="3 pods")
        for pod in await workloads.pods(client, ns):
            meta = pod["metadata"]
            assert meta["name"].startswith("web-")
            assert meta["labels"] == {"app": "web"}
            assert meta["ownerReferences"] == [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}]
            assert workloads.image_of(pod) == "busybox:1"

        async def status_is(**wanted: int) -> bool:
            status = (await client.get(resources.REPLICASETS, "web", ns)).get("status") or {}
            return all(status.get(k, 0) == v for k, v in wanted.items())

        await eventually(lambda: status_is(replicas=3, fullyLabeledReplicas=3, readyReplicas=0,
                                           observedGeneration=1), what="status of unready pods")
        for pod in (await workloads.pods(client, ns))[:2]:
            await kubelet.mark_ready(client, pod)
        await eventually(lambda: status_is(replicas=3, readyReplicas=2, availableReplicas=2),
                         what="2 ready and available")
        events = (await client.list(resources.EVENTS, ns))["items"]
        created = [e for e in events if e["reason"] == "SuccessfulCreate"]
        assert len(created) == 3 and all(e["message"].startswith("Created pod: web-") for e in created)
        assert all(e["involvedObject"]["kind"] == "ReplicaSet" for e in created)
    assert await count_is(client, ns, 3)


async def test_a_burst_never_overshoots(client: ApiClient, ns: str) -> None:
    seen: list[int] = []
    async with running(client, RS):
        await client.create(resources.REPLICASETS, replicaset("burst", ns, 12))
        for _ in range(60):
            seen.append(len(await workloads.pods(client, ns)))
            if seen[-1] == 12:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a double-create would show up now
        assert await count_is(client, ns, 12)
    assert max(seen) <= 12
    events = (await client.list(resources.EVENTS, ns))["items"]
    assert not [e for e in events if e["reason"] == "SuccessfulDelete"]


async def test_a_stale_cache_never_double_creates(client: ApiClient, ns: str) -> None:
    informers = InformerFactory(client)
    controller = ReplicaSetController(client, informers)
    await client.create(resources.REPLICASETS, replicaset("stale", ns, 3))
    stop = asyncio.Event()
    task = asyncio.create_task(informers.run(stop))
    await eventually(lambda: _cached(controller, f"{ns}/stale"), what="the RS in the cache")
    stop.set()
    await task  # the caches are frozen from here on: they will never see the new pods
    await controller.reconcile(f"{ns}/stale")
    assert await count_is(client, ns, 3)
    with contextlib.suppress(ConflictError):  # the cached RS is stale too: its status write loses
        await controller.reconcile(f"{ns}/stale")
    assert await count_is(client, ns, 3), "the expectations must stop a second round of creates"
    assert controller.expectations.pending(f"{ns}/stale") == (3, 0)


async def _cached(controller: ReplicaSetController, key: str) -> bool:
    return controller.rs_informer.get(key) is not None and controller.pod_informer.has_synced


async def test_surplus_pods_go_least_ready_first(client: ApiClient, ns: str) -> None:
    await client.create(resources.REPLICASETS, replicaset("web", ns, 4))
    async with running(client, RS):
        await eventually(lambda: count_is(client, ns, 4), what="4 pods")
        ready = {p["metadata"]["name"] for p in (await workloads.pods(client, ns))[:2]}
        for pod in await workloads.pods(client, ns):
            if pod["metadata"]["name"] in ready:
                await kubelet.mark_ready(client, pod)
        await scale(client, "web", ns, 2)
        await eventually(lambda: count_is(client, ns, 2), what="scaled down to 2")
        assert {p["metadata"]["name"] for p in await workloads.pods(client, ns)} == ready
        events = (await client.list(resources.EVENTS, ns))["items"]
        assert len([e for e in events if e["reason"] == "SuccessfulDelete"]) == 2


async def test_adopts_a_matching_orphan_and_replaces_a_deleted_pod(client: ApiClient, ns: str) -> None:
    orphan = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "orphan", "namespace": ns, "labels": {"app": "web"}},
              "spec": workloads.pod_template({"app": "web"})["spec"]}
    await client.create(resources.PODS, orphan)
    rs = await client.create(resources.REPLICASETS, replicaset("web", ns, 2))
    async with running(client, RS):
        await eventually(lambda: count_is(client, ns, 2), what="one pod created next to the orphan")

        async def adopted() -> bool:
            refs = (await client.get(resources.PODS, "orphan", ns))["metadata"].get("ownerReferences") or []
            return [r["uid"] for r in refs if r.get("controller")] == [rs["metadata"]["uid"]]

        await eventually(adopted, what="the orphan adopted")
        await client.delete(resources.PODS, "orphan", ns)
        await eventually(lambda: count_is(client, ns, 2), what="a replacement for the deleted pod")
        names = {p["metadata"]["name"] for p in await workloads.pods(client, ns)}
        assert "orphan" not in names and len(names) == 2


async def test_a_pod_that_stops_matching_is_released_and_replaced(client: ApiClient, ns: str) -> None:
    await client.create(resources.REPLICASETS, replicaset("web", ns, 2))
    async with running(client, RS):
        await eventually(lambda: count_is(client, ns, 2), what="2 pods")
        victim = (await workloads.pods(client, ns))[0]["metadata"]["name"]
        await client.patch(resources.PODS, victim, {"metadata": {"labels": {"app": "other"}}}, ns)

        async def released() -> bool:
            meta = (await client.get(resources.PODS, victim, ns))["metadata"]
            return not meta.get("ownerReferences")

        await eventually(released, what="the relabelled pod released")
        await eventually(lambda: count_is(client, ns, 3), what="a replacement (the released pod stays)")


async def test_available_waits_for_min_ready_seconds(client: ApiClient, ns: str) -> None:
    await client.create(resources.REPLICASETS, replicaset("slow", ns, 1, minReadySeconds=2))
    async with running(client, RS):
        await eventually(lambda: count_is(client, ns, 1), what="1 pod")
        await kubelet.mark_ready(client, (await workloads.pods(client, ns))[0])

        async def status() -> Obj:
            return (await client.get(resources.REPLICASETS, "slow", ns)).get("status") or {}

        async def ready_not_available() -> bool:
            found = await status()
            return found.get("readyReplicas") == 1 and not found.get("availableReplicas")

        await eventually(ready_not_available, what="ready but not yet available")

        async def available() -> bool:
            return (await status()).get("availableReplicas") == 1

        await eventually(available, within=6.0, what="available after minReadySeconds (a timed requeue)")
