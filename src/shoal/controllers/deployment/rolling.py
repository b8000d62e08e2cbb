"""The RollingUpdate strategy: grow the new ReplicaSet and shrink the old ones within bounds.

One pass (``rolloutRolling``): scale the new RS up if the surge allows, else scale old RSes
down if availability allows, then (once the rollout is complete) clean up old RSes, and sync
the rollout status.  Each pass makes one kind of move and lets the next event trigger the
next pass, so every write is judged against fresh state.

Bounds, with ``maxSurge`` and ``maxUnavailable`` resolved by
:func:`~shoal.controllers.deployment.replicas.resolve_fenceposts`:

* the pods of all RSes never exceed ``replicas + maxSurge`` (:func:`replicas.new_rs_new_replicas`);
* old RSes shrink only by ``allPods - minAvailable - newRSUnavailable`` at most, where
  ``minAvailable = replicas - maxUnavailable``: unhealthy old pods go first
  (:func:`plan_unhealthy_cleanup`, which cannot lower availability), then available ones as
  far as ``available - minAvailable`` allows (:func:`plan_scale_down`); oldest RSes first.
  An RS's availability counts at most its ``spec.replicas``: right after a scale-down its
  status still shows the pods being removed (Kubernetes counts them; Shoal does not, so a
  second pass on that stale status cannot take the same availability away twice).

Worked example (Kubernetes' own): 10 replicas, maxUnavailable 2, maxSurge 3.  A bad new RS
was scaled to 5 while the old one went to 8; none of the new pods ever become available, so
allPods 13, minAvailable 8, newRSUnavailable 5: 13 - 8 - 5 = 0, nothing may be scaled down
even if an old pod fails.  After ``rollout undo`` the good RS is "new" (1 unavailable) and
the crashing one old: 13 - 8 - 1 = 4 crashing pods are removed at once, because they are
unhealthy.  Rolling over to a third template instead: the third RS starts at 0 (13 pods
already), so 13 - 8 - 0 = 5 old pods may go, making room for the new RS to grow by 5.
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.controllers.deployment import progress
from shoal.controllers.deployment import replicas as r
from shoal.controllers.deployment.sync import Executor
from shoal.kube.objects import Obj

__all__ = ["max_scaled_down", "plan_scale_down", "plan_unhealthy_cleanup", "rollout_rolling"]

Plan = list[tuple[Obj, int]]


def _available(rs: Obj) -> int:
    status = rs.get("status")
    return int(status.get("availableReplicas") or 0) if isinstance(status, dict) else 0


def max_scaled_down(all_rss: Sequence[Obj], new: Obj, d: Obj) -> int:
    """How many old pods may go this pass: allPods - minAvailable - newRSUnavailable."""
    min_available = r.replicas(d) - r.max_unavailable(d)
    new_unavailable = r.replicas(new) - _available(new)
    return r.replica_count(all_rss) - min_available - new_unavailable


def plan_unhealthy_cleanup(old: Sequence[Obj], most: int) -> tuple[Plan, int]:
    """(rs, new size) moves removing up to ``most`` unavailable old pods, oldest RS first."""
    plan: Plan = []
    total = 0
    for rs in r.by_creation(old):
        if total >= most:
            break
        size, available = r.replicas(rs), _available(rs)
        if size <= available:  # nothing unhealthy (status may lag a scale-down: available > size)
            continue
        down = min(most - total, size - available)
        plan.append((rs, size - down))
        total += down
    return plan, total


def plan_scale_down(all_rss: Sequence[Obj], old: Sequence[Obj], d: Obj) -> tuple[Plan, int]:
    """(rs, new size) moves removing available old pods while ``minAvailable`` stays available."""
    min_available = r.replicas(d) - r.max_unavailable(d)
    # An RS just scaled down may still report the pods it is about to delete: count at most
    # its spec, or a stale status would let two passes remove the same availability twice.
    available = sum(min(_available(rs), r.replicas(rs)) for rs in all_rss)
    if available <= min_available:
        return [], 0
    wanted = available - min_available
    plan: Plan = []
    total = 0
    for rs in r.by_creation(old):
        if total >= wanted:
            break
        size = r.replicas(rs)
        if size == 0:
            continue
        down = min(size, wanted - total)
        plan.append((rs, size - down))
        total += down
    return plan, total


async def _reconcile_new(ex: Executor, all_rss: Sequence[Obj], new: Obj, d: Obj) -> bool:
    if r.replicas(new) == r.replicas(d):
        return False
    if r.replicas(new) > r.replicas(d):
        return await ex.scale_and_record(new, r.replicas(d), d)
    return await ex.scale_and_record(new, r.new_rs_new_replicas(d, all_rss, new), d)


async def _reconcile_old(ex: Executor, all_rss: list[Obj], old: list[Obj], new: Obj, d: Obj) -> bool:
    if r.replica_count(old) == 0:
        return False
    most = max_scaled_down(all_rss, new, d)
    if most <= 0:
        return False
    cleanup, cleaned = plan_unhealthy_cleanup(old, most)
    for rs, size in cleanup:
        await ex.scale_and_record(rs, size, d)
    scale_down, scaled = plan_scale_down(all_rss, old, d)
    for rs, size in scale_down:
        await ex.scale_and_record(rs, size, d)
    return cleaned + scaled > 0


async def rollout_rolling(ex: Executor, d: Obj, rs_list: Sequence[Obj]) -> float | None:
    """One RollingUpdate pass; returns seconds until the progress deadline needs a look."""
    new, old = await ex.replica_sets(d, rs_list, True)
    if new is None:  # cannot happen: creation either succeeds or raises
        raise RuntimeError(f"deployment {d['metadata'].get('name')}: no new replica set after creation")
    all_rss = [*old, new]
    if await _reconcile_new(ex, all_rss, new, d):
        return await progress.sync_rollout_status(ex, all_rss, new, d)
    if await _reconcile_old(ex, all_rss, r.filter_active(old), new, d):
        return await progress.sync_rollout_status(ex, all_rss, new, d)
    if progress.deployment_complete(d, d.get("status") or {}):
        await ex.cleanup(old, d)
    return await progress.sync_rollout_status(ex, all_rss, new, d)
