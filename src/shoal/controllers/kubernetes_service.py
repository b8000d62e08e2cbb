"""The ``kubernetes`` Service in ``default`` and its Endpoints and EndpointSlice: how pods reach
the API server (kube-apiserver's ``kubernetesservice`` bootstrap controller and its endpoint
reconciler, ``pkg/controlplane/controller/kubernetesservice``, ``pkg/controlplane/reconcilers``).

What it keeps, as kube-apiserver writes it:

* Service ``default/kubernetes``: labels ``component: apiserver``, ``provider: kubernetes``;
  ``type: ClusterIP``, ``clusterIP`` :data:`CLUSTER_IP` (the service CIDR's first address, which
  the API's allocator reserves for this Service), one port ``https`` 443/TCP whose
  ``targetPort`` is the API server's port; no selector (so the Endpoints and EndpointSlice
  controllers leave it alone).  Created when missing; its ports and type are put back when they
  differ (``clusterIP`` is immutable: a different one is logged, not fought).
* Endpoints ``default/kubernetes``: label ``endpointslice.kubernetes.io/skip-mirror: "true"``,
  one subset with the API server's address and port ``https``/TCP.
* EndpointSlice ``default/kubernetes`` (a fixed name, not generated): label
  ``kubernetes.io/service-name: kubernetes`` only - no ``managed-by``: it is not the
  endpointslice controller's - the API server's address with ``ready: true``, the same port.
  Other slices labelled for the Service are deleted, as the API server's reconciler does.

Where it runs (the layering choice): kube-apiserver does this inside each API server, and its
lease reconciler lists every live API server.  Shoal's API package may not use the client and
has no loop for it, so this is a controller: leader-elected with the others, writing only
through the API, and learning the address from the only place a controller knows it - its
client's ``server_url`` (the host resolved to an IPv4/IPv6 address when it is a name).  So the
endpoints list the leading server only; with several servers the next leader writes its own
address within one term.  On the all-in-one the API listens on 127.0.0.1, and loopback
endpoints are accepted by validation (:mod:`shoal.resources.kinds.endpoints`).

It also keeps ``kube-system/kube-dns`` (:mod:`shoal.client.systemservices`) existing: created again
whenever it is deleted, its own key :data:`~shoal.client.systemservices.KUBE_DNS_KEY`.

Level-triggered: one key, :data:`KEY`; changes of the three objects enqueue it, and every pass
ends with a resync :class:`~shoal.client.controller.RequeueAfter` (kube-apiserver: 10 s).  A pass
with nothing to change writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

from shoal.client import resources
from shoal.client.controller import Controller, RequeueAfter
from shoal.client.errors import AlreadyExistsError, NotFoundError
from shoal.client.informer import EventHandler, InformerFactory, object_key
from shoal.client.rest import ApiClient
from shoal.client.systemservices import KUBE_DNS_KEY, KUBERNETES_IP, kube_dns_service, kubernetes_service
from shoal.controllers import slicing
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec

__all__ = ["CLUSTER_IP", "KEY", "RESYNC_SECONDS", "KubernetesServiceController", "api_address"]

log = logging.getLogger(__name__)

NAMESPACE, NAME = "default", "kubernetes"
KEY = f"{NAMESPACE}/{NAME}"
CLUSTER_IP = KUBERNETES_IP
PORT_NAME = "https"
SERVICE_PORT = 443
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
RESYNC_SECONDS = 10.0


async def api_address(server_url: str) -> tuple[str, int]:
    """The API server's (IP, port) from a client's URL; a host name is resolved."""
    parts = urlsplit(server_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not found:
        raise OSError(f"{host} has no address")
    return str(found[0][4][0]), port


def _ports(service: Obj) -> list[tuple[object, ...]]:
    return [(p.get("name"), p.get("port"), p.get("protocol") or "TCP", p.get("targetPort"))
            for p in _spec(service).get("ports") or [] if isinstance(p, dict)]


class KubernetesServiceController(Controller):
    """Keeps ``default/kubernetes`` pointing at this API server (see the module docstring)."""

    def __init__(self, client: ApiClient, informers: InformerFactory, *, clock: Clock | None = None,
                 cluster_ip: str = CLUSTER_IP, resync: float = RESYNC_SECONDS) -> None:
        super().__init__("kubernetes-service", clock=clock)
        self.client = client
        self.cluster_ip = cluster_ip
        self.resync = resync
        #: Objects written by this controller.
        self.writes = 0
        self._address: tuple[str, int] | None = None
        self.services = informers.informer(resources.SERVICES)
        self.endpoints = informers.informer(resources.ENDPOINTS)
        self.slices = informers.informer(resources.ENDPOINTSLICES)
        for informer in (self.services, self.endpoints):
            informer.add_event_handler(EventHandler(
                on_add=self._on_object, on_update=lambda _old, new: self._on_object(new),
                on_delete=self._on_object))
        self.slices.add_event_handler(EventHandler(
            on_add=self._on_slice, on_update=lambda _old, new: self._on_slice(new), on_delete=self._on_slice))
        self.informers += [self.services, self.endpoints, self.slices]
        self.enqueue(KEY)
        self.enqueue(KUBE_DNS_KEY)

    def _on_object(self, obj: Obj) -> None:
        if object_key(obj) in (KEY, KUBE_DNS_KEY):
            self.enqueue(object_key(obj))

    def _on_slice(self, slice_: Obj) -> None:
        if (_meta(slice_).get("namespace") == NAMESPACE
                and (_meta(slice_).get("labels") or {}).get(slicing.SERVICE_NAME_LABEL) == NAME):
            self.enqueue(KEY)

    async def reconcile(self, key: str) -> None:
        if key == KUBE_DNS_KEY:
            await self._kube_dns()
            return
        if key != KEY:
            return
        if self._address is None:
            self._address = await api_address(self.client.server_url)
        ip, port = self._address
        await self._service(port)
        await self._endpoints(ip, port)
        await self._slices(ip, port)
        raise RequeueAfter(self.resync, "periodic check")

    async def _kube_dns(self) -> None:
        """``kube-system/kube-dns`` exists (every pod's resolv.conf names its address)."""
        if self.services.get(KUBE_DNS_KEY) is not None:
            return
        try:
            await self.client.create(resources.SERVICES, kube_dns_service())
        except AlreadyExistsError:
            return
        except NotFoundError:
            return  # kube-system itself is missing: the system-namespaces controller brings it back
        self.writes += 1
        log.info("kubernetes-service: created %s again", KUBE_DNS_KEY)

    async def _service(self, port: int) -> None:
        desired_ports = [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP", "targetPort": port}]
        current = self.services.get(KEY)
        if current is None:
            try:
                await self.client.create(resources.SERVICES, kubernetes_service(port, self.cluster_ip), NAMESPACE)
            except AlreadyExistsError:
                log.debug("service %s: created meanwhile; the next pass compares", KEY)
                return
            self.writes += 1
            log.info("service %s: created (%s:%d -> %d)", KEY, self.cluster_ip, SERVICE_PORT, port)
            return
        if _spec(current).get("clusterIP") != self.cluster_ip:
            log.warning("service %s has clusterIP %s, not %s: leaving it", KEY, _spec(current).get("clusterIP"),
                        self.cluster_ip)
        wanted = [(PORT_NAME, SERVICE_PORT, "TCP", port)]
        if _ports(current) == wanted and _spec(current).get("type") == "ClusterIP":
            return
        body = copy.deepcopy(current)
        body["spec"]["ports"], body["spec"]["type"] = desired_ports, "ClusterIP"
        await self.client.update(resources.SERVICES, body)
        self.writes += 1
        log.warning("service %s: reset its ports to %s", KEY, desired_ports)

    async def _endpoints(self, ip: str, port: int) -> None:
        subsets = [{"addresses": [{"ip": ip}], "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}]
        labels = {SKIP_MIRROR_LABEL: "true"}
        current = self.endpoints.get(KEY)
        if current is not None and current.get("subsets") == subsets and _meta(current).get("labels") == labels:
            return
        if current is None:
            body: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": NAME, "namespace": NAMESPACE}}
        else:
            body = copy.deepcopy(current)
        body["metadata"]["labels"], body["subsets"] = labels, subsets
        await self._put(resources.ENDPOINTS, body, create=current is None)

    async def _slices(self, ip: str, port: int) -> None:
        address_type = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
        endpoints = [{"addresses": [ip], "conditions": {"ready": True}}]
        ports = [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]
        labels = {slicing.SERVICE_NAME_LABEL: NAME}
        current = None
        for other in self.slices.list(NAMESPACE):
            if (_meta(other).get("labels") or {}).get(slicing.SERVICE_NAME_LABEL) != NAME:
                continue
            if _meta(other).get("name") == NAME and other.get("addressType") == address_type:
                current = other
                continue
            with contextlib.suppress(NotFoundError):
                await self.client.delete(resources.ENDPOINTSLICES, str(_meta(other).get("name")), NAMESPACE)
            self.writes += 1
        if current is not None and (current.get("endpoints"), current.get("ports"),
                                    _meta(current).get("labels")) == (endpoints, ports, labels):
            return
        if current is None:
            body: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"name": NAME, "namespace": NAMESPACE}, "addressType": address_type}
        else:
            body = copy.deepcopy(current)
        body["metadata"]["labels"], body["endpoints"], body["ports"] = labels, endpoints, ports
        await self._put(resources.ENDPOINTSLICES, body, create=current is None)

    async def _put(self, ref: resources.ResourceRef, body: Obj, *, create: bool) -> None:
        try:
            if create:
                await self.client.create(ref, body, NAMESPACE)
            else:
                await self.client.update(ref, body)
        except AlreadyExistsError:
            log.debug("%s %s: created meanwhile; the next pass compares", ref.resource, KEY)
            return
        self.writes += 1
        log.info("%s %s: %s", ref.resource, KEY, "created" if create else "updated")
