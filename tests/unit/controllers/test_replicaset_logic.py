"""ReplicaSet controller logic without a server: deletion ranking, status, pods, batches, expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.client.errors import ApiClientError, ServerError, make_status
from shoal.client.expectations import Expectations
from shoal.controllers import conditions
from shoal.controllers.replicaset import (
    calculate_status,
    deletion_order,
    is_active,
    pod_from_template,
    slow_start_batch,
)
from shoal.kube import times
from shoal.kube.clock import FakeClock
from shoal.kube.objects import Obj

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = True, ready_at: datetime = T0,
        created: datetime = T0, restarts: int = 0, labels: dict[str, str] | None = None, **meta: Any) -> Obj:
    conds = [{"type": "Ready", "status": "True" if ready else "False",
              "lastTransitionTime": times.format_time(ready_at)}]
    return {"metadata": {"name": name, "creationTimestamp": times.format_time(created),
                         "labels": labels or {"app": "a"}, **meta},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conds, "containerStatuses": [{"restartCount": restarts}]}}


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_deletion_prefers_unscheduled_then_pending_then_unready_then_newer() -> None:
    candidates = [
        pod("ready-old", created=T0),
        pod("ready-new", created=T0 + timedelta(minutes=5), ready_at=T0 + timedelta(minutes=5)),
        pod("unready", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", node="", phase="Pending", ready=False),
    ]
    assert names(deletion_order(candidates)) == ["unscheduled", "pending", "unready", "ready-new", "ready-old"]


def test_deletion_cost_crowding_and_restarts_break_ties() -> None:
    cheap = pod("cheap", annotations={"controller.kubernetes.io/pod-deletion-cost": "-10"})
    assert names(deletion_order([pod("plain"), cheap]))[0] == "cheap"
    crowded, alone = pod("crowded", node="busy"), pod("alone", node="quiet")
    related = [crowded, pod("sibling", node="busy"), alone]
    assert names(deletion_order([alone, crowded], related)) == ["crowded", "alone"]
    assert names(deletion_order([pod("steady"), pod("flaky", restarts=7)])) == ["flaky", "steady"]
    recently_ready = pod("recent", ready_at=T0 + timedelta(minutes=1))
    assert names(deletion_order([pod("long-ready"), recently_ready])) == ["recent", "long-ready"]


def test_status_counts_labels_readiness_and_availability() -> None:
    rs = {"metadata": {"generation": 3},
          "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "a", "tier": "x"}}}}}
    pods = [pod("full", labels={"app": "a", "tier": "x"}, ready_at=T0),
            pod("partial", ready_at=T0),
            pod("fresh", labels={"app": "a", "tier": "x"}, ready_at=T0 + timedelta(seconds=55)),
            pod("unready", ready=False)]
    status = calculate_status(rs, pods, T0 + timedelta(seconds=60), None)
    assert status == {"replicas": 4, "fullyLabeledReplicas": 2, "readyReplicas": 3, "availableReplicas": 2,
                      "observedGeneration": 3}
    assert conditions.until_available(pods[2], 10, T0 + timedelta(seconds=60)) == 5.0
    assert calculate_status({"metadata": {}, "spec": {}}, [], T0, None) == {"replicas": 0}


def test_replica_failure_is_set_once_and_cleared_by_a_clean_pass() -> None:
    rs: Obj = {"metadata": {"generation": 1}, "spec": {}}
    failed = calculate_status(rs, [], T0, ("FailedCreate", "pods is forbidden"))
    failure = failed["conditions"][0]
    assert (failure["type"], failure["status"], failure["reason"], failure["message"]) == (
        "ReplicaFailure", "True", "FailedCreate", "pods is forbidden")
    rs["status"] = failed
    again = calculate_status(rs, [], T0 + timedelta(seconds=9), ("FailedCreate", "other"))
    assert again["conditions"] == failed["conditions"], "an existing failure is not rewritten"
    assert "conditions" not in calculate_status(rs, [], T0, None)


def test_pods_come_from_the_template_with_a_controller_reference() -> None:
    rs: Obj = {"metadata": {"name": "web-abc", "namespace": "prod", "uid": "u-1"},
               "spec": {"template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"},
                                                  "finalizers": ["f"]},
                                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    made = pod_from_template(rs)
    assert made["metadata"] == {
        "generateName": "web-abc-", "namespace": "prod", "labels": {"app": "web"}, "annotations": {"a": "b"},
        "finalizers": ["f"], "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                                  "uid": "u-1", "controller": True, "blockOwnerDeletion": True}]}
    assert made["spec"] == rs["spec"]["template"]["spec"] and made["spec"] is not rs["spec"]["template"]["spec"]


def test_active_pods() -> None:
    assert is_active(pod("running"))
    assert not is_active(pod("done", phase="Succeeded"))
    assert not is_active(pod("failed", phase="Failed"))
    assert not is_active(pod("dying", deletionTimestamp=times.format_time(T0)))


async def test_slow_start_doubles_batches_and_stops_after_a_failure() -> None:
    calls: list[int] = []

    async def succeed() -> ApiClientError | None:
        calls.append(1)
        return None

    assert await slow_start_batch(10, 1, succeed) == (10, None)
    assert len(calls) == 10  # batches 1, 2, 4, 3
    attempts = 0
    error = ServerError(make_status(500, "InternalError", "boom"))

    async def fail_from_the_fourth() -> ApiClientError | None:
        nonlocal attempts
        attempts += 1
        return error if attempts >= 4 else None

    successes, first = await slow_start_batch(20, 1, fail_from_the_fourth)
    assert (successes, first, attempts) == (3, error, 7), "batches 1, 2, then 4 with failures: stop"


def test_expectations_block_until_observed_or_expired() -> None:
    clock = FakeClock()
    exp = Expectations(clock, ttl=300)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.pending("ns/rs") == (1, 0) and not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/p1", "ns/p2"])
    exp.deletion_observed("ns/rs", "ns/p1")
    exp.deletion_observed("ns/rs", "ns/p1")  # observed twice (update with deletionTimestamp, then delete)
    assert exp.pending("ns/rs") == (0, 1) and not exp.satisfied("ns/rs")
    clock.advance(301)
    assert exp.satisfied("ns/rs"), "a lost event must not wedge the controller"
    exp.forget("ns/rs")
    assert exp.pending("ns/rs") == (0, 0)
