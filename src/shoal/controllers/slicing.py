"""The EndpointSlice controller's arithmetic: desired endpoints and the plan of slice writes
(``k8s.io/endpointslice``'s ``reconciler.go`` and ``utils.go``), as pure functions.

:func:`desired_endpoints` turns a Service and its selected pods into endpoints grouped by their
*port set* (pods whose named ``targetPort`` resolves to different numbers, or not at all, need
different slices, since a slice's ports apply to all its endpoints):

* an endpoint is ``{addresses: [podIP], conditions: {ready, serving, terminating}, targetRef
  {kind Pod, namespace, name, uid}, nodeName, zone, hostname}`` with Kubernetes' conditions:
  ``serving`` = the pod's Ready condition, ``terminating`` = ``deletionTimestamp`` set,
  ``ready`` = serving and not terminating, or always true with ``publishNotReadyAddresses``.
  Terminating pods are included: a proxy drains them on ``terminating: true``.
* ``zone`` is the node's ``topology.kubernetes.io/zone`` label; a pod bound to a node the cache
  does not hold is left out (unless ``publishNotReadyAddresses``), as Kubernetes does.
* a port is ``{name ("" if none), port (resolved), protocol, appProtocol}``, in Service order.
  A named ``targetPort`` no container declares drops that port for that pod (the pod lands in
  a slice without it) and is reported in :attr:`Desired.missing`.

:func:`plan` compares them with the Service's existing slices and returns the creates, updates
and deletes, churning as little as Kubernetes does: endpoints stay in the slice that holds them
(updated in place when a condition changes), removed ones leave it, new ones fill first the
slices being updated anyway (fullest first), then one unchanged slice they fit in whole (the one
left fullest), then new slices of at most ``max_per_slice``.  Slices of a port set no longer
wanted, of another addressType or not owned by this Service (uid) are deleted - but a create is
turned into an update of a slice about to be deleted.  A Service with no endpoints at all keeps
exactly one empty *placeholder* slice.  A Service being deleted gets no new slices.  Nothing
is planned when everything already matches: the caller writes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.client import resources
from shoal.controllers import conditions, ownership
from shoal.controllers import podendpoints as pe
from shoal.kube.objects import SERVICE_NAME_LABEL, Obj
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec

__all__ = ["ADDRESS_TYPE", "CONTROLLER_NAME", "MANAGED_BY_LABEL", "MAX_ENDPOINTS_PER_SLICE",
           "SERVICE_NAME_LABEL", "ZONE_LABEL", "Desired", "Plan", "desired_endpoints", "endpoint_key",
           "plan", "port_key", "slice_labels"]

MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
ADDRESS_TYPE = "IPv4"
MAX_ENDPOINTS_PER_SLICE = 100
_RESERVED = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, pe.HEADLESS_LABEL)

PortKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[Any, ...]


def port_key(ports: Any) -> PortKey:
    """A slice's port set, order-insensitive (Kubernetes' ``PortMapKey``)."""
    items = [p for p in ports or [] if isinstance(p, dict)]
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
                         str(p.get("appProtocol") or "")) for p in items))


def endpoint_key(endpoint: Obj) -> EndpointKey:
    """An endpoint's identity (Kubernetes' endpoint hash): addresses, hostname, pod namespace/name."""
    ref = endpoint.get("targetRef") or {}
    return (tuple(endpoint.get("addresses") or ()), endpoint.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def slice_labels(service: Obj) -> dict[str, str]:
    """The Service's labels (but the reserved ones), the headless marker, service name, manager."""
    labels = {k: v for k, v in (_meta(service).get("labels") or {}).items() if k not in _RESERVED}
    if pe.is_headless(service):
        labels[pe.HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = str(_meta(service).get("name", ""))
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


@dataclass
class Desired:
    #: port set -> (the ports as written, endpoint key -> endpoint), in pod-name order
    groups: dict[PortKey, tuple[list[Obj], dict[EndpointKey, Obj]]] = field(default_factory=dict)
    #: (pod, Service port name, targetPort name) of every named targetPort a pod does not declare
    missing: list[tuple[Obj, str, str]] = field(default_factory=list)


def _endpoint(pod: Obj, service: Obj, ip: str, zone: str | None) -> Obj:
    meta, spec = _meta(pod), _spec(pod)
    serving = conditions.is_pod_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    ready = bool(_spec(service).get("publishNotReadyAddresses")) or (serving and not terminating)
    endpoint: Obj = {"addresses": [ip],
                     "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                     "targetRef": {"kind": "Pod", "namespace": meta.get("namespace", ""),
                                   "name": meta.get("name", ""), "uid": meta.get("uid", "")}}
    if spec.get("nodeName"):
        endpoint["nodeName"] = spec["nodeName"]
    if zone:
        endpoint["zone"] = zone
    if pe.should_set_hostname(pod, service):
        endpoint["hostname"] = spec["hostname"]
    return endpoint


def desired_endpoints(service: Obj, pods: Sequence[Obj], node: Callable[[str], Obj | None]) -> Desired:
    """See the module docstring; ``node(name)`` reads a Node from the cache."""
    desired = Desired()
    spec = _spec(service)
    service_ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    for pod in sorted(pods, key=lambda p: str(_meta(p).get("name", ""))):
        if not pe.should_be_endpoint(pod, include_terminating=True):
            continue
        ips = pe.pod_ipv4s(pod)
        if not ips:
            continue
        zone = None
        node_name = _spec(pod).get("nodeName")
        if node_name:
            found = node(str(node_name))
            if found is None and not spec.get("publishNotReadyAddresses"):
                continue
            zone = ((found or {}).get("metadata") or {}).get("labels", {}).get(ZONE_LABEL) or None
        ports: list[Obj] = []
        for service_port in service_ports:
            number = pe.find_port(pod, service_port)
            if number is None:
                desired.missing.append((pod, str(service_port.get("name") or ""),
                                        str(service_port.get("targetPort"))))
                continue
            port: Obj = {"name": service_port.get("name") or "", "port": number,
                         "protocol": service_port.get("protocol") or "TCP"}
            if service_port.get("appProtocol"):
                port["appProtocol"] = service_port["appProtocol"]
            ports.append(port)
        endpoint = _endpoint(pod, service, ips[0], zone)
        group = desired.groups.setdefault(port_key(ports), (ports, {}))
        group[1][endpoint_key(endpoint)] = endpoint
    return desired


@dataclass
class Plan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def _owned(slice_: Obj, service: Obj) -> bool:
    uid = _meta(service).get("uid")
    return any(r.get("uid") == uid and r.get("kind") == "Service" and r.get("apiVersion") == "v1"
               for r in _meta(slice_).get("ownerReferences") or [] if isinstance(r, dict))


def new_slice(service: Obj, ports: list[Obj]) -> Obj:
    meta = _meta(service)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta.get('name', '')}-", "namespace": meta.get("namespace", ""),
                         "labels": slice_labels(service),
                         "ownerReferences": [ownership.controller_ref(service, resources.SERVICES)]},
            "addressType": ADDRESS_TYPE, "ports": copy.deepcopy(ports), "endpoints": []}


def _by_port_set(service: Obj, existing: list[Obj], ports: list[Obj], wanted: dict[EndpointKey, Obj],
                 labels: dict[str, str], most: int) -> Plan:
    result = Plan()
    remaining = dict(wanted)
    updating: list[Obj] = []
    unchanged: list[Obj] = []
    for current in existing:
        kept: list[Obj] = []
        changed = False
        for endpoint in current.get("endpoints") or []:
            got = remaining.pop(endpoint_key(endpoint), None) if isinstance(endpoint, dict) else None
            if got is not None:
                kept.append(got)
                changed = changed or got != endpoint
        if changed or len(kept) != len(current.get("endpoints") or []):
            if not kept:
                result.delete.append(current)
                continue
            fresh = copy.deepcopy(current)
            fresh["endpoints"] = kept
            fresh["metadata"]["labels"] = dict(labels)
            updating.append(fresh)
        elif (_meta(current).get("labels") or {}) != labels:
            fresh = copy.deepcopy(current)
            fresh["metadata"]["labels"] = dict(labels)
            updating.append(fresh)
        else:
            unchanged.append(current)
    for filling in sorted(updating, key=lambda s: -len(s["endpoints"])):
        while remaining and len(filling["endpoints"]) < most:
            filling["endpoints"].append(remaining.pop(next(iter(remaining))))
    while remaining:
        target: Obj | None = None
        if len(remaining) < most and unchanged:
            fits = [s for s in unchanged if len(s.get("endpoints") or []) + len(remaining) <= most]
            if fits:
                chosen = max(fits, key=lambda s: len(s.get("endpoints") or []))
                unchanged.remove(chosen)
                target = copy.deepcopy(chosen)
                target["endpoints"] = list(target.get("endpoints") or [])
                updating.append(target)
        if target is None:
            target = new_slice(service, ports)
            result.create.append(target)
        while remaining and len(target["endpoints"]) < most:
            target["endpoints"].append(remaining.pop(next(iter(remaining))))
    result.update = updating
    return result


def _is_placeholder(slice_: Obj, service: Obj) -> bool:
    return (not slice_.get("ports") and not slice_.get("endpoints") and _owned(slice_, service)
            and slice_.get("addressType") == ADDRESS_TYPE
            and (_meta(slice_).get("labels") or {}) == slice_labels(service))


def plan(service: Obj, desired: Desired, existing: Sequence[Obj], *,
         max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> Plan:
    """The writes that make ``existing`` (this controller's slices of ``service``) ``desired``."""
    result = Plan()
    labels = slice_labels(service)
    by_ports: dict[PortKey, list[Obj]] = {}
    for current in existing:
        if current.get("addressType") != ADDRESS_TYPE or not _owned(current, service):
            result.delete.append(current)
        else:
            by_ports.setdefault(port_key(current.get("ports")), []).append(current)
    for key, (ports, wanted) in desired.groups.items():
        part = _by_port_set(service, by_ports.get(key, []), ports, wanted, labels, max_per_slice)
        result.create += part.create
        result.update += part.update
        result.delete += part.delete
    for key, slices in by_ports.items():
        if key not in desired.groups:
            result.delete += slices
    if len(existing) == len(result.delete) and not result.create:
        if len(result.delete) == 1 and _is_placeholder(result.delete[0], service):
            result.delete = []
        else:
            result.create.append(new_slice(service, []))
    # Turn creates into updates of slices that would be deleted anyway.
    for doomed in [s for s in result.delete if s.get("addressType") == ADDRESS_TYPE and _owned(s, service)]:
        if not result.create:
            break
        fresh = result.create.pop()
        body = copy.deepcopy(doomed)
        body["metadata"]["labels"] = fresh["metadata"]["labels"]
        body["ports"], body["endpoints"] = fresh["ports"], fresh["endpoints"]
        result.delete.remove(doomed)
        result.update.append(body)
    if _meta(service).get("deletionTimestamp"):
        result.create = []
    return result
