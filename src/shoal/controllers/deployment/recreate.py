"""The Recreate strategy: all old pods go before any new pod is created.

One pass (``rolloutRecreate``): scale every old RS to 0; while any old RS still reports pods,
or any pod controlled by an old RS is not finished (Succeeded/Failed) - including pods that
are terminating - only sync the status; then create the new RS if needed (at full size) or
scale it to ``replicas``; once complete, clean up old RSes.  The controller enqueues the
Deployment when such a pod is deleted, so the wait ends as soon as the last one is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shoal.controllers.deployment import progress
from shoal.controllers.deployment import replicas as r
from shoal.controllers.deployment.sync import Executor
from shoal.kube.objects import Obj

__all__ = ["old_pods_running", "rollout_recreate"]

def old_pods_running(new: Obj | None, old: Sequence[Obj], pod_map: Mapping[str, Sequence[Obj]]) -> bool:
    """Whether old RSes still report pods, or own a pod that is not finished."""
    if r.actual_count(old) > 0:
        return True
    new_uid = (new.get("metadata") or {}).get("uid") if new is not None else None
    for uid, pods in pod_map.items():
        if new_uid is not None and uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


async def rollout_recreate(ex: Executor, d: Obj, rs_list: Sequence[Obj],
                           pod_map: Mapping[str, Sequence[Obj]]) -> float | None:
    """One Recreate pass; returns seconds until the progress deadline needs a look."""
    new, old = await ex.replica_sets(d, rs_list, False)  # no new RS before the old pods are gone
    all_rss: list[Obj | None] = [*old, new]
    scaled = False
    for rs in r.filter_active(old):
        scaled = await ex.scale_and_record(rs, 0, d) or scaled
    if scaled or old_pods_running(new, old, pod_map):
        return await progress.sync_rollout_status(ex, all_rss, new, d)
    if new is None:
        new, old = await ex.replica_sets(d, rs_list, True)
        all_rss = [*old, new]
    if new is not None:
        await ex.scale_and_record(new, r.replicas(d), d)
    if progress.deployment_complete(d, d.get("status") or {}):
        await ex.cleanup(old, d)
    return await progress.sync_rollout_status(ex, all_rss, new, d)
