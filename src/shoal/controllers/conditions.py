"""Wall-clock time, status conditions and pod readiness, as the workload controllers use them.

Time: controllers take a :data:`Wall` (``() -> datetime`` in UTC, injected so tests control
it) for everything written into objects or compared with timestamps read from them; the work
queue's monotonic :class:`~shoal.client.workqueue.Clock` only schedules requeues.
Kubernetes ``metav1.Time`` has whole seconds (:func:`stamp`), ``MicroTime`` microseconds
(:func:`micro_stamp`); :func:`parse_time` reads both.

Conditions (``apimachinery``/``deploymentutil`` semantics, on plain dicts):

* :func:`set_condition` replaces the condition of the same type, except that a condition with
  the same ``status`` *and* ``reason`` is left alone entirely, and one with the same ``status``
  keeps its ``lastTransitionTime``: the time records the last *status* change.
* :func:`remove_condition` drops one type; other conditions keep their order.

Pods: *ready* means the ``Ready`` condition is ``True``; *available* means ready for at least
``minReadySeconds`` (strictly: ``lastTransitionTime + minReadySeconds < now``; with
``minReadySeconds`` 0 every ready pod is available), as ``podutil.IsPodAvailable``.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from shoal.kube.objects import Obj
from shoal.kube.times import format_time, parse_time

__all__ = [
    "get_condition",
    "is_pod_available",
    "is_pod_ready",
    "new_condition",
    "ready_since",
    "remove_condition",
    "set_condition",
    "until_available",
]

# -- conditions ----------------------------------------------------------------------------


def _conditions(status: Obj) -> list[Obj]:
    found = status.get("conditions")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def get_condition(status: Obj, type_: str) -> Obj | None:
    for condition in _conditions(status):
        if condition.get("type") == type_:
            return condition
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime, *,
                  update_time: bool = True) -> Obj:
    """A condition stamped ``now`` (``lastUpdateTime`` too, for Deployment conditions)."""
    condition: Obj = {"type": type_, "status": status}
    if update_time:
        condition["lastUpdateTime"] = format_time(now)
    condition.update({"lastTransitionTime": format_time(now), "reason": reason, "message": message})
    return condition


def set_condition(status: Obj, condition: Obj) -> None:
    """Put ``condition`` into ``status.conditions`` (see the module docstring for the rules)."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] \
            and current.get("reason") == condition.get("reason"):
        return
    condition = copy.deepcopy(condition)
    if current is not None and current.get("status") == condition["status"] \
            and "lastTransitionTime" in current:
        condition["lastTransitionTime"] = current["lastTransitionTime"]
    status["conditions"] = [c for c in _conditions(status) if c.get("type") != condition["type"]]
    status["conditions"].append(condition)


def remove_condition(status: Obj, type_: str) -> None:
    if get_condition(status, type_) is None:
        return
    kept = [c for c in _conditions(status) if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


# -- pods ----------------------------------------------------------------------------------


def _ready_condition(pod: Obj) -> Obj | None:
    status = pod.get("status")
    return get_condition(status, "Ready") if isinstance(status, dict) else None


def is_pod_ready(pod: Obj) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    """When a ready pod became ready (its Ready condition's lastTransitionTime), else None."""
    condition = _ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return parse_time(condition.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def until_available(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until a ready but not yet available pod becomes available; None otherwise."""
    if min_ready_seconds <= 0 or is_pod_available(pod, min_ready_seconds, now):
        return None
    since = ready_since(pod)
    if since is None:
        return None
    return max(0.0, (since + timedelta(seconds=min_ready_seconds) - now).total_seconds())
