"""The ReplicaSet controller's ``reconcile`` against the real in-process API (no workers, fake clocks).

Each test drives passes itself (:class:`tests.support.reconciling.Rig`) and plays the kubelet
where pods must be Ready.  Covers: creating missing pods from the template (controller
reference, labels, ``generateName``, events), never creating twice while creations are
unobserved, status (replicas, ready, available after ``minReadySeconds`` on the injected wall
clock, observedGeneration), deleting surplus pods least valuable first, replacing deleted pods,
adopting matching orphans, releasing pods that stopped matching, and leaving other
controllers' pods alone.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest

from shoal.client import resources
from shoal.client.errors import ConflictError
from shoal.client.expectations import EXPECTATIONS_TTL
from shoal.controllers.replicaset import ReplicaSetController
from shoal.kube.objects import Obj
from tests.support.reconciling import Rig

NS = "default"
KEY = f"{NS}/web"


def replicaset(replicas: int, name: str = "web", **spec: Any) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels, "annotations": {"note": "from-template"}},
                                  "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}},
                     **spec}}


def orphan(name: str, labels: dict[str, str], **meta: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels, **meta},
            "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}


def controller_of(pod: Obj) -> Obj | None:
    refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")]
    return refs[0] if refs else None


@pytest.fixture
def controller(rig: Rig) -> ReplicaSetController:
    return ReplicaSetController(rig.client, rig.informers, clock=rig.clock, wall=rig.wall)


async def rs_status(rig: Rig, name: str = "web") -> Obj:
    status: Obj = (await rig.client.get(resources.REPLICASETS, name, NS)).get("status") or {}
    return status


async def test_creates_the_missing_pods_and_reports_status(rig: Rig, controller: ReplicaSetController) -> None:
    rs = await rig.client.create(resources.REPLICASETS, replicaset(3))
    async with rig.running(controller):
        assert await rig.reconcile(controller, KEY) is None
        pods = await rig.pods(NS)
        assert len(pods) == 3
        for pod in pods:
            meta = pod["metadata"]
            assert meta["name"].startswith("web-") and meta["generateName"] == "web-"
            assert meta["labels"] == {"app": "web"} and meta["annotations"] == {"note": "from-template"}
            assert meta["ownerReferences"] == [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}]
            assert pod["spec"]["containers"][0]["image"] == "busybox:1"
        created = await rig.events(NS, "SuccessfulCreate")
        assert sorted(e["message"] for e in created) == sorted(f"Created pod: {p['metadata']['name']}" for p in pods)

        await rig.reconcile(controller, KEY)  # the next pass sees the pods and writes the status
        assert await rs_status(rig) == {"replicas": 3, "fullyLabeledReplicas": 3, "observedGeneration": 1}
        assert len(await rig.pods(NS)) == 3


async def test_never_creates_twice_while_creations_are_unobserved(rig: Rig, controller: ReplicaSetController) -> None:
    await rig.client.create(resources.REPLICASETS, replicaset(4))
    async with rig.running(controller):
        await rig.settle()
    # The informers are stopped: the cache shows the ReplicaSet and none of the pods to come.
    await controller.reconcile(KEY)
    assert len(await rig.pods(NS)) == 4
    assert not controller.expectations.satisfied(KEY)
    # The status write of this pass is based on the stale cached ReplicaSet: it loses the
    # compare-and-swap (a routine requeue); what matters is that it creates nothing.
    with contextlib.suppress(ConflictError):
        await controller.reconcile(KEY)
    assert len(await rig.pods(NS)) == 4
    rig.advance(EXPECTATIONS_TTL + 1)  # creations never observed expire, and the cache is trusted again
    assert controller.expectations.satisfied(KEY)


async def test_ready_pods_become_available_after_min_ready_seconds(rig: Rig,
                                                                   controller: ReplicaSetController) -> None:
    await rig.client.create(resources.REPLICASETS, replicaset(2, minReadySeconds=10))
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        for pod in await rig.pods(NS):
            await rig.mark_ready(pod)
        delay = await rig.reconcile(controller, KEY)
        assert delay is not None and 10 <= delay <= 11  # come back when they become available
        status = await rs_status(rig)
        assert (status["readyReplicas"], status.get("availableReplicas", 0)) == (2, 0)

        rig.advance(5)
        assert await rig.reconcile(controller, KEY) is not None
        assert (await rs_status(rig)).get("availableReplicas", 0) == 0
        rig.advance(6)
        assert await rig.reconcile(controller, KEY) is None
        assert (await rs_status(rig))["availableReplicas"] == 2


async def test_scaling_down_deletes_the_least_valuable_pods(rig: Rig, controller: ReplicaSetController) -> None:
    await rig.client.create(resources.REPLICASETS, replicaset(3))
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        pods = await rig.pods(NS)
        keep = pods[1]["metadata"]["name"]
        await rig.mark_ready(pods[1])  # the only ready one: the last to go
        await rig.client.patch(resources.REPLICASETS, "web", {"spec": {"replicas": 1}}, NS)
        await rig.reconcile(controller, KEY)
        assert [p["metadata"]["name"] for p in await rig.pods(NS)] == [keep]
        deleted = await rig.events(NS, "SuccessfulDelete")
        assert len(deleted) == 2 and all(keep not in e["message"] for e in deleted)
        await rig.reconcile(controller, KEY)
        status = await rs_status(rig)
        assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (1, 1, 1)
        assert status["observedGeneration"] == 2


async def test_a_deleted_pod_is_replaced(rig: Rig, controller: ReplicaSetController) -> None:
    await rig.client.create(resources.REPLICASETS, replicaset(2))
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        victim = (await rig.pods(NS))[0]["metadata"]["name"]
        await rig.client.delete(resources.PODS, victim, NS)
        await rig.reconcile(controller, KEY)
        names = [p["metadata"]["name"] for p in await rig.pods(NS)]
        assert len(names) == 2 and victim not in names


async def test_matching_orphans_are_adopted_instead_of_created(rig: Rig, controller: ReplicaSetController) -> None:
    await rig.client.create(resources.PODS, orphan("stray", {"app": "web"}))
    await rig.client.create(resources.PODS, orphan("other", {"app": "db"}))
    rs = await rig.client.create(resources.REPLICASETS, replicaset(2))
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        await rig.reconcile(controller, KEY)
        pods = {p["metadata"]["name"]: p for p in await rig.pods(NS)}
        assert len(pods) == 3  # "stray" adopted, one created, "other" untouched
        stray = controller_of(pods["stray"])
        assert stray is not None and stray["uid"] == rs["metadata"]["uid"]
        assert controller_of(pods["other"]) is None
        assert (await rs_status(rig))["replicas"] == 2


async def test_pods_that_stop_matching_are_released_and_replaced(rig: Rig,
                                                                  controller: ReplicaSetController) -> None:
    await rig.client.create(resources.REPLICASETS, replicaset(2))
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        leaving = (await rig.pods(NS))[0]
        relabelled = copy.deepcopy(leaving["metadata"]["labels"])
        relabelled["app"] = "debug"
        await rig.client.patch(resources.PODS, leaving["metadata"]["name"], {"metadata": {"labels": relabelled}}, NS)
        await rig.reconcile(controller, KEY)  # releases it
        await rig.reconcile(controller, KEY)  # and replaces it
        pods = {p["metadata"]["name"]: p for p in await rig.pods(NS)}
        assert len(pods) == 3
        assert controller_of(pods[leaving["metadata"]["name"]]) is None
        assert sum(1 for p in pods.values() if controller_of(p) is not None) == 2


async def test_pods_of_another_controller_are_left_alone(rig: Rig, controller: ReplicaSetController) -> None:
    foreign = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "someone-else",
               "uid": "00000000-0000-0000-0000-000000000001", "controller": True}
    await rig.client.create(resources.PODS, orphan("taken", {"app": "web"}, ownerReferences=[foreign]))
    await rig.client.create(resources.REPLICASETS, replicaset(1))
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        await rig.reconcile(controller, KEY)
        pods = {p["metadata"]["name"]: p for p in await rig.pods(NS)}
        assert len(pods) == 2 and controller_of(pods["taken"]) == foreign


async def test_a_replicaset_being_deleted_creates_nothing(rig: Rig, controller: ReplicaSetController) -> None:
    body = replicaset(2)
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await rig.client.create(resources.REPLICASETS, body)
    await rig.client.delete(resources.REPLICASETS, "web", NS)
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        assert await rig.pods(NS) == []
