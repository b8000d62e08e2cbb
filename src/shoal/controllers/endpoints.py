"""The Endpoints controller: core/v1 Endpoints of every Service with a selector
(kube-controller-manager's ``endpoint`` controller, ``pkg/controller/endpoint``).

Contract and invariants
-----------------------
* Level-triggered, through the API only.  Keys are Service keys ``namespace/name``.
  ``reconcile(key)`` reads the Service, its namespace's pods and the Endpoints from the
  informers' caches and writes the Endpoints ``namespace/name`` only when its subsets or labels
  differ from the desired ones (a pass with nothing to change writes nothing).
* Desired state, as Kubernetes computes it: the pods of the Service's namespace its selector
  matches that :func:`~shoal.controllers.podendpoints.should_be_endpoint` (terminating pods
  only with ``publishNotReadyAddresses``); each becomes an address ``{ip, nodeName, hostname
  (when spec.subdomain names the Service), targetRef {kind Pod, namespace, name, uid}}`` in
  ``addresses`` when Ready (or with ``publishNotReadyAddresses``), else in
  ``notReadyAddresses``, under every Service port whose ``targetPort`` it resolves
  (:func:`~shoal.controllers.podendpoints.find_port`; an unresolved named port leaves the pod
  out of that port only).  Subsets are repacked as ``RepackSubsets`` does: the ports that have
  the same addresses share one subset; addresses are sorted by IP then uid, ports by name.  A
  headless Service without ports gets address-only subsets.
* Labels: the Service's, plus ``service.kubernetes.io/headless: ""`` for a headless Service
  (Kubernetes' endpoints controller does not add ``endpointslice.kubernetes.io/skip-mirror``:
  the mirroring controller skips Services with a selector; only the API server's own
  ``kubernetes`` Endpoints carry it, :mod:`shoal.controllers.kubernetes_service`).
  Annotation ``endpoints.kubernetes.io/last-change-trigger-time`` on every write
  (:class:`~shoal.controllers.podendpoints.TriggerTimeTracker`).  No ownerReference (as in
  Kubernetes): the Endpoints of a deleted Service are deleted by this controller.
* Left alone: Services without a selector (user-managed Endpoints) and ExternalName Services.
* A pass never acts on a cache older than this controller's own last write for the key
  (:class:`~shoal.controllers.podendpoints.WriteTracker`): it waits for the Endpoints event.
* Triggers: Service add/update/delete; a pod add/delete, or an update that changes its
  :func:`~shoal.controllers.podendpoints.endpoint_view`, enqueues the Services of its namespace
  that select it (old or new labels) at once, without batching; an Endpoints update or delete
  enqueues its Service (repairs hand edits), and every Endpoints of the initial list does too
  (leftovers of deleted Services are removed at start, as Kubernetes' ``checkLeftoverEndpoints``).
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from shoal.client import resources
from shoal.client.controller import RequeueAfter
from shoal.client.errors import ForbiddenError, NotFoundError
from shoal.client.informer import EventHandler, InformerFactory, object_key, split_key
from shoal.client.rest import ApiClient
from shoal.controllers import conditions
from shoal.controllers import podendpoints as pe
from shoal.kube import times
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec

__all__ = ["EndpointsController", "desired_subsets"]

log = logging.getLogger(__name__)

#: Seconds before a pass that found the cache behind this controller's write runs again (the
#: Endpoints event normally brings the key back long before).
STALE_RETRY = 1.0


def _address(pod: Obj, service: Obj, ip: str) -> Obj:
    meta = _meta(pod)
    address: Obj = {"ip": ip}
    if pe.should_set_hostname(pod, service):
        address["hostname"] = _spec(pod)["hostname"]
    if _spec(pod).get("nodeName"):
        address["nodeName"] = _spec(pod)["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                            "uid": meta.get("uid", "")}
    return address


def _endpoint_port(service_port: Obj, number: int) -> Obj:
    port: Obj = {"name": service_port.get("name") or "", "port": number,
                 "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    if not port["name"]:
        del port["name"]
    return port


def _address_order(address: Obj) -> tuple[Any, ...]:
    try:
        packed = int.from_bytes(ipaddress.ip_address(address["ip"]).packed, "big")
    except ValueError:
        packed = 0
    return (packed, address.get("targetRef", {}).get("uid", ""))


def desired_subsets(service: Obj, pods: Sequence[Obj]) -> list[Obj]:
    """The Endpoints subsets of ``service`` for the (selected) ``pods``, repacked and sorted."""
    tolerate = bool(_spec(service).get("publishNotReadyAddresses"))
    service_ports = [p for p in _spec(service).get("ports") or [] if isinstance(p, dict)]
    # port (as a hashable key, None for "no ports") -> address identity -> (address, ready)
    by_port: dict[Any, dict[tuple[str, str], tuple[Obj, bool]]] = {}
    port_bodies: dict[Any, Obj | None] = {}
    for pod in pods:
        if not pe.should_be_endpoint(pod, include_terminating=tolerate):
            continue
        ips = pe.pod_ipv4s(pod)
        if not ips:
            continue
        address = _address(pod, service, ips[0])
        ready = tolerate or conditions.is_pod_ready(pod)
        identity = (ips[0], str(_meta(pod).get("uid", "")))
        if not service_ports:
            if pe.is_headless(service):
                by_port.setdefault(None, {})[identity] = (address, ready)
                port_bodies[None] = None
            continue
        for service_port in service_ports:
            number = pe.find_port(pod, service_port)
            if number is None:
                continue
            body = _endpoint_port(service_port, number)
            key = tuple(sorted(body.items()))
            port_bodies[key] = body
            by_port.setdefault(key, {})[identity] = (address, ready)
    # Ports with the same addresses (and readiness) share a subset.
    groups: dict[Any, list[Any]] = {}
    for key, members in by_port.items():
        signature = tuple(sorted((identity, ready) for identity, (_, ready) in members.items()))
        groups.setdefault(signature, []).append(key)
    subsets: list[Obj] = []
    for keys in groups.values():
        members = by_port[keys[0]]
        ready_addresses = sorted((a for a, ready in members.values() if ready), key=_address_order)
        not_ready = sorted((a for a, ready in members.values() if not ready), key=_address_order)
        subset: Obj = {}
        if ready_addresses:
            subset["addresses"] = ready_addresses
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        ports = [port_bodies[k] for k in keys if port_bodies[k] is not None]
        if ports:
            subset["ports"] = sorted(ports, key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))
        subsets.append(subset)
    subsets.sort(key=lambda s: (tuple((p.get("name", ""), p["port"]) for p in s.get("ports") or []),
                                _address_order([*s.get("addresses", []), *s.get("notReadyAddresses", [])][0])))
    return subsets


def desired_labels(service: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (_meta(service).get("labels") or {}).items() if k != pe.HEADLESS_LABEL}
    if pe.is_headless(service):
        labels[pe.HEADLESS_LABEL] = ""
    return labels


def _terminating_refusal(exc: ForbiddenError) -> bool:
    causes = exc.details.get("causes") or []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


class EndpointsController(pe.ServicePodsController):
    """Keeps the Endpoints of every Service with a selector (see the module docstring)."""

    def __init__(self, client: ApiClient, informers: InformerFactory, *, clock: Clock | None = None) -> None:
        super().__init__("endpoints", informers, clock=clock)
        self.client = client
        #: Endpoints objects written (created, updated or deleted) by this controller.
        self.writes = 0
        self.endpoints = informers.informer(resources.ENDPOINTS)
        self.endpoints.add_event_handler(EventHandler(
            on_add=self._on_endpoints_listed, on_update=lambda _old, new: self._on_endpoints(new),
            on_delete=self._on_endpoints))
        self.informers += [self.endpoints]
        self.tracker = pe.WriteTracker(self.endpoints)
        self.trigger_times = pe.TriggerTimeTracker()

    # -- handlers: keys only -------------------------------------------------------------

    def _on_endpoints_listed(self, endpoints: Obj) -> None:
        if not self.endpoints.has_synced:  # the initial list: look for leftovers
            self.enqueue(object_key(endpoints))

    def _on_endpoints(self, endpoints: Obj) -> None:
        self.enqueue(object_key(endpoints))

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        if not namespace:
            return
        if self.tracker.stale(key):
            raise RequeueAfter(STALE_RETRY, "the Endpoints cache is behind this controller's write")
        service = self.services.get(key)
        if service is None:
            self.trigger_times.forget(key)
            if self.endpoints.get(key) is not None:
                await self._delete(key, namespace, name)
            return
        spec = _spec(service)
        if spec.get("type") == "ExternalName" or not pe.has_selector(service):
            return
        pods = [p for p in self.pods.by_index(pe.NAMESPACE_INDEX, namespace)
                if pe.selects(service, _meta(p).get("labels"))]
        trigger = self.trigger_times.compute(key, service, pods)
        subsets = desired_subsets(service, pods)
        labels = desired_labels(service)
        current = self.endpoints.get(key)
        if current is not None and (current.get("subsets") or []) == subsets \
                and (_meta(current).get("labels") or {}) == labels:
            return
        body: Obj = copy.deepcopy(current) if current is not None else {
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}}
        meta = body["metadata"]
        meta["labels"] = labels
        annotations = dict(meta.get("annotations") or {})
        if trigger is not None:
            annotations[pe.TRIGGER_TIME_ANNOTATION] = times.format_time(trigger)
        else:
            annotations.pop(pe.TRIGGER_TIME_ANNOTATION, None)
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        if subsets:
            body["subsets"] = subsets
        else:
            body.pop("subsets", None)
        await self._write(key, namespace, body, create=current is None)

    async def _write(self, key: str, namespace: str, body: Obj, *, create: bool) -> None:
        try:
            if create:
                written = await self.client.create(resources.ENDPOINTS, body, namespace)
            else:
                written = await self.client.update(resources.ENDPOINTS, body)
        except ForbiddenError as exc:
            if create and _terminating_refusal(exc):
                log.debug("endpoints %s: the namespace is being deleted", key)
                return
            raise
        self.writes += 1
        self.tracker.wrote(key, written)
        log.debug("endpoints %s: %s", key, "created" if create else "updated")

    async def _delete(self, key: str, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.client.delete(resources.ENDPOINTS, name, namespace)
        self.writes += 1
        self.tracker.deleted(key, key)
        log.debug("endpoints %s: deleted (the Service is gone)", key)
