"""System namespaces on the real write path (in-process ApiServer, real SQLite store).

Issue 8 item 8: ``default``, ``kube-system`` and ``kube-public`` may not be deleted (403, in
kube-apiserver's words, dry run included, nothing written); ``kube-node-lease`` may, as in
Kubernetes (the system-namespaces controller creates it again).
"""

from __future__ import annotations

import pytest

from tests.support.api_harness import ApiHarness

IMMORTAL = ("default", "kube-system", "kube-public")


@pytest.mark.parametrize("name", IMMORTAL)
async def test_an_immortal_namespace_may_not_be_deleted(harness: ApiHarness, name: str) -> None:
    """Issue 8 item 8: DELETE of default/kube-system/kube-public is 403 Forbidden, as kube-apiserver."""
    before = await harness.revision()
    for query in ("", "?dryRun=All", "?propagationPolicy=Foreground&gracePeriodSeconds=0"):
        answer = await harness.http.delete(f"/api/v1/namespaces/{name}{query}")
        assert answer.status_code == 403, answer.text
        status = answer.json()
        assert status["kind"] == "Status" and status["status"] == "Failure"
        assert status["reason"] == "Forbidden" and status["code"] == 403
        assert status["message"] == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        assert status["details"]["name"] == name and status["details"]["kind"] == "namespaces"
    assert await harness.revision() == before, "a refused delete writes nothing"
    ns = (await harness.http.get(f"/api/v1/namespaces/{name}")).json()
    assert "deletionTimestamp" not in ns["metadata"] and ns["status"]["phase"] == "Active"
    # Creating content there still works.
    made = await harness.http.post(f"/api/v1/namespaces/{name}/configmaps", json={"metadata": {"name": "x"}})
    assert made.status_code == 201, made.text


async def test_kube_node_lease_may_be_deleted_as_in_kubernetes(harness: ApiHarness) -> None:
    """Issue 8 item 8: kube-node-lease is not immortal in Kubernetes: its deletion starts (200, Terminating)."""
    answer = await harness.http.delete("/api/v1/namespaces/kube-node-lease")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"]["phase"] == "Terminating"


async def test_other_namespaces_and_namespace_updates_are_untouched(harness: ApiHarness) -> None:
    """Issue 8 item 8: only deletion is refused; a namespace named like one elsewhere is fine."""
    patched = await harness.http.patch("/api/v1/namespaces/kube-system", json={"metadata": {"labels": {"a": "b"}}},
                                       headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert (await harness.http.post("/api/v1/namespaces", json={"metadata": {"name": "defaults"}})).status_code == 201
    assert (await harness.http.delete("/api/v1/namespaces/defaults")).status_code == 200
    # A ConfigMap called "default" in a namespace is no namespace.
    assert (await harness.http.post("/api/v1/namespaces/default/configmaps",
                                    json={"metadata": {"name": "default"}})).status_code == 201
    assert (await harness.http.delete("/api/v1/namespaces/default/configmaps/default")).status_code == 200
