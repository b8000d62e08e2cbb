"""NodePorts: a pod's ``hostPort``s must be free on the node.

Two uses of a host port conflict when protocol and port are equal and the host IPs overlap:
equal, or either is the wildcard (``""`` / ``0.0.0.0``).  Reason: ``node(s) didn't have free
ports for the requested pod ports`` (UNSCHEDULABLE: the port frees when its pod leaves).
"""

from __future__ import annotations

from collections.abc import Mapping

from shoal.scheduler.framework import UNSUPPORTED, NodeFilter, Status, Unsupported, unschedulable
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import HostPort, PodInfo

__all__ = ["NAME", "REASON", "NodePorts", "conflicts", "fits"]

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
_WILDCARDS = ("", "0.0.0.0", "::")


def conflicts(wanted: HostPort, used: Mapping[tuple[str, int], Mapping[str, int]]) -> bool:
    """Whether ``wanted`` collides with the ports in use (``NodeInfo.ports``)."""
    protocol, ip, port = wanted
    users = used.get((protocol, port))
    if not users:
        return False
    if ip in _WILDCARDS:
        return True
    return ip in users or any(other in _WILDCARDS for other in users)


def fits(wanted: tuple[HostPort, ...], node: NodeInfo) -> Status | None:
    if any(conflicts(port, node.ports) for port in wanted):
        return unschedulable(NAME, REASON)
    return None


class NodePorts:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> NodeFilter | None:
        wanted = pod.ports
        if not wanted:
            return None
        return lambda node: fits(wanted, node) if node.ports else None

    def vector_filter(self, pod: PodInfo, table: object) -> Unsupported | None:
        return UNSUPPORTED if pod.ports else None
