"""The scheduler's cache: every node, and every pod bound or assumed to one.

Fed only by informer events (nodes; pods with ``spec.nodeName``) and by the scheduler's own
decisions (``assume``/``forget``); it never talks to the API, and a scheduling cycle reads it
without listing anything.

Invariants:

* A pod key is on at most one node.  :meth:`SchedulerCache.add_pod` with a new node moves it.
* **Assumed pods** are placed by :meth:`SchedulerCache.assume` the moment a decision is
  made, before the binding request returns, so the next decision already counts them.
  The informer's copy with ``spec.nodeName`` set *confirms* the pod (it replaces the assumed
  entry, on whatever node the server says); :meth:`SchedulerCache.forget` undoes an
  assumption whose binding failed and is a no-op once confirmed.
* Pods whose node is not in the cache (the pod informer ran ahead of the node informer, or the
  node was deleted) wait in a per-node-name holding area and are attached when the node
  appears, so totals are right whatever the event order.
* Terminal pods (Succeeded/Failed) hold no resources; the scheduler removes them.
* :meth:`SchedulerCache.nodes` returns a list that is rebuilt only when nodes come or go, and
  :meth:`SchedulerCache.table` the :class:`~shoal.scheduler.nodetable.NodeTable` of that list
  (its NodeInfos keep their rows current).
"""

from __future__ import annotations

import logging

from shoal.kube.objects import Obj
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.nodetable import NodeTable
from shoal.scheduler.podinfo import PodInfo

__all__ = ["SchedulerCache"]

log = logging.getLogger(__name__)

class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._node_list: list[NodeInfo] | None = None
        self._table: NodeTable | None = None
        #: pod key -> the node name it is on (bound, assumed or waiting for its node)
        self._placement: dict[str, str] = {}
        self._assumed: set[str] = set()
        #: node name -> pods bound to a node the cache does not have (yet)
        self._waiting: dict[str, dict[str, PodInfo]] = {}

    # -- nodes ---------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        """Every node, in a stable order (read-only)."""
        if self._node_list is None:
            self._node_list = list(self._nodes.values())
        return self._node_list

    def table(self) -> NodeTable:
        """The columns of :meth:`nodes` (same order), for the vectorized plugins."""
        if self._table is None:
            self._table = NodeTable(self.nodes())
        return self._table

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def upsert_node(self, node: Obj) -> bool:
        """Add or update a node; True when it is new or its schedulable attributes changed.

        Raises :class:`~shoal.scheduler.nodeinfo.InvalidNodeError` (the cache is unchanged)."""
        name = str((node.get("metadata") or {}).get("name", ""))
        info = self._nodes.get(name)
        if info is not None:
            return info.set_node(node)
        info = NodeInfo(node)
        self._nodes[name] = info
        self._node_list = self._table = None
        for pod in self._waiting.pop(name, {}).values():
            info.add_pod(pod)
        return True

    def remove_node(self, name: str) -> None:
        """Forget a node; its pods keep their placement and wait for a node of that name."""
        info = self._nodes.pop(name, None)
        if info is None:
            return
        self._node_list = self._table = None
        if info.pods:
            self._waiting[name] = dict(info.pods)

    # -- pods ----------------------------------------------------------------------------

    def add_pod(self, pod: PodInfo, node_name: str) -> None:
        """A pod the server reports on ``node_name`` (confirms an assumed pod)."""
        self._assumed.discard(pod.key)
        self._place(pod, node_name)

    def confirm(self, key: str, node_name: str) -> bool:
        """The server reports an assumed pod bound to the node it was assumed on: keep the
        assumed pod's info (requests cannot have changed) and stop calling it assumed.  False
        (nothing done) when the pod is not assumed there; then :meth:`add_pod` it."""
        if key not in self._assumed or self._placement.get(key) != node_name:
            return False
        self._assumed.discard(key)
        return True

    def assume(self, pod: PodInfo, node_name: str) -> None:
        """Count ``pod`` on ``node_name`` before the server has confirmed the binding."""
        self._place(pod, node_name)
        self._assumed.add(pod.key)

    def forget(self, key: str) -> None:
        """Undo :meth:`assume` (binding failed).  No-op if the pod was confirmed meanwhile."""
        if key in self._assumed:
            self._assumed.discard(key)
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def remove_pod(self, key: str) -> bool:
        """Drop a pod (deleted or terminal); True if it was on a node."""
        self._assumed.discard(key)
        node_name = self._placement.pop(key, None)
        if node_name is None:
            return False
        info = self._nodes.get(node_name)
        if info is not None:
            info.remove_pod(key)
        else:
            waiting = self._waiting.get(node_name, {})
            waiting.pop(key, None)
            if not waiting:
                self._waiting.pop(node_name, None)
        return True

    def node_of(self, key: str) -> str | None:
        return self._placement.get(key)

    def _place(self, pod: PodInfo, node_name: str) -> None:
        if key_node := self._placement.get(pod.key):
            if key_node != node_name:
                log.info("scheduler cache: pod %s moved from %s to %s", pod.key, key_node, node_name)
            self.remove_pod(pod.key)
        self._placement[pod.key] = node_name
        info = self._nodes.get(node_name)
        if info is not None:
            info.add_pod(pod)
        else:
            self._waiting.setdefault(node_name, {})[pod.key] = pod

    def __len__(self) -> int:
        """How many pods are placed (bound or assumed)."""
        return len(self._placement)
