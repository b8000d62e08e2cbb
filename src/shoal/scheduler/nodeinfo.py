"""One node as the scheduler sees it: its schedulable attributes and what is placed on it.

:class:`NodeInfo` keeps, for one Node object, the numbers the filters and scores read on
every cycle (allocatable cpu/memory/pods, labels, taints, ``spec.unschedulable``) and the
running totals of the pods bound or assumed to it (requests, non-zero requests, pod count,
host ports in use, pods per controller owner).  The totals are updated incrementally by
:meth:`NodeInfo.add_pod` / :meth:`NodeInfo.remove_pod`; nothing is recounted per cycle.  When
the node is a row of the cache's :class:`~shoal.scheduler.nodetable.NodeTable`
(:meth:`NodeInfo.attach`), every change is written to that row too.

Readiness is expressed as a taint, as Kubernetes' node lifecycle controller does
(TaintNodesByCondition): a node whose ``Ready`` condition is not ``True`` gets a synthetic
``node.kubernetes.io/not-ready:NoSchedule`` taint (``.../unreachable`` when the status is
``Unknown``) unless it already carries a taint with that key.  So a NotReady node is
filtered by TaintToleration with Kubernetes' message, and only pods that tolerate it land.

Allocatable comes from ``status.allocatable`` (``status.capacity`` when absent); a missing
``pods`` entry means 0 pods fit, as in Kubernetes.  An unparsable quantity raises
:class:`InvalidNodeError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shoal.kube import quantity
from shoal.kube.objects import Obj
from shoal.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from shoal.scheduler.nodetable import NodeTable

__all__ = ["NOT_READY_TAINT", "UNREACHABLE_TAINT", "InvalidNodeError", "NodeInfo", "Taint", "node_taints"]

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


class InvalidNodeError(ValueError):
    """A Node whose allocatable resources cannot be interpreted."""


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


def _ready_status(node: Obj) -> str:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown")
    return ""


def node_taints(node: Obj) -> tuple[Taint, ...]:
    """The node's taints plus the synthetic readiness taint (see the module docstring)."""
    taints = [Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
              for t in (node.get("spec") or {}).get("taints") or () if isinstance(t, dict)]
    ready = _ready_status(node)
    if ready != "True":
        key = UNREACHABLE_TAINT if ready == "Unknown" else NOT_READY_TAINT
        if not any(taint.key == key for taint in taints):
            taints.append(Taint(key, "", "NoSchedule"))
    return tuple(taints)


def _allocatable(node: Obj) -> tuple[int, int, int]:
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    name = (node.get("metadata") or {}).get("name", "?")
    try:
        cpu = math.floor(quantity.parse_quantity(allocatable.get("cpu", 0)) * 1000)
        memory = math.floor(quantity.parse_quantity(allocatable.get("memory", 0)))
        pods = math.floor(quantity.parse_quantity(allocatable.get("pods", 0)))
    except ValueError as exc:
        raise InvalidNodeError(f"node {name}: bad allocatable resources: {exc}") from exc
    return cpu, memory, pods


class NodeInfo:
    """The scheduler's view of one node.  Attributes are read by plugins; only the cache writes."""

    __slots__ = (
        "alloc_cpu", "alloc_memory", "alloc_pods", "labels", "name", "node", "nz_cpu", "nz_memory",
        "owner_counts", "pods", "ports", "requested_cpu", "requested_memory", "row", "signature", "table",
        "taints", "unschedulable",
    )

    def __init__(self, node: Obj) -> None:
        self.pods: dict[str, PodInfo] = {}
        self.requested_cpu = 0
        self.requested_memory = 0
        self.nz_cpu = 0
        self.nz_memory = 0
        #: (protocol, port) -> {hostIP: how many pods use it}
        self.ports: dict[tuple[str, int], dict[str, int]] = {}
        #: controller uid -> pods of that owner on this node
        self.owner_counts: dict[str, int] = {}
        self.signature: tuple[Any, ...] = ()
        self.table: NodeTable | None = None
        self.row = -1
        self.set_node(node)

    def attach(self, table: NodeTable, row: int) -> None:
        """Make this node row ``row`` of ``table`` and write the row."""
        self.table, self.row = table, row
        table.write_node(row, self)
        table.write_pods(row, self)
        for owner, count in self.owner_counts.items():
            table.set_owner_count(owner, row, count)

    def set_node(self, node: Obj) -> bool:
        """Take a new version of the Node; True when anything a filter or score reads changed."""
        cpu, memory, pods = _allocatable(node)
        meta = node.get("metadata") or {}
        labels = meta.get("labels") or {}
        taints = node_taints(node)
        unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        signature = (cpu, memory, pods, tuple(sorted(labels.items())), taints, unschedulable)
        changed = signature != self.signature
        self.node = node
        self.name: str = str(meta.get("name", ""))
        self.labels: dict[str, str] = labels
        self.taints = taints
        self.unschedulable = unschedulable
        self.alloc_cpu, self.alloc_memory, self.alloc_pods = cpu, memory, pods
        self.signature = signature
        if changed and self.table is not None:
            self.table.write_node(self.row, self)
        return changed

    def add_pod(self, info: PodInfo) -> None:
        if info.key in self.pods:
            self.remove_pod(info.key)
        self.pods[info.key] = info
        self.requested_cpu += info.cpu
        self.requested_memory += info.memory
        self.nz_cpu += info.nz_cpu
        self.nz_memory += info.nz_memory
        if info.owner_uid:
            self.owner_counts[info.owner_uid] = self.owner_counts.get(info.owner_uid, 0) + 1
        for protocol, ip, port in info.ports:
            users = self.ports.setdefault((protocol, port), {})
            users[ip] = users.get(ip, 0) + 1
        if self.table is not None:
            self._write_row(info.owner_uid)

    def _write_row(self, owner_uid: str) -> None:
        assert self.table is not None
        self.table.write_pods(self.row, self)
        if owner_uid:
            self.table.set_owner_count(owner_uid, self.row, self.owner_counts.get(owner_uid, 0))

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is None:
            return None
        self.requested_cpu -= info.cpu
        self.requested_memory -= info.memory
        self.nz_cpu -= info.nz_cpu
        self.nz_memory -= info.nz_memory
        if info.owner_uid:
            left = self.owner_counts[info.owner_uid] - 1
            if left:
                self.owner_counts[info.owner_uid] = left
            else:
                del self.owner_counts[info.owner_uid]
        for protocol, ip, port in info.ports:
            users = self.ports[(protocol, port)]
            users[ip] -= 1
            if not users[ip]:
                del users[ip]
            if not users:
                del self.ports[(protocol, port)]
        if self.table is not None:
            self._write_row(info.owner_uid)
        return info

    def __repr__(self) -> str:
        return (f"NodeInfo({self.name!r}, cpu {self.requested_cpu}/{self.alloc_cpu}m, "
                f"memory {self.requested_memory}/{self.alloc_memory}, pods {len(self.pods)}/{self.alloc_pods})")
