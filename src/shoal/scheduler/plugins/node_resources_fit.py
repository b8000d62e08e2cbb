"""NodeResourcesFit: the pod's requests must fit in what the node has left; prefer free nodes.

Filter (Kubernetes' ``noderesources.Fit``): with the pods already bound or assumed to the node,
``pods + 1 <= allocatable pods``, and for cpu and memory, when the pod requests any,
``request <= allocatable - requested``.  Each shortfall is one reason: ``Too many pods``,
``Insufficient cpu``, ``Insufficient memory`` (in that order).  A request larger than the
node's whole allocatable can never fit, so the status is then UNRESOLVABLE (preemption would
not help); otherwise UNSCHEDULABLE.

Score (``LeastAllocated``, weight 1): per resource ``(allocatable - requested) * 100 /
allocatable`` with the *non-zero* requests of the node's pods plus this pod (pods without
requests count 100m / 200Mi), 0 when over-committed; the cpu and memory scores are averaged.
Worked example: 4000m allocatable, 1000m requested, pod 1000m → cpu ``(4000-2000)*100/4000 =
50``; memory 8Gi, 2Gi used, pod 2Gi → 50; score ``(50 + 50) // 2 = 50``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from shoal.scheduler.framework import MAX_NODE_SCORE, NodeFilter, Status, unresolvable, unschedulable
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from shoal.scheduler.nodetable import NodeTable

__all__ = ["NAME", "SCORE_NAME", "LeastAllocated", "NodeResourcesFit", "fits", "least_allocated_score"]

NAME = "NodeResourcesFit"
SCORE_NAME = "NodeResourcesLeastAllocated"
TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"


def fits(pod: PodInfo, node: NodeInfo) -> Status | None:
    """``None`` if ``pod`` fits on ``node`` as it is now, else the shortfalls."""
    cpu, memory = pod.cpu, pod.memory
    if (len(node.pods) < node.alloc_pods and (cpu == 0 or cpu <= node.alloc_cpu - node.requested_cpu)
            and (memory == 0 or memory <= node.alloc_memory - node.requested_memory)):
        return None  # the fast path: one comparison per resource
    reasons: list[str] = []
    never = False
    if len(node.pods) + 1 > node.alloc_pods:
        reasons.append(TOO_MANY_PODS)
        never = never or node.alloc_pods < 1
    if cpu > 0 and cpu > node.alloc_cpu - node.requested_cpu:
        reasons.append(INSUFFICIENT_CPU)
        never = never or cpu > node.alloc_cpu
    if memory > 0 and memory > node.alloc_memory - node.requested_memory:
        reasons.append(INSUFFICIENT_MEMORY)
        never = never or memory > node.alloc_memory
    return unresolvable(NAME, *reasons) if never else unschedulable(NAME, *reasons)


def _free_share(requested: int, allocatable: int) -> int:
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


def least_allocated_score(pod: PodInfo, node: NodeInfo) -> int:
    """The LeastAllocated score of ``node`` for ``pod`` (see the module docstring)."""
    return (_free_share(node.nz_cpu + pod.nz_cpu, node.alloc_cpu)
            + _free_share(node.nz_memory + pod.nz_memory, node.alloc_memory)) // 2


class NodeResourcesFit:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> NodeFilter | None:
        cpu, memory = pod.cpu, pod.memory

        def check(node: NodeInfo) -> Status | None:
            if (len(node.pods) < node.alloc_pods and (cpu == 0 or cpu <= node.alloc_cpu - node.requested_cpu)
                    and (memory == 0 or memory <= node.alloc_memory - node.requested_memory)):
                return None  # the fast path of fits(), inlined: this runs for every node
            return fits(pod, node)

        return check

    def vector_filter(self, pod: PodInfo, table: NodeTable) -> NDArray[np.bool_]:
        passing: NDArray[np.bool_] = table.pod_count < table.alloc_pods
        if pod.cpu:
            passing &= pod.cpu <= table.alloc_cpu - table.requested_cpu
        if pod.memory:
            passing &= pod.memory <= table.alloc_memory - table.requested_memory
        return passing


def _vector_free_share(used: NDArray[np.int64], allocatable: NDArray[np.int64]) -> NDArray[np.int64]:
    """:func:`_free_share` over arrays."""
    ok = (allocatable > 0) & (used <= allocatable)
    share: NDArray[np.int64] = np.where(ok, (allocatable - used) * MAX_NODE_SCORE // np.where(ok, allocatable, 1), 0)
    return share


class LeastAllocated:
    name = SCORE_NAME
    weight = 1

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int] | None:
        cpu, memory, top = pod.nz_cpu, pod.nz_memory, MAX_NODE_SCORE
        scores = []
        for node in nodes:  # inlined least_allocated_score: this runs for every feasible node
            used_cpu, alloc_cpu = node.nz_cpu + cpu, node.alloc_cpu
            used_memory, alloc_memory = node.nz_memory + memory, node.alloc_memory
            cpu_score = (alloc_cpu - used_cpu) * top // alloc_cpu if 0 < alloc_cpu >= used_cpu else 0
            memory_score = ((alloc_memory - used_memory) * top // alloc_memory
                            if 0 < alloc_memory >= used_memory else 0)
            scores.append((cpu_score + memory_score) // 2)
        return scores

    def vector_score(self, pod: PodInfo, table: NodeTable, rows: NDArray[np.intp]) -> NDArray[np.int64]:
        cpu = _vector_free_share(table.nz_cpu[rows] + pod.nz_cpu, table.alloc_cpu[rows])
        memory = _vector_free_share(table.nz_memory[rows] + pod.nz_memory, table.alloc_memory[rows])
        total: NDArray[np.int64] = (cpu + memory) // 2
        return total
