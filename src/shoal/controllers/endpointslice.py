"""The EndpointSlice controller: discovery.k8s.io/v1 EndpointSlices of every Service with a
selector (kube-controller-manager's ``endpointslice`` controller, ``pkg/controller/endpointslice``).

Contract and invariants
-----------------------
* Level-triggered, through the API only.  Keys are Service keys ``namespace/name``.
  ``reconcile(key)`` reads the Service, the pods of its namespace (namespace index), the Nodes
  and the slices it manages for the Service (label ``kubernetes.io/service-name`` and
  ``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``, indexed) from the
  informers' caches, computes the desired endpoints and the writes with
  :mod:`shoal.controllers.slicing`, and makes them: creates (``generateName: <service>-``,
  labels, a controller ownerReference to the Service), in-place updates (PUT with the cached
  resourceVersion: a lost race is a conflict and a retry), deletes.  A pass with nothing to
  change writes nothing.  Written slices carry ``endpoints.kubernetes.io/last-change-trigger-time``.
* Terminating pods stay in the slices with ``ready: false, terminating: true`` (``serving``
  from their Ready condition) until they are gone: that is what lets a proxy drain them.
* Left alone: Services without a selector (their slices are the user's) and ExternalName
  Services.  A deleted Service's slices go by garbage collection (their ownerReference; the
  garbage collector watches EndpointSlices), as in Kubernetes.
* A named ``targetPort`` a selected pod does not declare: the pod is not an endpoint for that
  port, and a Warning Event ``FailedToResolveTargetPort`` on the Service names the pod and the
  port, once per (Service, pod, port) while the problem lasts - a pass that changes nothing
  writes no Event either.
* A pass never acts on a slice cache older than this controller's own writes for the Service
  (:class:`~shoal.controllers.podendpoints.WriteTracker`, Kubernetes' ``EndpointSliceTracker``):
  generated names would otherwise make duplicate slices.  It waits for the slice events.
* Speed (the service proxy's budget is well under 100 ms from a pod change to the slice): no
  batching - a pod add/delete, or an update that changes its
  :func:`~shoal.controllers.podendpoints.endpoint_view`, enqueues the Services of its namespace
  that select it (old or new labels) at once.  Also enqueued: Service changes, changes of the
  managed slices (a hand edit is repaired), and a Node's arrival, departure or zone change
  (the Services of its pods).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from shoal.client import resources
from shoal.client.controller import RequeueAfter
from shoal.client.errors import ForbiddenError, NotFoundError
from shoal.client.events import WARNING, EventRecorder
from shoal.client.informer import EventHandler, InformerFactory, object_key, split_key
from shoal.client.rest import ApiClient
from shoal.controllers import podendpoints as pe
from shoal.controllers import slicing
from shoal.kube import times
from shoal.kube.clock import Clock, WallTime, utcnow
from shoal.kube.objects import Obj
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec

__all__ = ["PORT_NOT_FOUND", "SERVICE_INDEX", "EndpointSliceController", "managed_service_key"]

log = logging.getLogger(__name__)

SERVICE_INDEX = "endpointslice-service"
PORT_NOT_FOUND = "FailedToResolveTargetPort"
#: Seconds before a pass that found the cache behind this controller's writes runs again (the
#: slice events normally bring the key back long before).
STALE_RETRY = 1.0


def managed_service_key(slice_: Obj) -> list[str]:
    """Informer index: ``namespace/service`` of a slice this controller manages."""
    labels = _meta(slice_).get("labels") or {}
    service = labels.get(slicing.SERVICE_NAME_LABEL)
    namespace = _meta(slice_).get("namespace")
    if labels.get(slicing.MANAGED_BY_LABEL) != slicing.CONTROLLER_NAME or not service or not namespace:
        return []
    return [f"{namespace}/{service}"]


def _terminating_refusal(exc: ForbiddenError) -> bool:
    causes = exc.details.get("causes") or []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


def _zone(node: Obj) -> str | None:
    zone = (_meta(node).get("labels") or {}).get(slicing.ZONE_LABEL)
    return zone if isinstance(zone, str) else None


class EndpointSliceController(pe.ServicePodsController):
    """Keeps the EndpointSlices of every Service with a selector (see the module docstring)."""

    def __init__(self, client: ApiClient, informers: InformerFactory, *, clock: Clock | None = None,
                 wall: WallTime = utcnow, max_per_slice: int = slicing.MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__("endpointslice", informers, clock=clock)
        self.client = client
        self.max_per_slice = max_per_slice
        self.recorder = EventRecorder(client, "endpointslice-controller", clock=wall)
        #: Slices written (created, updated, deleted) and Events recorded by this controller.
        self.writes = 0
        self.events = 0
        self.pods.add_index(pe.NODE_INDEX, pe.by_node)
        self.nodes = informers.informer(resources.NODES)
        self.slices = informers.informer(resources.ENDPOINTSLICES)
        self.slices.add_index(SERVICE_INDEX, managed_service_key)
        self.slices.add_event_handler(EventHandler(
            on_add=self._on_slice, on_update=self._on_slice_update, on_delete=self._on_slice))
        self.nodes.add_event_handler(EventHandler(
            on_add=self._on_node, on_update=self._on_node_update, on_delete=self._on_node))
        self.informers += [self.nodes, self.slices]
        self.tracker = pe.WriteTracker(self.slices)
        self.trigger_times = pe.TriggerTimeTracker()
        #: Service key -> the (pod uid, port name) problems already reported by an Event.
        self._reported: dict[str, set[tuple[str, str]]] = {}

    # -- handlers: keys only -------------------------------------------------------------

    def _on_slice(self, slice_: Obj) -> None:
        for key in managed_service_key(slice_):
            self.enqueue(key)

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        for key in {*managed_service_key(old), *managed_service_key(new)}:
            self.enqueue(key)

    def _on_node(self, node: Obj) -> None:
        for pod in self.pods.by_index(pe.NODE_INDEX, object_key(node)):
            self._on_pod(pod)

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if _zone(old) != _zone(new):
            self._on_node(new)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        namespace, _ = split_key(key)
        if not namespace:
            return
        if self.tracker.stale(key):
            raise RequeueAfter(STALE_RETRY, "the EndpointSlice cache is behind this controller's writes")
        service = self.services.get(key)
        if service is None:
            self.trigger_times.forget(key)
            self._reported.pop(key, None)
            return
        if _spec(service).get("type") == "ExternalName" or not pe.has_selector(service):
            return
        pods = [p for p in self.pods.by_index(pe.NAMESPACE_INDEX, namespace)
                if pe.selects(service, _meta(p).get("labels"))]
        trigger = self.trigger_times.compute(key, service, pods)
        desired = slicing.desired_endpoints(service, pods, self.nodes.get)
        existing = self.slices.by_index(SERVICE_INDEX, key)
        writes = slicing.plan(service, desired, existing, max_per_slice=self.max_per_slice)
        if not writes.empty:
            await self._apply(key, namespace, writes, trigger)
        await self._report_missing_ports(key, service, desired)

    async def _apply(self, key: str, namespace: str, writes: slicing.Plan, trigger: datetime | None) -> None:
        for body in writes.create:
            _stamp(body, trigger)
            try:
                created = await self.client.create(resources.ENDPOINTSLICES, body, namespace)
            except ForbiddenError as exc:
                if _terminating_refusal(exc):
                    log.debug("endpointslices %s: the namespace is being deleted", key)
                    return
                raise
            self.writes += 1
            self.tracker.wrote(key, created)
        for body in writes.update:
            _stamp(body, trigger)
            updated = await self.client.update(resources.ENDPOINTSLICES, body)
            self.writes += 1
            self.tracker.wrote(key, updated)
        for doomed in writes.delete:
            name = str(_meta(doomed).get("name", ""))
            with contextlib.suppress(NotFoundError):
                await self.client.delete(resources.ENDPOINTSLICES, name, namespace)
            self.writes += 1
            self.tracker.deleted(key, object_key(doomed))
        log.debug("endpointslices %s: %d created, %d updated, %d deleted", key, len(writes.create),
                  len(writes.update), len(writes.delete))

    async def _report_missing_ports(self, key: str, service: Obj, desired: slicing.Desired) -> None:
        problems = {(str(_meta(pod).get("uid", "")), port): (pod, port, target)
                    for pod, port, target in desired.missing}
        reported = self._reported.get(key, set())
        current = set(problems)
        for problem in sorted(current - reported):
            pod, port, target = problems[problem]
            shown = f'port "{port}"' if port else "port"
            await self.recorder.record(
                service, WARNING, PORT_NOT_FOUND,
                f'Pod {_meta(pod).get("name")} declares no container port named "{target}" (the targetPort of '
                f"Service {shown}): it is not an endpoint for that port")
            self.events += 1
        if current:
            self._reported[key] = current
        else:
            self._reported.pop(key, None)


def _stamp(body: Obj, trigger: datetime | None) -> None:
    """Kubernetes' ``addTriggerTimeAnnotation``: set it, or clear it when nothing triggered."""
    meta = body.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    if trigger is not None:
        annotations[pe.TRIGGER_TIME_ANNOTATION] = times.format_time(trigger)
    else:
        annotations.pop(pe.TRIGGER_TIME_ANNOTATION, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
