"""Deployment status and conditions: what ``kubectl rollout status`` and ``kubectl wait`` read.

:func:`calculate_status` (``calculateStatus``): ``replicas`` (pods of all RSes),
``updatedReplicas`` (pods of the new RS), ``readyReplicas``, ``availableReplicas``,
``unavailableReplicas`` (desired minus available, never negative), ``observedGeneration``,
``collisionCount`` carried over, and ``Available``: True (``MinimumReplicasAvailable``) while
``availableReplicas >= replicas - maxUnavailable``, else False (``MinimumReplicasUnavailable``).
Zero counts are omitted, as Kubernetes' JSON does.

:func:`rollout_status` (``syncRolloutStatus``) adds ``Progressing`` when the Deployment has a
progress deadline, unless the rollout is already recorded complete:

* complete (updated = replicas = available = spec.replicas) → True ``NewReplicaSetAvailable``;
* progressing (more updated, ready or available pods, or fewer old ones, than the stored
  status) → True ``ReplicaSetUpdated``, with a fresh ``lastUpdateTime`` and the old
  ``lastTransitionTime`` if it was True already;
* otherwise, once ``lastUpdateTime + progressDeadlineSeconds`` has passed → False
  ``ProgressDeadlineExceeded``; it stays so until the rollout progresses again.

``ReplicaFailure`` mirrors the new RS's (else any RS's) ``ReplicaFailure`` condition.
:func:`requeue_after` says when to look again for a stalled rollout: at its deadline.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shoal.controllers import conditions
from shoal.controllers.conditions import get_condition, new_condition, set_condition
from shoal.controllers.deployment import replicas as r
from shoal.kube import objects, times
from shoal.kube.objects import Obj
from shoal.kube.objects import status as _status

if TYPE_CHECKING:
    from shoal.controllers.deployment.sync import Executor

__all__ = [
    "AVAILABLE",
    "PROGRESSING",
    "calculate_status",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "has_progress_deadline",
    "requeue_after",
    "rollout_status",
    "same_status",
    "sync_rollout_status",
]

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"
_NO_DEADLINE = 2**31 - 1


def has_progress_deadline(d: Obj) -> bool:
    deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and deadline != _NO_DEADLINE


def same_status(first: Obj, second: Obj) -> bool:
    """Equal once zero/empty fields are ignored (they are omitted on the wire)."""
    def normal(status: Obj) -> Obj:
        return {k: v for k, v in status.items() if v not in (0, None, [], {}) or k == "collisionCount"}
    return normal(first) == normal(second)


def calculate_status(all_rss: Sequence[Obj | None], new: Obj | None, d: Obj, now: datetime) -> Obj:
    available = r.available_count(all_rss)
    unavailable = max(r.replica_count(all_rss) - available, 0)
    status: Obj = {}
    for field, value in (("observedGeneration", int((d.get("metadata") or {}).get("generation") or 0)),
                         ("replicas", r.actual_count(all_rss)), ("updatedReplicas", r.actual_count([new])),
                         ("readyReplicas", r.ready_count(all_rss)), ("availableReplicas", available),
                         ("unavailableReplicas", unavailable)):
        if value:
            status[field] = value
    old = _status(d)
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= r.replicas(d) - r.max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def _count(status: Obj, field: str) -> int:
    return int(status.get(field) or 0)


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = r.replicas(d)
    generation = int((d.get("metadata") or {}).get("generation") or 0)
    return (_count(status, "updatedReplicas") == want and _count(status, "replicas") == want
            and _count(status, "availableReplicas") == want and _count(status, "observedGeneration") >= generation)


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = _status(d)
    old_old = _count(old, "replicas") - _count(old, "updatedReplicas")
    new_old = _count(status, "replicas") - _count(status, "updatedReplicas")
    return (_count(status, "updatedReplicas") > _count(old, "updatedReplicas") or new_old < old_old
            or _count(status, "readyReplicas") > _count(old, "readyReplicas")
            or _count(status, "availableReplicas") > _count(old, "availableReplicas"))


def _deadline(d: Obj, condition: Obj) -> datetime | None:
    since = times.parse_time(condition.get("lastUpdateTime"))
    seconds = (d.get("spec") or {}).get("progressDeadlineSeconds")
    if since is None or not isinstance(seconds, int):
        return None
    return since + timedelta(seconds=seconds)


def deployment_timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    deadline = _deadline(d, condition)
    return deadline is not None and deadline < now


def _replica_failures(all_rss: Sequence[Obj | None], new: Obj | None) -> list[Obj]:
    def failures(rs: Obj | None) -> list[Obj]:
        return [{"type": REPLICA_FAILURE, "status": c.get("status"),
                 "lastUpdateTime": c.get("lastTransitionTime"), "lastTransitionTime": c.get("lastTransitionTime"),
                 "reason": c.get("reason"), "message": c.get("message")}
                for c in _status(rs).get("conditions") or [] if c.get("type") == REPLICA_FAILURE]
    return failures(new) or [c for rs in all_rss for c in failures(rs)]


def rollout_status(all_rss: Sequence[Obj | None], new: Obj | None, d: Obj, now: datetime) -> Obj:
    """The status ``syncRolloutStatus`` would write (see the module docstring)."""
    status = calculate_status(all_rss, new, d, now)
    if not has_progress_deadline(d):
        conditions.remove_condition(status, PROGRESSING)
    current = get_condition(_status(d), PROGRESSING)
    complete = (_count(status, "replicas") == _count(status, "updatedReplicas") and current is not None
                and current.get("reason") == NEW_RS_AVAILABLE)
    if has_progress_deadline(d) and not complete:
        what = f'ReplicaSet "{objects.name(new)}"' if new is not None else f'Deployment "{objects.name(d)}"'
        if deployment_complete(d, status):
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                                f"{what} has successfully progressed.", now))
        elif deployment_progressing(d, status):
            condition = new_condition(PROGRESSING, "True", RS_UPDATED, f"{what} is progressing.", now)
            if current is not None:
                if current.get("status") == "True" and "lastTransitionTime" in current:
                    condition["lastTransitionTime"] = current["lastTransitionTime"]
                conditions.remove_condition(status, PROGRESSING)
            set_condition(status, condition)
        elif deployment_timed_out(d, status, now):
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT,
                                                f"{what} has timed out progressing.", now))
    failures = _replica_failures(all_rss, new)
    if failures:
        set_condition(status, failures[0])
    else:
        conditions.remove_condition(status, REPLICA_FAILURE)
    return status


def requeue_after(d: Obj, status: Obj, now: datetime) -> float | None:
    """Seconds until a stalled rollout reaches its deadline (None: nothing to wait for)."""
    current = get_condition(_status(d), PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, status) or current.get("reason") == TIMED_OUT:
        return None
    deadline = _deadline(d, current)
    if deadline is None:
        return None
    return max((deadline - now).total_seconds(), 0.0) + 0.1


async def sync_rollout_status(ex: Executor, all_rss: Sequence[Obj | None], new: Obj | None,
                              d: Obj) -> float | None:
    """Write the rollout status if it changed; else return when to check the deadline again."""
    now = ex.wall()
    status = rollout_status(all_rss, new, d, now)
    if same_status(_status(d), status):
        return requeue_after(d, status, now)
    d["status"] = status
    await ex.update_status(d)
    return None
