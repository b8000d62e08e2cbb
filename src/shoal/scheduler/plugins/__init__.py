"""The default plugin set, in Kubernetes' order (cheap, unresolvable checks first).

Filters: NodeUnschedulable, NodeName, TaintToleration (which also rejects NotReady nodes),
NodeAffinity (nodeSelector + required node affinity), NodePorts, NodeResourcesFit.  A node
fails on the first filter that rejects it, and that filter's reasons are what the
FailedScheduling message counts.  Scores (weight): LeastAllocated (1), OwnerSpread (2),
NodeAffinity preferred terms (2), TaintToleration PreferNoSchedule (3).
"""

from __future__ import annotations

from shoal.scheduler.framework import FilterPlugin, ScorePlugin
from shoal.scheduler.plugins.node_affinity import NodeAffinity, PreferredAffinity
from shoal.scheduler.plugins.node_name import NodeName
from shoal.scheduler.plugins.node_ports import NodePorts
from shoal.scheduler.plugins.node_resources_fit import LeastAllocated, NodeResourcesFit
from shoal.scheduler.plugins.node_unschedulable import NodeUnschedulable
from shoal.scheduler.plugins.owner_spread import OwnerSpread
from shoal.scheduler.plugins.taint_toleration import TaintToleration, TolerationScore

__all__ = ["default_filters", "default_scores"]


def default_filters() -> list[FilterPlugin]:
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodePorts(),
            NodeResourcesFit()]


def default_scores() -> list[ScorePlugin]:
    return [LeastAllocated(), OwnerSpread(), PreferredAffinity(), TolerationScore()]
