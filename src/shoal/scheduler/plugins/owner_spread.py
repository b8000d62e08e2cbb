"""OwnerSpread: spread the pods of one controller (ReplicaSet, StatefulSet...) over nodes.

A simplified stand-in for Kubernetes' default PodTopologySpread constraint on
``kubernetes.io/hostname`` (soft, ScheduleAnyway): pods that share the pod's controller
ownerReference uid are counted per node, and the fewer a node has, the higher it scores.
Normalised in reverse over the candidate nodes, weight 2 (the default weight of
PodTopologySpread).  Worked example: counts ``[2, 1, 0]`` → ``[0, 50, 100]``.  Pods without a
controller owner are not spread by this plugin (LeastAllocated still spreads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from shoal.scheduler.framework import default_normalize, vector_normalize
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from shoal.scheduler.nodetable import NodeTable

__all__ = ["NAME", "OwnerSpread", "spread_scores"]

NAME = "OwnerSpread"


def spread_scores(owner_uid: str, nodes: Sequence[NodeInfo]) -> list[int] | None:
    """Scores for ``nodes``; ``None`` when no node has a pod of this owner (all equal)."""
    counts = [node.owner_counts.get(owner_uid, 0) for node in nodes]
    if not any(counts):
        return None
    return default_normalize(counts, reverse=True)


class OwnerSpread:
    name = NAME
    weight = 2

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int] | None:
        return spread_scores(pod.owner_uid, nodes) if pod.owner_uid else None

    def vector_score(self, pod: PodInfo, table: NodeTable, rows: NDArray[np.intp]) -> NDArray[np.int64] | None:
        counts = table.owner_counts(pod.owner_uid, rows) if pod.owner_uid else None
        if counts is None or not counts.any():
            return None
        return vector_normalize(counts, reverse=True)
