"""Columns of the scheduler cache's nodes, for the vectorized filters and scores.

A scheduling cycle over 1000 nodes costs ~0.4-0.5 ms when every plugin runs a Python check per
node.  The default plugins therefore also offer a *vector* form (see
:mod:`shoal.scheduler.framework`): one numpy expression over all nodes, ~0.1 ms in all.
:class:`NodeTable` holds what those expressions read:

* row ``i`` is ``nodes[i]``, the :meth:`SchedulerCache.nodes` list of the moment, in its
  order (the round-robin start of the search indexes both alike);
* numeric columns (allocatable cpu/memory/pods, requested and non-zero requested cpu/memory,
  pod counts), ``unschedulable`` and ``tainted`` (the node has at least one taint, the
  synthetic readiness taint included), written by each :class:`NodeInfo` whenever it changes
  (``add_pod``, ``remove_pod``, ``set_node``), so a row always equals its NodeInfo;
* per controller owner, the rows holding pods of it and how many (``owner_counts``).

The cache drops its table when nodes come or go and builds a new one for the next decision.
Integers are int64: exact for every realistic size (memory up to 2^63/100 bytes keeps the
score products in range); a node beyond that makes :meth:`NodeTable.exact` False and the
Python path is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from shoal.scheduler.nodeinfo import NodeInfo

__all__ = ["NodeTable"]

Ints = NDArray[np.int64]
#: Beyond this an allocatable quantity times 100 could overflow int64.
_EXACT_LIMIT = 2**63 // 1000


class NodeTable:
    """numpy columns of ``nodes`` (see the module docstring); NodeInfos write their own row."""

    def __init__(self, nodes: Sequence[NodeInfo]) -> None:
        count = len(nodes)
        self.nodes = list(nodes)
        self.alloc_cpu: Ints = np.zeros(count, np.int64)
        self.alloc_memory: Ints = np.zeros(count, np.int64)
        self.alloc_pods: Ints = np.zeros(count, np.int64)
        self.requested_cpu: Ints = np.zeros(count, np.int64)
        self.requested_memory: Ints = np.zeros(count, np.int64)
        self.nz_cpu: Ints = np.zeros(count, np.int64)
        self.nz_memory: Ints = np.zeros(count, np.int64)
        self.pod_count: Ints = np.zeros(count, np.int64)
        self.unschedulable: NDArray[np.bool_] = np.zeros(count, np.bool_)
        self.tainted: NDArray[np.bool_] = np.zeros(count, np.bool_)
        #: owner uid -> {row: pods of that owner on the row's node}
        self.owner_rows: dict[str, dict[int, int]] = {}
        self._too_large: set[int] = set()
        for row, node in enumerate(self.nodes):
            node.attach(self, row)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def exact(self) -> bool:
        """Whether int64 arithmetic is exact for every node (else use the Python path)."""
        return not self._too_large

    def write_node(self, row: int, node: NodeInfo) -> None:
        """Copy what ``node`` has (allocatable, cordon, taints) into ``row``."""
        self.alloc_cpu[row] = node.alloc_cpu
        self.alloc_memory[row] = node.alloc_memory
        self.alloc_pods[row] = node.alloc_pods
        self.unschedulable[row] = node.unschedulable
        self.tainted[row] = bool(node.taints)
        if max(node.alloc_cpu, node.alloc_memory, node.alloc_pods) >= _EXACT_LIMIT:
            self._too_large.add(row)
        else:
            self._too_large.discard(row)

    def write_pods(self, row: int, node: NodeInfo) -> None:
        """Copy the totals of the pods on ``node`` into ``row`` (after every pod added or removed)."""
        self.requested_cpu[row] = node.requested_cpu
        self.requested_memory[row] = node.requested_memory
        self.nz_cpu[row] = node.nz_cpu
        self.nz_memory[row] = node.nz_memory
        self.pod_count[row] = len(node.pods)

    def set_owner_count(self, owner_uid: str, row: int, count: int) -> None:
        rows = self.owner_rows.setdefault(owner_uid, {})
        if count:
            rows[row] = count
        else:
            rows.pop(row, None)
            if not rows:
                del self.owner_rows[owner_uid]

    def owner_counts(self, owner_uid: str, rows: NDArray[np.intp]) -> Ints | None:
        """Pods of ``owner_uid`` on each of ``rows`` (None when no node has any)."""
        placed = self.owner_rows.get(owner_uid)
        if not placed:
            return None
        counts: Ints = np.zeros(len(self.nodes), np.int64)
        counts[np.fromiter(placed.keys(), np.intp, len(placed))] = np.fromiter(placed.values(), np.int64,
                                                                               len(placed))
        return counts[rows]
