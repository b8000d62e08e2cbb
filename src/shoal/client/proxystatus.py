"""What node proxies say they have applied: the handshake behind "drain before kill".

Every node's service proxy keeps a Lease ``kube-node-lease/shoal-proxy-<node>`` (label
:data:`PROXY_LEASE_LABEL`) whose annotation :data:`SYNCED_REVISION` is the highest
EndpointSlice resourceVersion it has applied to HAProxy: every EndpointSlice change at or below
that revision is in effect on that node.  A node agent about to stop a pod that is an endpoint
waits until the EndpointSlices show the pod terminating and every live proxy's synced revision
has reached those slices' resourceVersion; only then does the container get SIGTERM.

Invariants
----------
1. resourceVersions are the store's global revision, so they compare as integers across
   objects.
2. A proxy is *live* while ``renewTime + leaseDurationSeconds`` has not passed; a dead node's
   proxy is not waited for.
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.kube.objects import Obj
from shoal.kube.times import parse_time

__all__ = [
    "PROXY_LEASE_LABEL",
    "PROXY_LEASE_LABEL_VALUE",
    "PROXY_LEASE_NAMESPACE",
    "SYNCED_REVISION",
    "live_proxy_revisions",
    "proxy_lease_name",
]

PROXY_LEASE_NAMESPACE = "kube-node-lease"
PROXY_LEASE_LABEL = "shoal.dev/component"
PROXY_LEASE_LABEL_VALUE = "service-proxy"
SYNCED_REVISION = "proxy.shoal.dev/synced-revision"


def proxy_lease_name(node_name: str) -> str:
    return f"shoal-proxy-{node_name}"


def live_proxy_revisions(leases: Iterable[Obj], now: float) -> dict[str, int]:
    """Node name → synced revision of every live proxy (invariant 2)."""
    out: dict[str, int] = {}
    for lease in leases:
        meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        if (meta.get("labels") or {}).get(PROXY_LEASE_LABEL) != PROXY_LEASE_LABEL_VALUE:
            continue
        renewed, duration = parse_time(spec.get("renewTime")), spec.get("leaseDurationSeconds")
        if renewed is None or not isinstance(duration, int) or renewed.timestamp() + duration < now:
            continue
        try:
            out[str(spec.get("holderIdentity") or meta.get("name"))] = int(
                (meta.get("annotations") or {}).get(SYNCED_REVISION, "0"))
        except ValueError:
            continue
    return out
