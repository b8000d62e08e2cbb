"""The garbage collector's ``reconcile`` against the real in-process API (no workers).

Each test deletes owners through the API (which marks them per ``propagationPolicy``) and then
reconciles chosen graph nodes (``<resource>/<namespace>/<name>``) itself.  Covers: Background
(dependants of a gone owner are deleted; a recreated owner with a new uid does not save them;
with another live owner only the dangling reference goes; a reference to an owner that never
existed), Foreground (the cascade recurses as foreground deletions, the owner keeps its
``foregroundDeletion`` finalizer until the last dependant is gone, then disappears), Orphan
(dependants lose the reference and stay, the owner goes), and a dependant owned by a live
object of a kind it does not watch (a Namespace) is kept.
"""

from __future__ import annotations

import uuid

import pytest

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import MERGE_PATCH
from shoal.controllers.garbage_collector import GarbageCollector
from shoal.kube.objects import Obj
from tests.support.reconciling import Rig

NS = "default"
HOLD = "example.com/hold"
TYPES = (resources.CONFIGMAPS, resources.SECRETS, resources.REPLICASETS, resources.PODS)


def ref(owner: Obj) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner.get("apiVersion", "v1"), "kind": owner.get("kind", "ConfigMap"),
            "name": meta["name"], "uid": meta["uid"], "blockOwnerDeletion": True}


def configmap(name: str, *owners: Obj, finalizers: tuple[str, ...] = ()) -> Obj:
    meta: Obj = {"name": name, "namespace": NS}
    if owners:
        meta["ownerReferences"] = [ref(o) for o in owners]
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


def key(name: str, resource: str = "configmaps") -> str:
    return f"{resource}/{NS}/{name}"


@pytest.fixture
def gc(rig: Rig) -> GarbageCollector:
    return GarbageCollector(rig.client, rig.informers, TYPES, clock=rig.clock)


async def get(rig: Rig, name: str, ref_: resources.ResourceRef = resources.CONFIGMAPS) -> Obj | None:
    try:
        return await rig.client.get(ref_, name, NS)
    except NotFoundError:
        return None


async def test_background_dependants_of_a_deleted_owner_are_deleted(rig: Rig, gc: GarbageCollector) -> None:
    owner = await rig.client.create(resources.CONFIGMAPS, configmap("owner"))
    await rig.client.create(resources.CONFIGMAPS, configmap("child", owner))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": NS,
                                                                 "ownerReferences": [ref(owner)]},
              "stringData": {"a": "b"}}
    await rig.client.create(resources.SECRETS, secret)
    async with rig.running(gc):
        await rig.reconcile(gc, key("child"))
        assert await get(rig, "child") is not None  # the owner is alive: nothing happens
        await rig.client.delete(resources.CONFIGMAPS, "owner", NS, propagation_policy="Background")
        assert await get(rig, "owner") is None  # Background: the owner goes at once
        await rig.reconcile(gc, key("child"))
        await rig.reconcile(gc, key("s", "secrets"))
        assert await get(rig, "child") is None
        assert await get(rig, "s", resources.SECRETS) is None


async def test_background_collects_the_pods_of_a_deleted_replicaset(rig: Rig, gc: GarbageCollector) -> None:
    rs = await rig.client.create(resources.REPLICASETS, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}})
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": NS, "labels": {"a": "b"},
                        "ownerReferences": [{**ref(rs), "controller": True}]},
           "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
    await rig.client.create(resources.PODS, pod)
    async with rig.running(gc):
        await rig.client.delete(resources.REPLICASETS, "rs", NS)
        await rig.reconcile(gc, key("p", "pods"))
        assert await get(rig, "p", resources.PODS) is None


async def test_a_recreated_owner_does_not_save_the_old_ones_dependants(rig: Rig, gc: GarbageCollector) -> None:
    owner = await rig.client.create(resources.CONFIGMAPS, configmap("owner"))
    await rig.client.create(resources.CONFIGMAPS, configmap("child", owner))
    await rig.client.delete(resources.CONFIGMAPS, "owner", NS)
    await rig.client.create(resources.CONFIGMAPS, configmap("owner"))  # same name, new uid
    async with rig.running(gc):
        await rig.reconcile(gc, key("child"))
        assert await get(rig, "child") is None
        assert await get(rig, "owner") is not None


async def test_an_owner_that_never_existed_means_collection(rig: Rig, gc: GarbageCollector) -> None:
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost", "uid": str(uuid.uuid4())}}
    await rig.client.create(resources.CONFIGMAPS, configmap("orphaned", ghost))
    async with rig.running(gc):
        await rig.reconcile(gc, key("orphaned"))
        assert await get(rig, "orphaned") is None


async def test_with_another_live_owner_only_the_dangling_reference_goes(rig: Rig, gc: GarbageCollector) -> None:
    first = await rig.client.create(resources.CONFIGMAPS, configmap("first"))
    second = await rig.client.create(resources.CONFIGMAPS, configmap("second"))
    await rig.client.create(resources.CONFIGMAPS, configmap("shared", first, second))
    async with rig.running(gc):
        await rig.client.delete(resources.CONFIGMAPS, "first", NS)
        await rig.reconcile(gc, key("shared"))
        shared = await get(rig, "shared")
        assert shared is not None
        assert [r["uid"] for r in shared["metadata"]["ownerReferences"]] == [second["metadata"]["uid"]]
        await rig.reconcile(gc, key("shared"))  # idempotent: the live owner keeps it
        assert await get(rig, "shared") is not None


async def test_an_owner_of_an_unwatched_kind_is_looked_up_live(rig: Rig, gc: GarbageCollector) -> None:
    namespace = await rig.client.get(resources.NAMESPACES, NS)
    await rig.client.create(resources.CONFIGMAPS, configmap("by-namespace", namespace))
    gone_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nowhere", "uid": str(uuid.uuid4())}}
    await rig.client.create(resources.CONFIGMAPS, configmap("by-gone-namespace", gone_ns))
    async with rig.running(gc):
        await rig.reconcile(gc, key("by-namespace"))
        await rig.reconcile(gc, key("by-gone-namespace"))
        # Namespaces are not among the watched types: a live GET decides.
        assert await get(rig, "by-namespace") is not None
        assert await get(rig, "by-gone-namespace") is None


async def test_foreground_deletes_dependants_first_then_the_owner(rig: Rig, gc: GarbageCollector) -> None:
    owner = await rig.client.create(resources.CONFIGMAPS, configmap("owner"))
    child = await rig.client.create(resources.CONFIGMAPS, configmap("child", owner))
    await rig.client.create(resources.CONFIGMAPS, configmap("grandchild", child, finalizers=(HOLD,)))
    async with rig.running(gc):
        await rig.client.delete(resources.CONFIGMAPS, "owner", NS, propagation_policy="Foreground")
        await rig.reconcile(gc, key("owner"))
        child_meta = (await rig.client.get(resources.CONFIGMAPS, "child", NS))["metadata"]
        assert child_meta["deletionTimestamp"] and child_meta["finalizers"] == ["foregroundDeletion"]

        await rig.reconcile(gc, key("child"))  # the cascade recurses, in the foreground
        grandchild = (await rig.client.get(resources.CONFIGMAPS, "grandchild", NS))["metadata"]
        assert grandchild["deletionTimestamp"] and set(grandchild["finalizers"]) == {HOLD, "foregroundDeletion"}
        await rig.reconcile(gc, key("grandchild"))  # no dependants: its foreground finalizer goes
        assert (await rig.client.get(resources.CONFIGMAPS, "grandchild", NS))["metadata"]["finalizers"] == [HOLD]

        for name in ("child", "owner"):  # both still wait for the held grandchild
            await rig.reconcile(gc, key(name))
            waiting = await get(rig, name)
            assert waiting is not None and "foregroundDeletion" in waiting["metadata"]["finalizers"]

        await rig.client.patch(resources.CONFIGMAPS, "grandchild", {"metadata": {"finalizers": None}}, NS,
                               content_type=MERGE_PATCH)
        assert await get(rig, "grandchild") is None
        await rig.reconcile(gc, key("child"))
        assert await get(rig, "child") is None
        await rig.reconcile(gc, key("owner"))
        assert await get(rig, "owner") is None


async def test_foreground_keeps_a_dependant_that_has_another_live_owner(rig: Rig, gc: GarbageCollector) -> None:
    owner = await rig.client.create(resources.CONFIGMAPS, configmap("owner"))
    other = await rig.client.create(resources.CONFIGMAPS, configmap("other"))
    await rig.client.create(resources.CONFIGMAPS, configmap("shared", owner, other))
    async with rig.running(gc):
        await rig.client.delete(resources.CONFIGMAPS, "owner", NS, propagation_policy="Foreground")
        await rig.reconcile(gc, key("owner"))
        shared = await get(rig, "shared")
        assert shared is not None and not shared["metadata"].get("deletionTimestamp")
        assert [r["uid"] for r in shared["metadata"]["ownerReferences"]] == [other["metadata"]["uid"]]
        await rig.reconcile(gc, key("owner"))
        assert await get(rig, "owner") is None


async def test_orphan_keeps_dependants_and_drops_their_reference(rig: Rig, gc: GarbageCollector) -> None:
    owner = await rig.client.create(resources.CONFIGMAPS, configmap("owner"))
    other = await rig.client.create(resources.CONFIGMAPS, configmap("other"))
    await rig.client.create(resources.CONFIGMAPS, configmap("child", owner))
    await rig.client.create(resources.CONFIGMAPS, configmap("co-owned", owner, other))
    async with rig.running(gc):
        await rig.client.delete(resources.CONFIGMAPS, "owner", NS, propagation_policy="Orphan")
        pending = await get(rig, "owner")
        assert pending is not None and pending["metadata"]["finalizers"] == ["orphan"]
        await rig.reconcile(gc, key("owner"))
        assert await get(rig, "owner") is None
        child = await get(rig, "child")
        assert child is not None and not child["metadata"].get("ownerReferences")
        co_owned = await get(rig, "co-owned")
        assert co_owned is not None
        assert [r["uid"] for r in co_owned["metadata"]["ownerReferences"]] == [other["metadata"]["uid"]]
        await rig.reconcile(gc, key("child"))  # no owner left to miss: it stays
        assert await get(rig, "child") is not None
