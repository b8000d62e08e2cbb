"""DefaultTolerationSeconds admission on the real write path (in-process ApiServer, SQLite).

Issue 8 item 17: every pod gets Kubernetes' default NoExecute tolerations for
``node.kubernetes.io/not-ready`` and ``node.kubernetes.io/unreachable`` (operator Exists), with
Shoal's :data:`~shoal.api.admission.DEFAULT_TOLERATION_SECONDS`, unless it already tolerates
that key (an empty key or an empty effect counts, as in Kubernetes); so ``spec.tolerations`` is
always a list.
"""

from __future__ import annotations

from typing import Any

import pytest

from shoal.api.admission import DEFAULT_TOLERATION_SECONDS
from shoal.kube.objects import Obj
from tests.support.api_harness import ApiHarness

PODS = "/api/v1/namespaces/default/pods"
NOT_READY = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}


def pod(name: str, tolerations: Any = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox:1"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def create(harness: ApiHarness, body: Obj, query: str = "") -> Obj:
    answer = await harness.http.post(PODS + query, json=body)
    assert answer.status_code == 201, answer.text
    created: Obj = answer.json()
    return created


def test_the_default_is_shoals_short_failover() -> None:
    """Issue 8 item 17: one constant, seconds not Kubernetes' 300 (DESIGN.md: 5 s)."""
    assert DEFAULT_TOLERATION_SECONDS == 5


async def test_a_pod_without_tolerations_gets_both_defaults(harness: ApiHarness) -> None:
    """Issue 8 item 17: spec.tolerations is the two defaults, as stored and as read back."""
    created = await create(harness, pod("plain"))
    assert created["spec"]["tolerations"] == [NOT_READY, UNREACHABLE]
    read = (await harness.http.get(f"{PODS}/plain")).json()
    assert read["spec"]["tolerations"] == [NOT_READY, UNREACHABLE]
    dry = await create(harness, pod("dry"), "?dryRun=All")
    assert dry["spec"]["tolerations"] == [NOT_READY, UNREACHABLE]


@pytest.mark.parametrize(("own", "added"), [
    # Already tolerating one key: only the other is added, and the pod's own is kept as it is.
    ([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
       "tolerationSeconds": 600}], [UNREACHABLE]),
    ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}], [NOT_READY]),  # empty effect: all
    # An empty key with Exists tolerates everything: nothing is added.
    ([{"operator": "Exists"}], []),
    ([{"operator": "Exists", "effect": "NoExecute"}], []),
    # Another effect or another key does not count.
    ([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}], [NOT_READY, UNREACHABLE]),
    ([{"key": "example.com/gpu", "operator": "Equal", "value": "yes", "effect": "NoExecute"}],
     [NOT_READY, UNREACHABLE]),
    ([], [NOT_READY, UNREACHABLE]),
])
async def test_only_missing_tolerations_are_added(harness: ApiHarness, own: list[Obj], added: list[Obj]) -> None:
    """Issue 8 item 17: as Kubernetes, only for a key the pod does not tolerate already."""
    created = await create(harness, pod("p", own))
    assert created["spec"]["tolerations"] == [*own, *added]


async def test_an_update_adds_them_to_an_older_pod_and_keeps_them(harness: ApiHarness) -> None:
    """Issue 8 item 17: a pod stored without them (before this change) gets them on its next update."""
    created = await create(harness, pod("old"))
    kind = harness.kind("pods")
    stored = await harness.storage.get(kind, "default", "old")
    del stored["spec"]["tolerations"]
    await harness.storage.update(kind, stored, int(created["metadata"]["resourceVersion"]))
    assert "tolerations" not in (await harness.http.get(f"{PODS}/old")).json()["spec"]

    patched = await harness.http.patch(f"{PODS}/old", json={"metadata": {"labels": {"a": "b"}}},
                                       headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["spec"]["tolerations"] == [NOT_READY, UNREACHABLE]

    # A client that sends the pod back without them (a full PUT) cannot drop them.
    body = patched.json()
    del body["spec"]["tolerations"]
    put = await harness.http.put(f"{PODS}/old", json=body)
    assert put.status_code == 200, put.text
    assert put.json()["spec"]["tolerations"] == [NOT_READY, UNREACHABLE]


async def test_subresources_and_other_kinds_are_left_alone(harness: ApiHarness) -> None:
    """Issue 8 item 17: pods/status and pods/binding writes do not run it (Kubernetes skips subresources)."""
    created = await create(harness, pod("sub"))
    kind = harness.kind("pods")
    stored = await harness.storage.get(kind, "default", "sub")
    del stored["spec"]["tolerations"]
    await harness.storage.update(kind, stored, int(created["metadata"]["resourceVersion"]))
    status = await harness.http.patch(f"{PODS}/sub/status", json={"status": {"message": "hi"}},
                                      headers={"Content-Type": "application/merge-patch+json"})
    assert status.status_code == 200, status.text
    assert "tolerations" not in status.json()["spec"]
    bound = await harness.http.post(f"{PODS}/sub/binding", json={
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "sub"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})
    assert bound.status_code == 201, bound.text
    assert "tolerations" not in (await harness.http.get(f"{PODS}/sub")).json()["spec"]
    # A Deployment's pod template is not a pod: no tolerations are written into it.
    deployment = await harness.http.post("/apis/apps/v1/namespaces/default/deployments", json={
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod("x")["spec"]}}})
    assert deployment.status_code == 201, deployment.text
    assert "tolerations" not in deployment.json()["spec"]["template"]["spec"]


@pytest.mark.parametrize(("tolerations", "field"), [
    ("not-a-list", "spec.tolerations"),
    ([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "operator": "Bogus"}],
     "spec.tolerations[0].operator"),
])
async def test_malformed_tolerations_are_left_to_validation(harness: ApiHarness, tolerations: Any,
                                                            field: str) -> None:
    """Issue 8 item 17: a malformed list is a 4xx naming the field, never a 500."""
    answer = await harness.http.post(PODS, json=pod("bad", tolerations))
    assert 400 <= answer.status_code < 500, answer.text
    assert field in answer.text
