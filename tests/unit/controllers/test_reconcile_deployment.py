"""The Deployment controller's ``reconcile`` with the real ReplicaSet controller, against the real
in-process API (no workers, fake clocks; the test plays the kubelet by marking pods Ready).

Covers: the first ReplicaSet (``<name>-<pod-template-hash>``, hash label on its selector and
template, controller reference, revision annotations) and the Deployment's status and
conditions; a rolling update's exact sequence of ReplicaSet sizes for maxSurge/maxUnavailable
combinations, with ``pods <= replicas + maxSurge`` and ``ready pods >= replicas -
maxUnavailable`` checked after every pass; ``observedGeneration`` following the spec's
generation; a plain scale resizing the current ReplicaSet without a new one; Recreate scaling
the old ReplicaSet to zero before the new one gets pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from shoal.client import resources
from shoal.controllers.deployment import DeploymentController
from shoal.controllers.replicaset import ReplicaSetController
from shoal.kube.objects import Obj
from tests.support.reconciling import Rig

NS = "default"
KEY = f"{NS}/web"
HASH = "pod-template-hash"


def deployment(replicas: int = 3, image: str = "busybox:1", **strategy: Any) -> Obj:
    labels = {"app": "web"}
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "main", "image": image}]}}}
    if strategy:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
            "spec": spec}


def rolling(max_surge: int, max_unavailable: int) -> Obj:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable}}


def image_of(obj: Obj) -> str:
    """The first container image of a pod, or of a Deployment or ReplicaSet template."""
    spec = obj["spec"]
    pod_spec = spec["template"]["spec"] if "template" in spec else spec
    return str(pod_spec["containers"][0]["image"])


@dataclass
class World:
    """A Deployment and ReplicaSet controller pair, driven one pass at a time."""

    rig: Rig
    deployments: DeploymentController
    replicasets: ReplicaSetController
    #: (old RS size, new RS size) by image, each time it changed
    sizes: list[tuple[int, ...]] = field(default_factory=list)
    max_pods: int = 0
    min_ready: int = 0
    worst_pods: int = 0
    worst_ready: int = 1 << 30

    async def replica_sets(self) -> list[Obj]:
        items: list[Obj] = (await self.rig.client.list(resources.REPLICASETS, NS))["items"]
        return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))

    async def check(self) -> None:
        """Record the RS sizes and check the rollout bounds on the current state."""
        sizes = tuple(int(rs["spec"]["replicas"]) for rs in await self.replica_sets())
        if not self.sizes or self.sizes[-1] != sizes:
            self.sizes.append(sizes)
        pods = await self.rig.pods(NS)
        ready = sum(1 for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in (p.get("status") or {}).get("conditions") or []))
        self.worst_pods = max(self.worst_pods, len(pods))
        self.worst_ready = min(self.worst_ready, ready)
        assert len(pods) <= self.max_pods, f"{len(pods)} pods, at most {self.max_pods} allowed"
        assert ready >= self.min_ready, f"{ready} ready pods, at least {self.min_ready} needed"

    def start_rollout(self, max_pods: int, min_ready: int) -> None:
        """Forget what was seen so far; from now on check these bounds."""
        self.sizes.clear()
        self.max_pods, self.min_ready = max_pods, min_ready
        self.worst_pods, self.worst_ready = 0, 1 << 30

    async def converge(self, rounds: int = 30) -> None:
        """Passes of both controllers, the kubelet marking new pods Ready, until nothing changes."""
        for _ in range(rounds):
            before = await self.rig.harness.revision()
            await self.rig.reconcile(self.deployments, KEY)
            await self.check()
            for rs in await self.replica_sets():
                await self.rig.reconcile(self.replicasets, f"{NS}/{rs['metadata']['name']}")
            await self.check()
            for pod in await self.rig.pods(NS):
                if not (pod.get("status") or {}).get("conditions"):
                    await self.rig.mark_ready(pod)
            for rs in await self.replica_sets():
                await self.rig.reconcile(self.replicasets, f"{NS}/{rs['metadata']['name']}")
            await self.check()
            if await self.rig.harness.revision() == before:
                return
        raise AssertionError(f"no steady state after {rounds} rounds; sizes so far {self.sizes}")


@pytest.fixture
def world(rig: Rig) -> World:
    return World(rig, DeploymentController(rig.client, rig.informers, clock=rig.clock, wall=rig.wall),
                 ReplicaSetController(rig.client, rig.informers, clock=rig.clock, wall=rig.wall))


async def deployment_status(world: World) -> Obj:
    status: Obj = (await world.rig.client.get(resources.DEPLOYMENTS, "web", NS))["status"]
    return status


def condition(status: Obj, type_: str) -> tuple[str, str]:
    found = [c for c in status.get("conditions") or [] if c["type"] == type_]
    assert len(found) == 1, status
    return found[0]["status"], found[0]["reason"]


async def test_the_first_replicaset_and_the_status(world: World) -> None:
    d = await world.rig.client.create(resources.DEPLOYMENTS, deployment(3))
    world.max_pods = 3
    async with world.rig.running(world.deployments, world.replicasets):
        await world.converge()
        [rs] = await world.replica_sets()
        meta = rs["metadata"]
        pod_hash = meta["labels"][HASH]
        assert meta["name"] == f"web-{pod_hash}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH: pod_hash}
        assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH: pod_hash}
        assert rs["spec"]["replicas"] == 3
        assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                            "uid": d["metadata"]["uid"], "controller": True,
                                            "blockOwnerDeletion": True}]
        assert meta["annotations"]["deployment.kubernetes.io/revision"] == "1"
        assert len(await world.rig.pods(NS)) == 3
        status = await deployment_status(world)
        assert {k: status.get(k) for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                           "availableReplicas")} == {
            "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
            "availableReplicas": 3}
        assert condition(status, "Available") == ("True", "MinimumReplicasAvailable")
        assert condition(status, "Progressing") == ("True", "NewReplicaSetAvailable")
        stored = await world.rig.client.get(resources.DEPLOYMENTS, "web", NS)
        assert stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"


@pytest.mark.parametrize(("surge", "unavailable", "expected"), [
    (1, 0, [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]),
    (0, 1, [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]),
    (2, 1, [(2, 2), (2, 3), (0, 3)]),
])
async def test_a_rolling_update_stays_within_max_surge_and_max_unavailable(
        world: World, surge: int, unavailable: int, expected: list[tuple[int, int]]) -> None:
    replicas = 3
    await world.rig.client.create(resources.DEPLOYMENTS, deployment(replicas, **rolling(surge, unavailable)))
    world.max_pods = replicas
    async with world.rig.running(world.deployments, world.replicasets):
        await world.converge()
        world.start_rollout(replicas + surge, replicas - unavailable)
        await world.rig.client.patch(resources.DEPLOYMENTS, "web", {"spec": {"template": {"spec": {
            "containers": [{"name": "main", "image": "busybox:2"}]}}}}, NS)
        await world.converge()

        assert world.sizes == expected
        # The bounds were used, not merely respected (max_pods/min_ready checked every pass).
        assert world.worst_pods == replicas + surge and world.worst_ready == replicas - unavailable
        old, new = await world.replica_sets()
        assert image_of(new) == "busybox:2" and image_of(old) == "busybox:1"
        assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        pods = await world.rig.pods(NS)
        assert len(pods) == 3 and all(image_of(p) == "busybox:2" for p in pods)
        status = await deployment_status(world)
        assert status["observedGeneration"] == 2
        assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (3, 3, 3)
        assert condition(status, "Progressing") == ("True", "NewReplicaSetAvailable")
        scaled = await world.rig.events(NS, "ScalingReplicaSet")
        last_old = next(sizes[0] for sizes in reversed(expected) if sizes[0] > 0)
        assert any(e["message"] == f"Scaled down replica set {old['metadata']['name']} to 0 from {last_old}"
                   for e in scaled)


async def test_observed_generation_follows_the_spec_generation(world: World) -> None:
    await world.rig.client.create(resources.DEPLOYMENTS, deployment(2))
    world.max_pods = 3
    async with world.rig.running(world.deployments, world.replicasets):
        await world.converge()
        labelled = await world.rig.client.patch(resources.DEPLOYMENTS, "web", {"metadata": {"labels": {"a": "b"}}}, NS)
        assert labelled["metadata"]["generation"] == 1
        scaled = await world.rig.client.patch(resources.DEPLOYMENTS, "web", {"spec": {"replicas": 3}}, NS)
        assert scaled["metadata"]["generation"] == 2
        await world.converge()
        assert (await deployment_status(world))["observedGeneration"] == 2


async def test_scaling_resizes_the_current_replicaset(world: World) -> None:
    await world.rig.client.create(resources.DEPLOYMENTS, deployment(2))
    world.max_pods = 5
    async with world.rig.running(world.deployments, world.replicasets):
        await world.converge()
        await world.rig.client.patch(resources.DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, NS)
        await world.converge()
        [rs] = await world.replica_sets()
        assert rs["spec"]["replicas"] == 5 and len(await world.rig.pods(NS)) == 5
        assert world.sizes == [(2,), (5,)]
        assert (await deployment_status(world))["availableReplicas"] == 5


async def test_recreate_empties_the_old_replicaset_first(world: World) -> None:
    await world.rig.client.create(resources.DEPLOYMENTS, deployment(2, type="Recreate"))
    world.max_pods = 2
    async with world.rig.running(world.deployments, world.replicasets):
        await world.converge()
        world.start_rollout(2, 0)
        await world.rig.client.patch(resources.DEPLOYMENTS, "web", {"spec": {"template": {"spec": {
            "containers": [{"name": "main", "image": "busybox:2"}]}}}}, NS)
        await world.converge()
        assert world.sizes == [(0,), (0, 2)]  # the new RS exists only once the old one is empty
        pods = await world.rig.pods(NS)
        assert len(pods) == 2 and all(image_of(p) == "busybox:2" for p in pods)
