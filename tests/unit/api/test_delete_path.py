"""Deletion through the in-process API: finalizers, graceful pod deletion, preconditions.

Covers, through HTTP requests to the ASGI app (:mod:`tests.support.api_harness`):

* finalizers: a DELETE sets ``deletionTimestamp`` and keeps the object while finalizers
  remain; no finalizer may be added then; removing the last one (PATCH or PUT) removes it;
* propagation policies add the ``foregroundDeletion`` / ``orphan`` finalizers for the garbage
  collector; Background adds none and deletes at once;
* graceful deletion of pods: a pod bound to a node gets ``deletionTimestamp`` = now + grace
  (``terminationGracePeriodSeconds``, or ``gracePeriodSeconds`` of the request, which may only
  shorten it) and stays until a DELETE with grace 0; unbound or finished pods go at once;
* Namespaces turn ``Terminating``, refuse new content (403) and go once ``/finalize`` clears
  ``spec.finalizers``;
* preconditions: a DELETE with a wrong uid or resourceVersion, and a PUT whose
  ``metadata.uid`` names another object, are 409 Conflicts that change nothing.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shoal.kube.objects import Obj
from tests.support.api_harness import ApiHarness, ok, status_of

NS = "default"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
PODS = f"/api/v1/namespaces/{NS}/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}
HOLD = "example.com/hold"


def configmap(name: str = "cm", *finalizers: str) -> Obj:
    meta: Obj = {"name": name}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def pod(name: str = "p", node: str = "", **spec: Any) -> Obj:
    body: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                 "spec": {"containers": [{"name": "main", "image": "busybox:1"}], **spec}}
    if node:
        body["spec"]["nodeName"] = node
    return body


async def delete(h: ApiHarness, path: str, **options: Any) -> httpx.Response:
    return await h.http.request("DELETE", path, json={"kind": "DeleteOptions", "apiVersion": "v1", **options})


def parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# -- finalizers --------------------------------------------------------------------------------


async def test_finalizers_hold_a_deleted_object_until_removed(harness: ApiHarness) -> None:
    ok(await harness.http.post(CONFIGMAPS, json=configmap("cm", HOLD, "example.com/other")), 201)
    pending = ok(await delete(harness, f"{CONFIGMAPS}/cm"))
    meta = pending["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0
    assert meta["finalizers"] == [HOLD, "example.com/other"]
    assert ok(await harness.http.get(f"{CONFIGMAPS}/cm"))["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]

    # A second DELETE changes nothing; no new finalizer may be added now.
    again = ok(await delete(harness, f"{CONFIGMAPS}/cm"))
    assert again["metadata"]["resourceVersion"] == meta["resourceVersion"]
    more = {"metadata": {"finalizers": [HOLD, "example.com/other", "example.com/late"]}}
    status_of(await harness.http.patch(f"{CONFIGMAPS}/cm", json=more, headers=MERGE), 422, "Invalid")

    # Other changes are still allowed; removing one finalizer keeps the object, the last removes it.
    kept = ok(await harness.http.patch(f"{CONFIGMAPS}/cm", json={"metadata": {"finalizers": [HOLD]}},
                                       headers=MERGE))
    assert kept["metadata"]["finalizers"] == [HOLD]
    body = copy.deepcopy(kept)
    body["metadata"]["finalizers"] = []
    ok(await harness.http.put(f"{CONFIGMAPS}/cm", json=body))
    status_of(await harness.http.get(f"{CONFIGMAPS}/cm"), 404, "NotFound")
    assert await harness.stored(harness.kind("configmaps"), NS, "cm") is None


async def test_without_finalizers_a_delete_removes_at_once(harness: ApiHarness) -> None:
    ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)
    answer = ok(await delete(harness, f"{CONFIGMAPS}/cm", propagationPolicy="Background"))
    assert answer["metadata"]["name"] == "cm"
    status_of(await harness.http.get(f"{CONFIGMAPS}/cm"), 404, "NotFound")
    status_of(await delete(harness, f"{CONFIGMAPS}/cm"), 404, "NotFound")


@pytest.mark.parametrize(("policy", "finalizer"), [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")])
async def test_propagation_policies_leave_work_for_the_garbage_collector(
        harness: ApiHarness, policy: str, finalizer: str) -> None:
    ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)
    pending = ok(await delete(harness, f"{CONFIGMAPS}/cm", propagationPolicy=policy))
    assert pending["metadata"]["finalizers"] == [finalizer] and pending["metadata"]["deletionTimestamp"]
    assert ok(await harness.http.get(f"{CONFIGMAPS}/cm"))["metadata"]["finalizers"] == [finalizer]
    status_of(await delete(harness, f"{CONFIGMAPS}/cm", propagationPolicy="Sideways"), 422, "Invalid")


async def test_orphan_dependents_is_the_legacy_orphan_policy(harness: ApiHarness) -> None:
    ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)
    assert ok(await delete(harness, f"{CONFIGMAPS}/cm", orphanDependents=True))["metadata"]["finalizers"] == ["orphan"]


# -- graceful deletion of pods -------------------------------------------------------------------


async def test_a_bound_pod_is_deleted_gracefully(harness: ApiHarness) -> None:
    ok(await harness.http.post(PODS, json=pod("p", node="node-1")), 201)
    began = datetime.now(UTC).replace(microsecond=0)
    pending = ok(await delete(harness, f"{PODS}/p"))
    meta = pending["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30  # the default terminationGracePeriodSeconds
    deadline = parse(meta["deletionTimestamp"])
    assert began + timedelta(seconds=29) <= deadline <= datetime.now(UTC) + timedelta(seconds=31)
    assert ok(await harness.http.get(f"{PODS}/p"))["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]

    # A shorter grace period moves the deadline closer; a longer one is ignored.
    shorter = ok(await delete(harness, f"{PODS}/p", gracePeriodSeconds=5))["metadata"]
    assert shorter["deletionGracePeriodSeconds"] == 5 and parse(shorter["deletionTimestamp"]) < deadline
    longer = ok(await delete(harness, f"{PODS}/p", gracePeriodSeconds=60))["metadata"]
    assert longer["deletionGracePeriodSeconds"] == 5

    # The node's agent finishes the deletion with grace 0 (and the uid, as a precondition).
    ok(await delete(harness, f"{PODS}/p", gracePeriodSeconds=0, preconditions={"uid": meta["uid"]}))
    status_of(await harness.http.get(f"{PODS}/p"), 404, "NotFound")


async def test_the_pod_grace_period_comes_from_its_spec(harness: ApiHarness) -> None:
    ok(await harness.http.post(PODS, json=pod("p", node="node-1", terminationGracePeriodSeconds=7)), 201)
    assert ok(await delete(harness, f"{PODS}/p"))["metadata"]["deletionGracePeriodSeconds"] == 7
    ok(await harness.http.get(f"{PODS}/p"))


async def test_unbound_and_finished_pods_go_at_once(harness: ApiHarness) -> None:
    ok(await harness.http.post(PODS, json=pod("unbound")), 201)
    ok(await delete(harness, f"{PODS}/unbound"))
    status_of(await harness.http.get(f"{PODS}/unbound"), 404, "NotFound")

    ok(await harness.http.post(PODS, json=pod("done", node="node-1")), 201)
    ok(await harness.http.patch(f"{PODS}/done/status", json={"status": {"phase": "Succeeded"}}, headers=MERGE))
    ok(await delete(harness, f"{PODS}/done"))
    status_of(await harness.http.get(f"{PODS}/done"), 404, "NotFound")


async def test_a_pod_with_finalizers_waits_for_grace_and_finalizers(harness: ApiHarness) -> None:
    body = pod("p", node="node-1")
    body["metadata"]["finalizers"] = [HOLD]
    ok(await harness.http.post(PODS, json=body), 201)
    ok(await delete(harness, f"{PODS}/p", gracePeriodSeconds=0))
    held = ok(await harness.http.get(f"{PODS}/p"))
    assert held["metadata"]["deletionGracePeriodSeconds"] == 0
    ok(await harness.http.patch(f"{PODS}/p", json={"metadata": {"finalizers": None}}, headers=MERGE))
    status_of(await harness.http.get(f"{PODS}/p"), 404, "NotFound")


# -- namespaces --------------------------------------------------------------------------------


async def test_a_deleted_namespace_terminates_until_finalized(harness: ApiHarness) -> None:
    ok(await harness.http.post("/api/v1/namespaces", json={"metadata": {"name": "team"}}), 201)
    pending = ok(await delete(harness, "/api/v1/namespaces/team"))
    assert pending["status"]["phase"] == "Terminating"
    assert pending["spec"]["finalizers"] == ["kubernetes"] and pending["metadata"]["deletionTimestamp"]

    refused = status_of(await harness.http.post("/api/v1/namespaces/team/configmaps", json=configmap()),
                        403, "Forbidden")
    assert "because it is being terminated" in refused["message"]
    assert refused["details"]["causes"][0]["reason"] == "NamespaceTerminating"

    body = copy.deepcopy(pending)
    body["spec"]["finalizers"] = []
    ok(await harness.http.put("/api/v1/namespaces/team/finalize", json=body))
    status_of(await harness.http.get("/api/v1/namespaces/team"), 404, "NotFound")


# -- preconditions -----------------------------------------------------------------------------


async def test_delete_with_a_wrong_uid_is_a_conflict(harness: ApiHarness) -> None:
    created = ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)
    uid = created["metadata"]["uid"]
    before = await harness.revision()
    answer = status_of(await delete(harness, f"{CONFIGMAPS}/cm", preconditions={"uid": "not-" + uid}),
                       409, "Conflict")
    assert f"Precondition failed: UID in precondition: not-{uid}, UID in object meta: {uid}" in answer["message"]
    assert await harness.revision() == before
    ok(await harness.http.get(f"{CONFIGMAPS}/cm"))
    ok(await delete(harness, f"{CONFIGMAPS}/cm", preconditions={"uid": uid}))
    status_of(await harness.http.get(f"{CONFIGMAPS}/cm"), 404, "NotFound")


async def test_a_uid_precondition_protects_a_recreated_object(harness: ApiHarness) -> None:
    old = ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)
    ok(await delete(harness, f"{CONFIGMAPS}/cm"))
    ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)  # same name, new uid
    status_of(await delete(harness, f"{CONFIGMAPS}/cm", preconditions={"uid": old["metadata"]["uid"]}),
              409, "Conflict")
    ok(await harness.http.get(f"{CONFIGMAPS}/cm"))


async def test_delete_with_a_stale_resource_version_is_a_conflict(harness: ApiHarness) -> None:
    created = ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)
    ok(await harness.http.patch(f"{CONFIGMAPS}/cm", json={"data": {"k": "w"}}, headers=MERGE))
    answer = status_of(await delete(harness, f"{CONFIGMAPS}/cm",
                                    preconditions={"resourceVersion": created["metadata"]["resourceVersion"]}),
                       409, "Conflict")
    assert "Precondition failed: ResourceVersion in precondition" in answer["message"]
    ok(await harness.http.get(f"{CONFIGMAPS}/cm"))


async def test_an_update_naming_another_uid_is_a_conflict(harness: ApiHarness) -> None:
    created = ok(await harness.http.post(CONFIGMAPS, json=configmap()), 201)
    before = await harness.revision()
    body = copy.deepcopy(created)
    body["metadata"]["uid"] = "someone-else"
    body["data"] = {"k": "changed"}
    answer = status_of(await harness.http.put(f"{CONFIGMAPS}/cm", json=body), 409, "Conflict")
    assert "Precondition failed: UID in precondition: someone-else" in answer["message"]
    patch = {"metadata": {"uid": "someone-else"}, "status": {"phase": "Running"}}
    ok(await harness.http.post(PODS, json=pod("p")), 201)
    status_of(await harness.http.patch(f"{PODS}/p/status", json=patch, headers=MERGE), 409, "Conflict")
    assert await harness.revision() == before + 1  # only the pod's creation
    assert ok(await harness.http.get(f"{CONFIGMAPS}/cm"))["data"] == {"k": "v"}
