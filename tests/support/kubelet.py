"""What a kubelet writes, for tests that play the node: a pod's Running status and Ready condition."""

from __future__ import annotations

from datetime import UTC, datetime

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from shoal.kube.times import format_time


async def mark_ready(client: ApiClient, pod: Obj, *, ready: bool = True, since: datetime | None = None) -> Obj:
    """Write what a kubelet would for a running pod: phase Running and the Ready condition."""
    when = format_time(since or datetime.now(UTC))
    flag = "True" if ready else "False"
    status = {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": when},
        {"type": "Initialized", "status": "True", "lastTransitionTime": when},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": when},
        {"type": "Ready", "status": flag, "lastTransitionTime": when}]}
    meta = pod["metadata"]
    return await client.patch(resources.PODS, meta["name"], {"status": status}, meta["namespace"],
                              subresource="status")
