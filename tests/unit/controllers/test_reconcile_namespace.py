"""The namespace controller's ``reconcile`` against the real in-process API (no workers, fake clocks).

Covers: a terminating namespace is emptied (every listed resource type), then finalized through
``/finalize`` and removed by the API; content held by finalizers or by a pod's grace period
keeps it (``RequeueAfter`` with the recheck interval), reported in ``status.conditions`` with
Kubernetes' types, reasons and messages, until released; a namespace that is not being deleted
and the content of other namespaces are never touched.
"""

from __future__ import annotations

import pytest

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import MERGE_PATCH
from shoal.controllers.namespace import NamespaceController
from shoal.kube.objects import Obj
from tests.support.reconciling import Rig

NS = "team"
HOLD = "example.com/hold"


def configmap(name: str, namespace: str = NS, *finalizers: str) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


@pytest.fixture
def controller(rig: Rig) -> NamespaceController:
    return NamespaceController(rig.client, rig.informers, clock=rig.clock, recheck_interval=1.5,
                               wall_clock=rig.wall)


async def fill(rig: Rig, namespace: str = NS) -> None:
    await rig.client.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": namespace}})
    for index in range(3):
        await rig.client.create(resources.CONFIGMAPS, configmap(f"cm-{index}", namespace))
    await rig.client.create(resources.SECRETS, {"apiVersion": "v1", "kind": "Secret",
                                                "metadata": {"name": "s", "namespace": namespace},
                                                "stringData": {"a": "b"}})
    await rig.client.create(resources.SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                        "metadata": {"name": "robot", "namespace": namespace}})
    await rig.client.create(resources.DEPLOYMENTS, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}})


async def content(rig: Rig, namespace: str = NS) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for ref in (resources.CONFIGMAPS, resources.SECRETS, resources.SERVICEACCOUNTS, resources.DEPLOYMENTS,
                resources.PODS):
        names = [o["metadata"]["name"] for o in (await rig.client.list(ref, namespace))["items"]]
        if names:
            found[ref.resource] = names
    return found


async def namespace_gone(rig: Rig, name: str = NS) -> bool:
    try:
        await rig.client.get(resources.NAMESPACES, name)
    except NotFoundError:
        return True
    return False


def conditions(ns: Obj) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in ns["status"].get("conditions") or []}


async def test_a_terminating_namespace_is_emptied_then_finalized(rig: Rig, controller: NamespaceController) -> None:
    await fill(rig)
    async with rig.running(controller):
        await rig.client.delete(resources.NAMESPACES, NS)
        assert await rig.reconcile(controller, NS) is None
        assert await content(rig) == {}
        assert await namespace_gone(rig)


async def test_held_content_keeps_the_namespace_and_is_reported(rig: Rig, controller: NamespaceController) -> None:
    await fill(rig)
    await rig.client.create(resources.CONFIGMAPS, configmap("held", NS, HOLD))
    await rig.client.create(resources.PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound", "namespace": NS},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox:1"}]}})
    async with rig.running(controller):
        await rig.client.delete(resources.NAMESPACES, NS)
        assert await rig.reconcile(controller, NS) == 1.5
        assert await content(rig) == {"configmaps": ["held"], "pods": ["bound"]}
        ns = await rig.client.get(resources.NAMESPACES, NS)
        assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
        found = conditions(ns)
        assert found["NamespaceContentRemaining"] == (
            "True", "SomeResourcesRemain",
            "Some resources are remaining: configmaps. has 1 resource instances, pods. has 1 resource instances")
        assert found["NamespaceDeletionContentFailure"][:2] == ("False", "ContentDeleted")
        assert found["NamespaceFinalizersRemaining"][:2] == ("False", "ContentHasNoFinalizers")

        rig.advance(1.5)  # the requeue: now the held object is seen waiting for its finalizer
        assert await rig.reconcile(controller, NS) == 1.5
        ns = await rig.client.get(resources.NAMESPACES, NS)
        assert conditions(ns)["NamespaceFinalizersRemaining"] == (
            "True", "SomeFinalizersRemain",
            f"Some content in the namespace has finalizers remaining: {HOLD} in 1 resource instances")
        since = {c["type"]: c["lastTransitionTime"] for c in ns["status"]["conditions"]}
        assert since["NamespaceContentRemaining"] == "2030-01-01T12:00:00Z"  # unchanged status, old time
        assert since["NamespaceFinalizersRemaining"] == "2030-01-01T12:00:01Z"

        rig.advance(1.5)
        assert await rig.reconcile(controller, NS) == 1.5  # nothing new: no status write
        assert (await rig.client.get(resources.NAMESPACES, NS))["metadata"]["resourceVersion"] == \
            ns["metadata"]["resourceVersion"]

        # The agent finishes the pod; the finalizer's owner lets the config map go.
        pod = await rig.client.get(resources.PODS, "bound", NS)
        await rig.client.delete(resources.PODS, "bound", NS, grace_period_seconds=0, uid=pod["metadata"]["uid"])
        await rig.client.patch(resources.CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, NS,
                               content_type=MERGE_PATCH)
        assert await rig.reconcile(controller, NS) is None
        assert await namespace_gone(rig)


async def test_a_live_namespace_and_other_namespaces_are_left_alone(rig: Rig,
                                                                    controller: NamespaceController) -> None:
    await fill(rig, "keep")
    await fill(rig, NS)
    async with rig.running(controller):
        assert await rig.reconcile(controller, "keep") is None  # not being deleted: nothing to do
        await rig.client.delete(resources.NAMESPACES, NS)
        await rig.reconcile(controller, NS)
        assert await namespace_gone(rig)
        assert not await namespace_gone(rig, "keep")
        assert await content(rig, "keep") == {
            "configmaps": ["cm-0", "cm-1", "cm-2"], "secrets": ["s"], "serviceaccounts": ["robot"],
            "deployments.apps": ["web"]}


async def test_new_content_is_refused_while_terminating(rig: Rig, controller: NamespaceController) -> None:
    await fill(rig)
    await rig.client.create(resources.CONFIGMAPS, configmap("held", NS, HOLD))
    async with rig.running(controller):
        await rig.client.delete(resources.NAMESPACES, NS)
        await rig.reconcile(controller, NS)
        with pytest.raises(Exception, match="because it is being terminated"):
            await rig.client.create(resources.CONFIGMAPS, configmap("late"))
        assert await content(rig) == {"configmaps": ["held"]}
