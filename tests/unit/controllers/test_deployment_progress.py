"""Deployment status, conditions, the progress deadline, and the revision annotations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.controllers import conditions
from shoal.controllers.deployment import annotations as ann
from shoal.controllers.deployment import progress
from shoal.controllers.deployment import replicas as r
from shoal.kube import times
from shoal.kube.objects import Obj

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def deployment(replicas: int = 3, generation: int = 2, status: Obj | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "generation": generation, "annotations": {}},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 10,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                     **spec},
            "status": status or {}}


def rs(name: str, replicas: int, ready: int = 0, available: int = 0, **extra: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available, **extra}}


def cond(status: Obj, type_: str) -> Obj:
    found = conditions.get_condition(status, type_)
    assert found is not None, f"no {type_} condition in {status}"
    return found


def test_status_counts_and_availability() -> None:
    d = deployment(3)
    old, new = rs("old", 2, 2, 2), rs("new", 2, 1, 0)
    status = progress.calculate_status([old, new], new, d, T0)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 2, "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 2,
        "unavailableReplicas": 2}
    available = cond(status, "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")  # 2 >= 3 - 1
    status = progress.calculate_status([rs("new", 3, 1, 1)], None, d, T0)
    assert "updatedReplicas" not in status, "zero counts are omitted"
    assert cond(status, "Available")["reason"] == "MinimumReplicasUnavailable"


def test_condition_times_change_only_with_the_status() -> None:
    status: Obj = {}
    conditions.set_condition(status, conditions.new_condition("Available", "False", "A", "m", T0))
    later = T0 + timedelta(seconds=30)
    conditions.set_condition(status, conditions.new_condition("Available", "False", "A", "other", later))
    assert cond(status, "Available")["message"] == "m", "same status and reason: left alone"
    conditions.set_condition(status, conditions.new_condition("Available", "False", "B", "m", later))
    assert cond(status, "Available")["lastTransitionTime"] == times.format_time(T0)
    assert cond(status, "Available")["lastUpdateTime"] == times.format_time(later)
    conditions.set_condition(status, conditions.new_condition("Available", "True", "B", "m", later))
    assert cond(status, "Available")["lastTransitionTime"] == times.format_time(later)
    conditions.remove_condition(status, "Available")
    assert "conditions" not in status


def test_a_rollout_progresses_completes_and_then_stays_complete() -> None:
    d = deployment(2, status={"replicas": 2, "updatedReplicas": 0, "availableReplicas": 2})
    old, new = rs("old", 1, 1, 1), rs("new", 2, 1, 1)
    status = progress.rollout_status([old, new], new, d, T0)
    progressing = cond(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplicaSetUpdated")
    assert progressing["message"] == 'ReplicaSet "new" is progressing.'
    d["status"] = status
    old, new = rs("old", 0), rs("new", 2, 2, 2)
    done = progress.rollout_status([old, new], new, d, T0 + timedelta(seconds=5))
    progressing = cond(done, "Progressing")
    assert (progressing["reason"], progressing["message"]) == (
        "NewReplicaSetAvailable", 'ReplicaSet "new" has successfully progressed.')
    assert progressing["lastTransitionTime"] == times.format_time(T0), "still True: the transition time stays"
    assert progress.deployment_complete(d, done)
    d["status"] = done
    assert progress.rollout_status([old, new], new, d, T0 + timedelta(hours=1)) == done, "complete is final"
    assert progress.requeue_after(d, done, T0 + timedelta(hours=1)) is None


def test_a_stalled_rollout_times_out_at_its_deadline() -> None:
    stalled = {"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
               "conditions": [conditions.new_condition("Progressing", "True", "ReplicaSetUpdated", "x", T0)]}
    d = deployment(2, status=stalled)
    old, new = rs("old", 2, 2, 2), rs("new", 1, 0, 0)
    before = progress.rollout_status([old, new], new, d, T0 + timedelta(seconds=9))
    assert cond(before, "Progressing")["reason"] == "ReplicaSetUpdated"
    assert progress.requeue_after(d, before, T0 + timedelta(seconds=9)) == 1.1
    after = progress.rollout_status([old, new], new, d, T0 + timedelta(seconds=11))
    progressing = cond(after, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "False", "ProgressDeadlineExceeded", 'ReplicaSet "new" has timed out progressing.')
    d["status"] = after
    assert progress.requeue_after(d, after, T0 + timedelta(seconds=12)) is None, "nothing left to wait for"
    assert not progress.deployment_timed_out(deployment(2, progressDeadlineSeconds=None), after, T0)


def test_no_progressing_condition_without_a_deadline() -> None:
    d = deployment(1, status={"conditions": [conditions.new_condition("Progressing", "True", "X", "x", T0)]})
    d["spec"]["progressDeadlineSeconds"] = 2**31 - 1
    status = progress.rollout_status([rs("new", 1, 1, 1)], None, d, T0)
    assert conditions.get_condition(status, "Progressing") is None


def test_replica_failures_are_mirrored() -> None:
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota",
               "lastTransitionTime": times.format_time(T0)}
    new = rs("new", 1, conditions=[failure])
    status = progress.rollout_status([new], new, deployment(1), T0)
    mirrored = cond(status, "ReplicaFailure")
    assert (mirrored["reason"], mirrored["message"], mirrored["lastUpdateTime"]) == ("FailedCreate", "quota",
                                                                                    times.format_time(T0))
    d = deployment(1, status=status)
    assert conditions.get_condition(progress.rollout_status([rs("new", 1)], None, d, T0), "ReplicaFailure") is None


def test_revision_annotations_for_a_new_and_a_returning_replicaset() -> None:
    d = deployment(4)
    d["metadata"]["annotations"] = {"team": "blue", ann.LAST_APPLIED: "{}", r.REVISION: "2"}
    created: Obj = {"metadata": {}}
    assert ann.set_new_rs_annotations(d, created, 3, exists=False)
    assert created["metadata"]["annotations"] == {
        "team": "blue", r.REVISION: "3", r.DESIRED_REPLICAS: "4", r.MAX_REPLICAS: "5"}
    returning: Obj = {"metadata": {"annotations": {r.REVISION: "1", "own": "kept"}}}
    assert ann.set_new_rs_annotations(d, returning, 3, exists=True)
    assert returning["metadata"]["annotations"] == {
        "team": "blue", "own": "kept", r.REVISION: "3", ann.REVISION_HISTORY: "1"}
    assert not ann.set_new_rs_annotations(d, returning, 3, exists=True), "nothing left to change"
    returning["metadata"]["annotations"][r.REVISION] = "3"
    assert ann.set_new_rs_annotations(d, returning, 5, exists=True)
    assert returning["metadata"]["annotations"][ann.REVISION_HISTORY] == "1,3"
    assert ann.set_deployment_revision(d, "3") and not ann.set_deployment_revision(d, "3")


def test_revision_history_is_bounded() -> None:
    rs_obj: Obj = {"metadata": {"annotations": {r.REVISION: "9", ann.REVISION_HISTORY: "1,2,3,4,5"}}}
    ann.set_new_rs_annotations({"metadata": {}, "spec": {"replicas": 1}}, rs_obj, 10, exists=True, history_limit=7)
    assert rs_obj["metadata"]["annotations"][ann.REVISION_HISTORY] == "3,4,5,9"  # 7 characters at most


def test_same_status_ignores_omitted_zeros() -> None:
    assert progress.same_status({"replicas": 0, "conditions": []}, {})
    assert not progress.same_status({"replicas": 1}, {})
    assert not progress.same_status({"collisionCount": 0}, {})
