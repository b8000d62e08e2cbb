"""The ReplicaSet controller: keeps ``spec.replicas`` pods of ``spec.template`` running.

Level-triggered (Kubernetes ``pkg/controller/replicaset``).  ``reconcile("ns/name")``:

1. claims the namespace's *active* pods (not Succeeded/Failed, no ``deletionTimestamp``) with
   :class:`~shoal.controllers.ownership.Claimer`: matching orphans are adopted, owned pods that
   stopped matching are released;
2. if the RS's :class:`~shoal.client.expectations.Expectations` are satisfied (the cache
   has seen every create/delete of the previous pass) and the RS is not being deleted, makes
   the difference: missing pods are created from the template (``generateName: <rs>-``, the
   template's labels, annotations and finalizers, a controller reference) in slow-start
   batches of 1, 2, 4 ... (a failing batch stops the rest); surplus pods are deleted, the
   least valuable first (:func:`deletion_order`).  At most ``burst_replicas`` per pass;
3. writes ``status`` through the status subresource, only when it changed:
   ``replicas`` (active owned pods), ``fullyLabeledReplicas``, ``readyReplicas``,
   ``availableReplicas`` (ready for ``minReadySeconds`` by the injected wall clock),
   ``observedGeneration``, and a ``ReplicaFailure`` condition while creates/deletes fail.
   If some pod is ready but not yet available, the key is requeued when it will be.

Events on the RS: ``SuccessfulCreate`` ``Created pod: x``, ``SuccessfulDelete``
``Deleted pod: x``, and the Warnings ``FailedCreate``/``FailedDelete``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from shoal.client import resources
from shoal.client.controller import Controller, RequeueAfter
from shoal.client.errors import ApiClientError, ConflictError, ForbiddenError, NotFoundError
from shoal.client.events import NORMAL, WARNING, EventRecorder
from shoal.client.expectations import Expectations
from shoal.client.informer import EventHandler, InformerFactory, object_key, split_key
from shoal.client.rest import ApiClient
from shoal.controllers import conditions, ownership
from shoal.kube import objects, selectors, times
from shoal.kube.clock import Clock, WallTime, utcnow
from shoal.kube.objects import Obj, OwnerReference
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec
from shoal.kube.objects import status as _status

__all__ = ["BURST_REPLICAS", "ReplicaSetController", "calculate_status", "deletion_order",
           "is_active", "pod_from_template", "slow_start_batch"]

log = logging.getLogger(__name__)

BURST_REPLICAS = 500
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def is_active(pod: Obj) -> bool:
    return _status(pod).get("phase") not in ("Succeeded", "Failed") and not _meta(pod).get("deletionTimestamp")


def pod_from_template(rs: Obj) -> Obj:
    """The pod to create for ``rs`` (the server fills in the name from ``generateName``)."""
    meta = _meta(rs)
    template = _spec(rs).get("template") or {}
    tmeta = template.get("metadata") or {}
    pod_meta: Obj = {"generateName": f"{meta.get('name', '')}-", "namespace": meta.get("namespace"),
                     "labels": dict(tmeta.get("labels") or {}),
                     "ownerReferences": [ownership.controller_ref(rs, resources.REPLICASETS)]}
    for key in ("annotations", "finalizers"):
        if tmeta.get(key):
            pod_meta[key] = copy.deepcopy(tmeta[key])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def _newest_first(value: Any) -> float:
    """Sort key: a missing time first, then the newest."""
    moment = times.parse_time(value)
    return -moment.timestamp() if moment is not None else float("-inf")


def deletion_order(pods: Sequence[Obj], related: Sequence[Obj] = ()) -> list[Obj]:
    """``pods`` sorted so that the ones to delete first come first (``ActivePodsWithRanks``).

    1. unscheduled before scheduled; 2. Pending < Unknown < Running; 3. not ready before
    ready; 4. lower ``pod-deletion-cost`` first; 5. pods on nodes crowded with ``related``
    pods (this RS's and its siblings') first; 6. of two ready pods, the more recently ready
    first; 7. more container restarts first; 8. newer before older.
    """
    per_node = Counter(_spec(p).get("nodeName") for p in related if _spec(p).get("nodeName"))

    def rank(pod: Obj) -> tuple[Any, ...]:
        spec, status = _spec(pod), _status(pod)
        node = spec.get("nodeName")
        ready = conditions.is_pod_ready(pod)
        since = conditions.ready_since(pod)
        try:
            cost = int((_meta(pod).get("annotations") or {}).get(DELETION_COST, 0))
        except ValueError:
            cost = 0
        restarts = max((int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or []),
                       default=0)
        ready_key = (-since.timestamp() if since is not None else float("-inf")) if ready else 0.0
        return (1 if node else 0, _PHASE_ORDER.get(status.get("phase", ""), 0), 1 if ready else 0, cost,
                -per_node[node] if node else 0, ready_key, -restarts,
                _newest_first(_meta(pod).get("creationTimestamp")))

    return sorted(pods, key=rank)


def calculate_status(rs: Obj, pods: Sequence[Obj], now: datetime, failure: tuple[str, str] | None) -> Obj:
    """The RS status for its active owned ``pods``; ``failure`` is (reason, message) of a failed
    create/delete pass, which sets ``ReplicaFailure`` (cleared by a pass without failure)."""
    spec = _spec(rs)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully = sum(1 for p in pods if all(objects.labels(p).get(k) == v for k, v in template_labels.items()))
    ready = sum(1 for p in pods if conditions.is_pod_ready(p))
    available = sum(1 for p in pods if conditions.is_pod_available(p, min_ready, now))
    status: Obj = {"replicas": len(pods)}
    for field, value in (("fullyLabeledReplicas", fully), ("readyReplicas", ready),
                         ("availableReplicas", available),
                         ("observedGeneration", int(_meta(rs).get("generation") or 0))):
        if value:
            status[field] = value
    old_conditions = copy.deepcopy(_status(rs).get("conditions") or [])
    if old_conditions:
        status["conditions"] = old_conditions
    current = conditions.get_condition(status, "ReplicaFailure")
    if failure is not None and current is None:
        conditions.set_condition(status, conditions.new_condition(
            "ReplicaFailure", "True", failure[0], failure[1], now, update_time=False))
    elif failure is None and current is not None:
        conditions.remove_condition(status, "ReplicaFailure")
    return status


def _normal_status(status: Obj) -> Obj:
    normal = {k: v for k, v in status.items() if v not in (0, None, [], {}) or k == "replicas"}
    normal.setdefault("replicas", 0)
    return normal


Attempt = Callable[[], Awaitable[ApiClientError | None]]


async def slow_start_batch(count: int, initial: int, attempt: Attempt) -> tuple[int, ApiClientError | None]:
    """Run ``attempt`` ``count`` times in doubling concurrent batches; stop after a failing batch.

    Returns (successes, first error)."""
    successes, remaining, batch = 0, count, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(attempt() for _ in range(batch)))
        errors = [r for r in results if r is not None]
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


class ReplicaSetController(Controller):
    """See the module docstring."""

    def __init__(self, client: ApiClient, informers: InformerFactory, *, clock: Clock | None = None,
                 wall: WallTime = utcnow, burst_replicas: int = BURST_REPLICAS) -> None:
        super().__init__("replicaset", clock=clock)
        self.client = client
        self.wall = wall
        self.burst_replicas = burst_replicas
        self.recorder = EventRecorder(client, "replicaset-controller", clock=wall)
        self.expectations = Expectations(self.clock)
        self.rs_informer = informers.informer(resources.REPLICASETS)
        self.pod_informer = informers.informer(resources.PODS)
        self.pod_informer.add_index(ownership.CONTROLLER_UID_INDEX, ownership.index_controller_uid)
        self.rs_informer.add_index(ownership.CONTROLLER_UID_INDEX, ownership.index_controller_uid)
        self.rs_informer.add_event_handler(EventHandler(
            lambda rs: self.enqueue(object_key(rs)),
            lambda old, new: self.enqueue(object_key(new)),
            self._on_rs_delete))
        self.pod_informer.add_event_handler(EventHandler(self._on_pod_add, self._on_pod_update,
                                                         self._on_pod_delete))
        self.informers += [self.rs_informer, self.pod_informer]

    # -- handlers: enqueue (and count observations) only -----------------------------------

    def _on_rs_delete(self, rs: Obj) -> None:
        self.expectations.forget(object_key(rs))
        self.enqueue(object_key(rs))

    def _owner_key(self, pod: Obj, ref: OwnerReference) -> str | None:
        if ref.get("kind") != "ReplicaSet":
            return None
        key = f"{_meta(pod).get('namespace')}/{ref.get('name')}"
        rs = self.rs_informer.get(key)
        return key if rs is not None and _meta(rs).get("uid") == ref.get("uid") else None

    def _enqueue_matching(self, pod: Obj) -> None:
        labels = objects.labels(pod)
        for rs in self.rs_informer.list(_meta(pod).get("namespace")):
            if selectors.matches(_spec(rs).get("selector"), labels):
                self.enqueue(object_key(rs))

    def _on_pod_add(self, pod: Obj) -> None:
        if _meta(pod).get("deletionTimestamp"):
            self._on_pod_delete(pod)  # never count a dying pod as an observed creation
            return
        ref = objects.controller_of(pod)
        if ref is None:
            self._enqueue_matching(pod)
            return
        key = self._owner_key(pod, ref)
        if key is not None:
            self.expectations.creation_observed(key)
            self.enqueue(key)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        labels_changed = objects.labels(old) != objects.labels(new)
        if _meta(new).get("deletionTimestamp"):
            self._on_pod_delete(new)
            if labels_changed:
                self._on_pod_delete(old)
            return
        old_ref, new_ref = objects.controller_of(old), objects.controller_of(new)
        ref_changed = (old_ref or {}).get("uid") != (new_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            old_key = self._owner_key(old, old_ref)
            if old_key is not None:
                self.enqueue(old_key)
        if new_ref is not None:
            key = self._owner_key(new, new_ref)
            if key is not None:
                self.enqueue(key)
        elif labels_changed or ref_changed:
            self._enqueue_matching(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        ref = objects.controller_of(pod)
        key = self._owner_key(pod, ref) if ref is not None else None
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.enqueue(key)

    # -- reconcile -------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        rs = self.rs_informer.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        namespace, _ = split_key(key)
        needs_sync = self.expectations.satisfied(key)
        claimer = ownership.Claimer(self.client, resources.PODS, rs, resources.REPLICASETS,
                                    _spec(rs).get("selector"), lambda: self._can_adopt(rs))
        pods = await claimer.claim([p for p in self.pod_informer.list(namespace) if is_active(p)])
        failure: tuple[str, str] | None = None
        error: ApiClientError | None = None
        if needs_sync and not _meta(rs).get("deletionTimestamp"):
            diff = len(pods) - int(_spec(rs).get("replicas", 1))
            error = await self._manage(rs, key, pods, diff)
            if error is not None:
                failure = ("FailedCreate" if diff < 0 else "FailedDelete", str(error))
        now = self.wall()
        status = calculate_status(rs, pods, now, failure)
        if _normal_status(status) != _normal_status(_status(rs)):
            body = copy.deepcopy(rs)
            body["status"] = status
            await self.client.update_status(resources.REPLICASETS, body)
        if error is not None:
            raise error
        waits = [w for p in pods
                 if (w := conditions.until_available(p, int(_spec(rs).get("minReadySeconds") or 0), now)) is not None]
        if waits:
            raise RequeueAfter(min(waits) + 0.05, "a pod becomes available")

    async def _can_adopt(self, rs: Obj) -> None:
        await ownership.recheck_owner(self.client, resources.REPLICASETS, rs)

    async def _manage(self, rs: Obj, key: str, pods: list[Obj], diff: int) -> ApiClientError | None:
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            self.expectations.expect_creations(key, count)
            log.info("replicaset %s: creating %d pod(s) (need %d)", key, count, -diff)
            successes, error = await slow_start_batch(count, 1, lambda: self._create_pod(rs))
            for _ in range(count - successes):
                self.expectations.creation_observed(key)  # never to be observed
            return error
        if diff > 0:
            count = min(diff, self.burst_replicas)
            victims = deletion_order(pods, self._related_pods(rs, pods))[:count]
            self.expectations.expect_deletions(key, [object_key(p) for p in victims])
            log.info("replicaset %s: deleting %d pod(s)", key, count)
            results = await asyncio.gather(*(self._delete_pod(rs, key, p) for p in victims))
            return next((r for r in results if r is not None), None)
        return None

    def _related_pods(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """Pods of this RS and of its siblings (RSes with the same controller)."""
        owner = objects.controller_of(rs)
        if owner is None or not owner.get("uid"):
            return pods
        related: list[Obj] = []
        for sibling in self.rs_informer.by_index(ownership.CONTROLLER_UID_INDEX, owner["uid"]):
            related += self.pod_informer.by_index(ownership.CONTROLLER_UID_INDEX, _meta(sibling).get("uid", ""))
        return [p for p in related if is_active(p)]

    async def _create_pod(self, rs: Obj) -> ApiClientError | None:
        try:
            pod = await self.client.create(resources.PODS, pod_from_template(rs), _meta(rs).get("namespace"))
        except ForbiddenError as exc:
            if any(c.get("reason") == "NamespaceTerminating" for c in exc.details.get("causes") or []):
                return None  # everything in it is being deleted anyway
            await self._event(rs, WARNING, "FailedCreate", f"Error creating: {exc}")
            return exc
        except ApiClientError as exc:
            await self._event(rs, WARNING, "FailedCreate", f"Error creating: {exc}")
            return exc
        await self._event(rs, NORMAL, "SuccessfulCreate", f"Created pod: {_meta(pod).get('name')}")
        return None

    async def _delete_pod(self, rs: Obj, key: str, pod: Obj) -> ApiClientError | None:
        meta = _meta(pod)
        try:
            await self.client.delete(resources.PODS, meta["name"], meta.get("namespace"), uid=meta.get("uid"))
        except (NotFoundError, ConflictError):
            self.expectations.deletion_observed(key, object_key(pod))  # gone (or replaced) already
            return None
        except ApiClientError as exc:
            self.expectations.deletion_observed(key, object_key(pod))
            await self._event(rs, WARNING, "FailedDelete", f"Error deleting: {exc}")
            return exc
        await self._event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
        return None

    async def _event(self, rs: Obj, type_: str, reason: str, message: str) -> None:
        involved = {**rs, "apiVersion": resources.REPLICASETS.api_version, "kind": "ReplicaSet"}
        await self.recorder.record(involved, type_, reason, message)
