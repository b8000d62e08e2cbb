"""Pods as Service endpoints: what the Endpoints and EndpointSlice controllers share.

Pure functions, as Kubernetes' ``k8s.io/endpointslice`` utilities define them:

* :func:`should_be_endpoint` (``ShouldPodBeInEndpoints``): a pod is an endpoint candidate when
  it is not terminal (Succeeded/Failed), has a pod IP, and - unless ``include_terminating`` -
  has no ``deletionTimestamp``.
* :func:`find_port` (``FindPort``): a numeric ``targetPort`` as it is; a named one looked up in
  the ports of the pod's containers (and of its sidecars: init containers with
  ``restartPolicy: Always``) by name *and* protocol; ``None`` when no container declares it.
* :func:`should_set_hostname`: ``spec.hostname`` is published when ``spec.subdomain`` names
  the Service (in the same namespace).
* :func:`selects`: a Service's ``spec.selector`` map matches a pod's labels.  A missing or empty
  selector selects nothing here: such a Service's endpoints are user-managed (Kubernetes stores
  ``selector: {}`` as no selector).
* :func:`endpoint_view`: the parts of a pod that can change an endpoint; a pod update that
  leaves it unchanged needs no reconcile (Kubernetes' ``podEndpointsChanged``).

Stateful helpers (owned by one controller each, touched only from its event loop):

* :class:`TriggerTimeTracker` (``TriggerTimeTracker``): the value of the
  ``endpoints.kubernetes.io/last-change-trigger-time`` annotation: the earliest pod Ready
  transition or Service creation that changed since the previous pass for that Service.
* :class:`WriteTracker`: the resourceVersions of this controller's own writes, so a pass never
  acts on a cache older than them (which would, for generated names, create duplicates).
  The informer's own ``resource_version`` moving past a write also satisfies it.

Informer index functions (shared informers: the same function objects under the same names):
:func:`by_namespace` and :func:`by_node`.  :class:`ServicePodsController` is the base of both
controllers: their Service and Pod informers and handlers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from shoal.client import resources
from shoal.client.controller import Controller
from shoal.client.informer import EventHandler, Informer, InformerFactory, object_key
from shoal.controllers import conditions
from shoal.kube import times
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec
from shoal.kube.objects import status as _status

__all__ = [
    "HEADLESS_LABEL",
    "NAMESPACE_INDEX",
    "NODE_INDEX",
    "TRIGGER_TIME_ANNOTATION",
    "ServicePodsController",
    "TriggerTimeTracker",
    "WriteTracker",
    "by_namespace",
    "by_node",
    "endpoint_view",
    "find_port",
    "has_selector",
    "is_headless",
    "pod_ipv4s",
    "selects",
    "service_keys_for_pod",
    "should_be_endpoint",
    "should_set_hostname",
]

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS_LABEL = "service.kubernetes.io/headless"
NAMESPACE_INDEX = "namespace"
NODE_INDEX = "nodeName"


def by_namespace(obj: Obj) -> list[str]:
    """Informer index: the object's namespace."""
    namespace = _meta(obj).get("namespace")
    return [namespace] if isinstance(namespace, str) and namespace else []


def by_node(obj: Obj) -> list[str]:
    """Informer index: the node a pod is bound to."""
    node = _spec(obj).get("nodeName")
    return [node] if isinstance(node, str) and node else []


# -- Services --------------------------------------------------------------------------------


def has_selector(service: Obj) -> bool:
    selector = _spec(service).get("selector")
    return isinstance(selector, dict) and bool(selector)


def is_headless(service: Obj) -> bool:
    """No ClusterIP (``None`` or unset): Kubernetes' ``!IsServiceIPSet``."""
    return _spec(service).get("clusterIP") in ("None", "", None)


def selects(service: Obj, labels: dict[str, str] | None) -> bool:
    selector = _spec(service).get("selector")
    if not isinstance(selector, dict) or not selector:
        return False
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())


def service_keys_for_pod(services: Informer, pod: Obj, *label_sets: dict[str, str] | None) -> set[str]:
    """Keys of the Services in the pod's namespace whose selector matches any of ``label_sets``."""
    namespace = _meta(pod).get("namespace")
    if not isinstance(namespace, str) or not namespace:
        return set()
    return {object_key(svc) for svc in services.by_index(NAMESPACE_INDEX, namespace)
            if any(selects(svc, labels) for labels in label_sets)}


# -- pods ------------------------------------------------------------------------------------


def pod_ipv4s(pod: Obj) -> list[str]:
    """The pod's IPv4 addresses (``status.podIPs``, else ``status.podIP``), normalized."""
    status = _status(pod)
    raw = [entry.get("ip") for entry in status.get("podIPs") or [] if isinstance(entry, dict)]
    if not raw and status.get("podIP"):
        raw = [status.get("podIP")]
    found: list[str] = []
    for text in raw:
        try:
            address = ipaddress.ip_address(str(text))
        except ValueError:
            continue
        if address.version == 4 and str(address) not in found:
            found.append(str(address))
    return found


def should_be_endpoint(pod: Obj, *, include_terminating: bool) -> bool:
    if _status(pod).get("phase") in ("Succeeded", "Failed"):
        return False
    status = _status(pod)
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not _meta(pod).get("deletionTimestamp")


def should_set_hostname(pod: Obj, service: Obj) -> bool:
    spec = _spec(pod)
    return (bool(spec.get("hostname")) and spec.get("subdomain") == _meta(service).get("name")
            and _meta(pod).get("namespace") == _meta(service).get("namespace"))


def _containers_with_ports(pod: Obj) -> Iterable[Obj]:
    spec = _spec(pod)
    for container in spec.get("containers") or []:
        if isinstance(container, dict):
            yield container
    for container in spec.get("initContainers") or []:
        if isinstance(container, dict) and container.get("restartPolicy") == "Always":
            yield container


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port number for ``service_port``'s ``targetPort``, or ``None`` (named, undeclared)."""
    target: Any = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if not isinstance(target, str):
        return None
    protocol = service_port.get("protocol") or "TCP"
    for container in _containers_with_ports(pod):
        for port in container.get("ports") or []:
            if (isinstance(port, dict) and port.get("name") == target
                    and (port.get("protocol") or "TCP") == protocol):
                number = port.get("containerPort")
                if isinstance(number, int):
                    return number
    return None


def endpoint_view(pod: Obj) -> tuple[Any, ...]:
    """What an endpoint of ``pod`` depends on (labels included: they decide the Services)."""
    meta, spec, status = _meta(pod), _spec(pod), _status(pod)
    return (meta.get("uid"), meta.get("labels"), bool(meta.get("deletionTimestamp")),
            conditions.is_pod_ready(pod), status.get("phase"), status.get("podIP"), status.get("podIPs"),
            spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"))


# -- trackers --------------------------------------------------------------------------------


def _ready_transition(pod: Obj) -> datetime | None:
    for condition in _status(pod).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return times.parse_time(condition.get("lastTransitionTime"))
    return None


class TriggerTimeTracker:
    """Per Service: the trigger times seen by the previous pass (see the module docstring)."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[dict[str, datetime | None], datetime | None]] = {}

    def compute(self, key: str, service: Obj, pods: Sequence[Obj]) -> datetime | None:
        """The earliest trigger time that changed since the last call for ``key`` (None: none)."""
        old_pods, old_service = self._state.get(key, ({}, None))
        found: list[datetime] = []
        current: dict[str, datetime | None] = {}
        for pod in pods:
            name = str(_meta(pod).get("name", ""))
            moment = current[name] = _ready_transition(pod)
            if moment is not None and (name not in old_pods or old_pods[name] != moment):
                found.append(moment)
        created = times.parse_time(_meta(service).get("creationTimestamp"))
        if created is not None and (key not in self._state or created != old_service):
            found.append(created)
        self._state[key] = (current, created)
        return min(found) if found else None

    def forget(self, key: str) -> None:
        self._state.pop(key, None)


def _rv(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class WriteTracker:
    """The writes a controller made per owner key, until its informer's cache reflects them."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        #: owner key -> object key -> resourceVersion written (None: deleted)
        self._expected: dict[str, dict[str, int | None]] = {}

    def wrote(self, owner: str, obj: Obj) -> None:
        version = _rv(_meta(obj).get("resourceVersion"))
        if version is not None:
            self._expected.setdefault(owner, {})[object_key(obj)] = version

    def deleted(self, owner: str, key: str) -> None:
        self._expected.setdefault(owner, {})[key] = None

    def forget(self, owner: str) -> None:
        self._expected.pop(owner, None)

    def stale(self, owner: str) -> bool:
        """True while the cache lacks one of ``owner``'s writes; satisfied ones are dropped."""
        expected = self._expected.get(owner)
        if not expected:
            return False
        seen = _rv(self.informer.resource_version) or 0
        for key, version in list(expected.items()):
            cached = self.informer.get(key)
            if version is None:
                done = cached is None
            else:
                cached_version = _rv(_meta(cached).get("resourceVersion")) if cached is not None else None
                done = seen >= version or (cached_version is not None and cached_version >= version)
            if done:
                del expected[key]
        if not expected:
            del self._expected[owner]
            return False
        return True


class ServicePodsController(Controller):
    """What the Endpoints and EndpointSlice controllers share: the Service and Pod informers
    (indexed by namespace) and their handlers, which only enqueue Service keys - a Service
    changed, or a pod whose endpoint view changed, for every Service selecting it before or
    after the change."""

    def __init__(self, name: str, informers: InformerFactory, *, clock: Clock | None = None) -> None:
        super().__init__(name, clock=clock)
        self.services = informers.informer(resources.SERVICES)
        self.services.add_index(NAMESPACE_INDEX, by_namespace)
        self.pods = informers.informer(resources.PODS)
        self.pods.add_index(NAMESPACE_INDEX, by_namespace)
        self.services.add_event_handler(EventHandler(
            on_add=self._on_service, on_update=lambda _old, new: self._on_service(new),
            on_delete=self._on_service))
        self.pods.add_event_handler(EventHandler(on_add=self._on_pod, on_update=self._on_pod_update,
                                                 on_delete=self._on_pod))
        self.informers += [self.services, self.pods]

    def _on_service(self, service: Obj) -> None:
        self.enqueue(object_key(service))

    def _on_pod(self, pod: Obj) -> None:
        for key in service_keys_for_pod(self.services, pod, _meta(pod).get("labels")):
            self.enqueue(key)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if endpoint_view(old) == endpoint_view(new):
            return
        for key in service_keys_for_pod(self.services, new, _meta(old).get("labels"), _meta(new).get("labels")):
            self.enqueue(key)
