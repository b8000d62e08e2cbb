"""NodeUnschedulable: a cordoned node (``spec.unschedulable: true``) takes no new pods...

...unless the pod tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint that
Kubernetes puts on cordoned nodes.  Reason: ``node(s) were unschedulable`` (UNRESOLVABLE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shoal.scheduler.framework import NodeFilter, Status, unresolvable
from shoal.scheduler.nodeinfo import NodeInfo, Taint
from shoal.scheduler.plugins.taint_toleration import pod_tolerations, tolerates
from shoal.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from shoal.scheduler.nodetable import NodeTable

__all__ = ["NAME", "REASON", "UNSCHEDULABLE_TAINT", "NodeUnschedulable", "fits"]

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
_FAILED = unresolvable(NAME, REASON)


def fits(tolerated: bool, node: NodeInfo) -> Status | None:
    return _FAILED if node.unschedulable and not tolerated else None


class NodeUnschedulable:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> NodeFilter | None:
        if tolerates(pod_tolerations(pod), UNSCHEDULABLE_TAINT):
            return None
        return lambda node: _FAILED if node.unschedulable else None  # fits(False, node), inlined

    def vector_filter(self, pod: PodInfo, table: NodeTable) -> NDArray[np.bool_] | None:
        if tolerates(pod_tolerations(pod), UNSCHEDULABLE_TAINT) or not table.unschedulable.any():
            return None
        return ~table.unschedulable
