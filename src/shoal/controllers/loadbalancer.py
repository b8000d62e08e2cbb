"""The service load-balancer controller: a ``type: LoadBalancer`` Service is served by every
node's proxy on its NodePorts (like k3s's ServiceLB), so its ``status.loadBalancer.ingress`` is
the nodes' addresses.

Contract and invariants
-----------------------
* Level-triggered, through the API only.  Keys are Service keys (``namespace/name``).
  ``reconcile`` reads the Service and the Nodes from the informers' caches and writes
  ``services/status`` only when the ingress list differs.
* The ingress list is :func:`ingress_for`: one ``{"ip": …}`` per distinct InternalIP (else
  ExternalIP) of each Ready node, sorted; with ``ipMode: VIP`` as Kubernetes 1.30+ reports.
  No Ready node: an empty list (nothing answers).
* A Service that is no longer a LoadBalancer gets its ingress cleared.
* Triggers: a Service added or changed enqueues itself; a Node added, changed in addresses or
  readiness, or deleted enqueues every LoadBalancer Service.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shoal.client import resources
from shoal.client.controller import Controller
from shoal.client.errors import NotFoundError
from shoal.client.informer import EventHandler, InformerFactory, object_key
from shoal.client.rest import ApiClient
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj

__all__ = ["LoadBalancerController", "ingress_for"]

log = logging.getLogger(__name__)


def _node_address(node: Obj) -> str | None:
    addresses = (node.get("status") or {}).get("addresses") or []
    for kind in ("InternalIP", "ExternalIP"):
        for address in addresses:
            if address.get("type") == kind and address.get("address"):
                return str(address["address"])
    return None


def _ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def ingress_for(nodes: Iterable[Obj]) -> list[Obj]:
    ips = sorted({ip for node in nodes if _ready(node) and (ip := _node_address(node))})
    return [{"ip": ip, "ipMode": "VIP"} for ip in ips]


class LoadBalancerController(Controller):
    def __init__(self, client: ApiClient, informers: InformerFactory, *, clock: Clock | None = None) -> None:
        super().__init__("service-lb", clock=clock)
        self.client = client
        self.services = informers.informer(resources.SERVICES)
        self.nodes = informers.informer(resources.NODES)
        self.services.add_event_handler(EventHandler(
            on_add=lambda s: self.enqueue(object_key(s)), on_update=lambda _o, n: self.enqueue(object_key(n))))
        self.nodes.add_event_handler(EventHandler(
            on_add=self._all, on_update=self._node_changed, on_delete=self._all))
        self.informers += [self.services, self.nodes]

    def _node_changed(self, old: Obj, new: Obj) -> None:
        if (_ready(old), _node_address(old)) != (_ready(new), _node_address(new)):
            self._all(new)

    def _all(self, _node: Obj) -> None:
        for service in self.services.list():
            if (service.get("spec") or {}).get("type") == "LoadBalancer":
                self.enqueue(object_key(service))

    async def reconcile(self, key: str) -> None:
        service = self.services.get(key)
        if service is None:
            return
        is_lb = (service.get("spec") or {}).get("type") == "LoadBalancer"
        wanted = ingress_for(self.nodes.list()) if is_lb else []
        status = service.get("status") or {}
        current = (status.get("loadBalancer") or {}).get("ingress") or []
        if current == wanted:
            return
        meta = service.get("metadata") or {}
        body = {"metadata": {"resourceVersion": meta.get("resourceVersion")},
                "status": {"loadBalancer": {"ingress": wanted or None}}}  # null removes it (merge patch)
        try:
            await self.client.patch(resources.SERVICES, str(meta.get("name")), body, str(meta.get("namespace")),
                                    subresource="status")
        except NotFoundError:
            return  # deleted meanwhile; a conflict (changed meanwhile) raises and is retried
        log.info("service %s: load balancer ingress %s", key, [i["ip"] for i in wanted])
