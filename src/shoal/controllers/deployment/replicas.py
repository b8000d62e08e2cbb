"""Replica arithmetic of Deployments (``deploymentutil``): pure functions on plain dicts.

``maxSurge``/``maxUnavailable`` are ints or percents of ``spec.replicas``; a percent surge is
rounded **up**, a percent unavailable **down**, and if both resolve to 0 unavailable becomes 1
(validation forbids 0/0, but rounding down can produce it).  Worked example, 10 replicas,
``maxSurge: 25%`` ``maxUnavailable: 25%``: surge = ceil(2.5) = 3, unavailable = floor(2.5) = 2,
so a rolling update keeps between 8 available and 13 existing pods.

Counting: ``spec.replicas`` of a set of ReplicaSets is :func:`replica_count`, their
``status.replicas`` :func:`actual_count`, ready and available counts come from RS status.
An *active* ReplicaSet has ``spec.replicas > 0``.

Proportional scaling (a Deployment resized mid-rollout): each active RS gets a share of the
change in proportion to its size against the ``max-replicas`` annotation it was last scaled
for (:func:`proportion`), rounded half away from zero; the leftover goes to the first RS in
the chosen order (the largest - newest on scale up, oldest on scale down).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from shoal.controllers.deployment import template
from shoal.kube.objects import Obj
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec
from shoal.kube.times import parse_time

__all__ = [
    "DESIRED_REPLICAS",
    "MAX_REPLICAS",
    "REVISION",
    "actual_count",
    "available_count",
    "by_creation",
    "by_revision",
    "by_size",
    "filter_active",
    "find_active_or_latest",
    "find_new",
    "find_old",
    "int_annotation",
    "is_rolling_update",
    "is_saturated",
    "max_surge",
    "max_unavailable",
    "new_rs_new_replicas",
    "proportion",
    "ready_count",
    "replica_count",
    "replicas",
    "resolve_fenceposts",
    "revision",
    "round_half_away",
    "scaled_value",
]

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


def _status_int(rs: Obj, field: str) -> int:
    status = rs.get("status")
    return int(status.get(field) or 0) if isinstance(status, dict) else 0


def replicas(obj: Obj) -> int:
    """``spec.replicas`` of a Deployment or ReplicaSet (the API default is 1)."""
    value = _spec(obj).get("replicas", 1)
    return int(value) if value is not None else 1


# -- maxSurge / maxUnavailable -------------------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded."""
    if isinstance(value, bool):
        raise ValueError(f"invalid int-or-percent {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"([0-9]+)%", value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid int-or-percent {value!r}")
    exact = int(match.group(1)) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(surge: Any, unavailable: Any, desired: int) -> tuple[int, int]:
    surge_n = scaled_value(surge if surge is not None else 0, desired, True)
    unavailable_n = scaled_value(unavailable if unavailable is not None else 0, desired, False)
    if surge_n == 0 and unavailable_n == 0:
        unavailable_n = 1
    return surge_n, unavailable_n


def is_rolling_update(d: Obj) -> bool:
    strategy = _spec(d).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def _fenceposts(d: Obj) -> tuple[int, int]:
    rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_fenceposts(rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), replicas(d))


def max_surge(d: Obj) -> int:
    return _fenceposts(d)[0] if is_rolling_update(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    return min(_fenceposts(d)[1], replicas(d))


# -- counting and ordering ReplicaSets -----------------------------------------------------


def replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def actual_count(rss: Iterable[Obj | None]) -> int:
    return sum(_status_int(rs, "replicas") for rs in rss if rs is not None)


def ready_count(rss: Iterable[Obj | None]) -> int:
    return sum(_status_int(rs, "readyReplicas") for rs in rss if rs is not None)


def available_count(rss: Iterable[Obj | None]) -> int:
    return sum(_status_int(rs, "availableReplicas") for rs in rss if rs is not None)


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def _created(rs: Obj) -> float:
    moment = parse_time(_meta(rs).get("creationTimestamp"))
    return moment.timestamp() if moment is not None else 0.0


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first; equal timestamps by name."""
    return sorted(rss, key=lambda rs: (_created(rs), _meta(rs).get("name", "")))


def int_annotation(obj: Obj, key: str) -> int | None:
    value = (_meta(obj).get("annotations") or {}).get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def revision(rs: Obj) -> int:
    return int_annotation(rs, REVISION) or 0


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Lowest revision first; equal revisions oldest first."""
    return sorted(by_creation(rss), key=revision)


def by_size(rss: Iterable[Obj], newer_first: bool) -> list[Obj]:
    """Largest first; equal sizes newest (``newer_first``) or oldest first."""
    ordered = by_creation(rss)
    if newer_first:
        ordered.reverse()
    return sorted(ordered, key=lambda rs: -replicas(rs))


def find_new(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (ignoring the hash)."""
    wanted = _spec(d).get("template")
    for rs in by_creation(rss):
        if template.equal_ignore_hash(_spec(rs).get("template"), wanted):
            return rs
    return None


def find_old(d: Obj, rss: Sequence[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(old RSes with pods, all old RSes): every RS but the new one."""
    new = find_new(d, rss)
    old = [rs for rs in rss if rs is not new]
    return [rs for rs in old if replicas(rs) != 0], old


def find_active_or_latest(new: Obj | None, old: Sequence[Obj]) -> Obj | None:
    """The only active RS; the newest RS if none is active; None if several are."""
    if new is None and not old:
        return None
    newest_first = by_creation(old)[::-1]
    active = filter_active([*newest_first, new])
    if not active:
        return new if new is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The RS runs the Deployment's full size, is annotated for it, and all are available."""
    if rs is None:
        return False
    return (replicas(rs) == replicas(d) and int_annotation(rs, DESIRED_REPLICAS) == replicas(d)
            and _status_int(rs, "availableReplicas") == replicas(d))


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj | None], new: Obj) -> int:
    """The size the new RS may grow to now: up to ``replicas + maxSurge`` pods in total."""
    if not is_rolling_update(d):
        return replicas(d)
    current = replica_count(all_rss)
    most = replicas(d) + max_surge(d)
    if current >= most:
        return replicas(new)
    return replicas(new) + min(most - current, replicas(d) - replicas(new))


def round_half_away(value: float) -> int:
    """Go's ``math.Round``: halves away from zero."""
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def _fraction(rs: Obj, d: Obj, deployment_status_replicas: int) -> int:
    if replicas(d) == 0:
        return -replicas(rs)
    size = replicas(d) + max_surge(d)
    annotated = int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = deployment_status_replicas
    if annotated == 0:
        return 0
    return round_half_away(replicas(rs) * size / annotated) - replicas(rs)


def proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    """How many of ``to_add`` replicas (``added`` already handed out) this RS gets."""
    if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    status = d.get("status") if isinstance(d.get("status"), dict) else {}
    fraction = _fraction(rs, d, int((status or {}).get("replicas") or 0))
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)
