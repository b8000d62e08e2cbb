"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node.

The scheduler only picks up pods whose ``spec.nodeName`` is empty, so in practice this plugin
skips every pod; it is kept for parity with Kubernetes' default filter set (and for a pod
whose nodeName is set between the queue and the decision).  Reason: ``node(s) didn't match
the requested node name`` (UNRESOLVABLE).
"""

from __future__ import annotations

from shoal.scheduler.framework import UNSUPPORTED, NodeFilter, Status, Unsupported, unresolvable
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import PodInfo

__all__ = ["NAME", "REASON", "NodeName", "fits"]

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def fits(wanted: str, node: NodeInfo) -> Status | None:
    return None if not wanted or wanted == node.name else unresolvable(NAME, REASON)


class NodeName:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> NodeFilter | None:
        wanted = pod.spec.get("nodeName")
        if not wanted:
            return None
        return lambda node: fits(str(wanted), node)

    def vector_filter(self, pod: PodInfo, table: object) -> Unsupported | None:
        return UNSUPPORTED if pod.spec.get("nodeName") else None
