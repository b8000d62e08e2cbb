"""Node IPAM: every Node gets its own pod CIDR from the cluster CIDR (Kubernetes' range allocator).

A Node without ``spec.podCIDR`` is given the lowest free ``/node_mask`` subnet (``/24`` by
default) of the cluster CIDR (``10.42.0.0/16`` by default) in ``spec.podCIDR`` and
``spec.podCIDRs``.  Invariants:

* **Never twice.**  The used set is derived, at every allocation, from the node informer (every
  cached node's ``podCIDR``/``podCIDRs``) plus this controller's *pending* allocations (written
  or being written, not yet seen in the cache).  A pending entry lives until the cache shows
  the node with a CIDR, or without the node; a retried write reuses the node's pending CIDR.
  Allocation itself never awaits, so two workers cannot pick the same subnet.
* **Conditional writes.**  The JSON patch tests the node's uid and resourceVersion; if the node
  changed meanwhile (a 422 from the failed test) the key is retried with fresh state.  A CIDR is
  never changed once set (Kubernetes makes it immutable).
* Two nodes that already share a CIDR (set by hand) are reported with a Warning event
  ``CIDRAssignmentConflict``; a full range with ``CIDRNotAvailable``.  Deleting a node frees
  its subnet.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from shoal.client import resources
from shoal.client.controller import Controller, RequeueAfter
from shoal.client.errors import ConflictError, InvalidError, NotFoundError, make_status
from shoal.client.events import WARNING, EventRecorder
from shoal.client.informer import EventHandler, InformerFactory, object_key
from shoal.client.rest import JSON_PATCH, ApiClient
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj

__all__ = ["DEFAULT_CLUSTER_CIDR", "CidrExhaustedError", "NodeIpamController", "first_free", "node_cidrs"]

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_NODE_MASK = 24
#: How long to wait before looking again when the range is full.
EXHAUSTED_RETRY = 30.0


class CidrExhaustedError(Exception):
    """Every subnet of the cluster CIDR is in use."""


def node_cidrs(node: Obj) -> set[str]:
    spec = node.get("spec")
    if not isinstance(spec, dict):
        return set()
    found = {c for c in spec.get("podCIDRs") or [] if isinstance(c, str) and c}
    single = spec.get("podCIDR")
    if isinstance(single, str) and single:
        found.add(single)
    return found


def first_free(cluster: ipaddress.IPv4Network | ipaddress.IPv6Network, mask: int, used: Iterable[str]) -> str:
    """The lowest ``/mask`` subnet of ``cluster`` that overlaps nothing in ``used``."""
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for cidr in used:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if net.version == cluster.version and net.overlaps(cluster):
            taken.append(net)
    for subnet in cluster.subnets(new_prefix=mask):
        if not any(subnet.overlaps(net) for net in taken):
            return str(subnet)
    raise CidrExhaustedError(f"no free /{mask} left in {cluster}")


class NodeIpamController(Controller):
    """See the module docstring."""

    def __init__(self, client: ApiClient, informers: InformerFactory, *,
                 cluster_cidr: str = DEFAULT_CLUSTER_CIDR, node_mask: int = DEFAULT_NODE_MASK,
                 clock: Clock | None = None) -> None:
        super().__init__("nodeipam", clock=clock)
        self.cluster = ipaddress.ip_network(cluster_cidr)
        if not self.cluster.prefixlen <= node_mask <= self.cluster.max_prefixlen:
            raise ValueError(f"node mask /{node_mask} does not fit in cluster CIDR {cluster_cidr}")
        self.node_mask = node_mask
        self.client = client
        self.recorder = EventRecorder(client, "node-ipam-controller")
        #: node name -> the CIDR this controller gave it that the cache has not shown yet.
        self.pending: dict[str, str] = {}
        self.nodes = informers.informer(resources.NODES)
        self.nodes.add_event_handler(EventHandler(
            lambda node: self.enqueue(object_key(node)),
            lambda old, new: self.enqueue(object_key(new)),
            lambda node: self.enqueue(object_key(node))))
        self.informers.append(self.nodes)

    def used(self, except_node: str = "") -> set[str]:
        used = {cidr for node in self.nodes.list() for cidr in node_cidrs(node)}
        return used | {cidr for name, cidr in self.pending.items() if name != except_node}

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self.pending.pop(key, None)
            return
        have = node_cidrs(node)
        if have:
            self.pending.pop(key, None)
            await self._report_conflicts(node, have)
            return
        cidr = self.pending.get(key)
        if cidr is None:
            try:
                cidr = first_free(self.cluster, self.node_mask, self.used())
            except CidrExhaustedError as exc:
                await self.recorder.record(_involved(node), WARNING, "CIDRNotAvailable",
                                           f"Node {key} status is now: CIDRNotAvailable ({exc})")
                raise RequeueAfter(EXHAUSTED_RETRY, str(exc)) from exc
            self.pending[key] = cidr
        await self._assign(node, cidr)

    async def _assign(self, node: Obj, cidr: str) -> None:
        meta = node["metadata"]
        spec = dict(node.get("spec") or {})
        spec.update({"podCIDR": cidr, "podCIDRs": [cidr]})
        patch = [{"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
                 {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
                 {"op": "add", "path": "/spec", "value": spec}]
        log.info("node ipam: assigning %s to node %s", cidr, meta["name"])
        try:
            await self.client.patch(resources.NODES, meta["name"], patch, content_type=JSON_PATCH)
        except NotFoundError:
            self.pending.pop(meta["name"], None)
        except InvalidError as exc:
            raise ConflictError(make_status(409, "Conflict", f"node {meta['name']} changed: {exc}")) from exc

    async def _report_conflicts(self, node: Obj, have: set[str]) -> None:
        name = node["metadata"]["name"]
        for other in self.nodes.list():
            other_name = other["metadata"]["name"]
            if other_name != name and other_name < name and have & node_cidrs(other):
                message = f"pod CIDR {sorted(have & node_cidrs(other))} of node {name} is also used by {other_name}"
                log.warning("node ipam: %s", message)
                await self.recorder.record(_involved(node), WARNING, "CIDRAssignmentConflict", message)


def _involved(node: Obj) -> Obj:
    return {**node, "apiVersion": "v1", "kind": "Node"}
