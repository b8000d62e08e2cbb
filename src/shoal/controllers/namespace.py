"""The namespace lifecycle controller: empties a Terminating namespace, then finalizes it.

Deleting a Namespace makes the API server set ``deletionTimestamp`` (phase ``Terminating``)
and keep the object while ``spec.finalizers`` holds ``kubernetes``.  For such a namespace
``reconcile``:

1. lists every namespaced resource type it was given (live, from the API, not from a cache:
   the namespace must really be empty) and deletes each object not already being deleted
   (``propagationPolicy: Background``, uid precondition);
2. records progress in ``status.conditions`` as Kubernetes does
   (``NamespaceDeletionContentFailure``, ``NamespaceContentRemaining``,
   ``NamespaceFinalizersRemaining``, ...), writing only when a condition changes.  A failed
   status write is logged and does not block the deletion;
3. when nothing is left, PUTs the namespace without the ``kubernetes`` finalizer to
   ``/api/v1/namespaces/{name}/finalize``; the server then deletes it.

Objects that are still there (graceful pod termination, finalizers) make it poll with
:class:`~shoal.client.controller.RequeueAfter` (``recheck_interval``); failed deletes raise,
which requeues with backoff.  A resource type the server does not serve (404 on list) is
skipped.  Handlers enqueue the namespace name only when it has a ``deletionTimestamp``.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.client import resources
from shoal.client.controller import Controller, RequeueAfter
from shoal.client.errors import ApiClientError, ConflictError, NotFoundError
from shoal.client.informer import EventHandler, InformerFactory
from shoal.client.resources import ResourceRef
from shoal.client.rest import ApiClient
from shoal.kube.clock import Clock, WallTime, utcnow
from shoal.kube.objects import Obj
from shoal.kube.times import format_time

__all__ = ["DEFAULT_RESOURCES", "FINALIZER", "NamespaceContentError", "NamespaceController"]

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"

#: The namespaced resource types emptied by default.
DEFAULT_RESOURCES: tuple[ResourceRef, ...] = (
    resources.PODS, resources.SERVICES, resources.ENDPOINTS, resources.CONFIGMAPS, resources.SECRETS,
    resources.SERVICEACCOUNTS, resources.EVENTS, resources.DEPLOYMENTS, resources.REPLICASETS,
    resources.LEASES, resources.ENDPOINTSLICES,
)


class NamespaceContentError(Exception):
    """Some content of a terminating namespace could not be listed or deleted."""


@dataclass
class _Content:
    """What one pass over a namespace found."""

    remaining: Counter[str] = field(default_factory=Counter)  # resource → objects still there
    finalizers: Counter[str] = field(default_factory=Counter)  # finalizer → objects it holds
    failures: list[str] = field(default_factory=list)


class NamespaceController(Controller):
    """Deletes the content of terminating namespaces and removes their ``kubernetes`` finalizer."""

    def __init__(self, client: ApiClient, informers: InformerFactory,
                 resource_types: Sequence[ResourceRef] = DEFAULT_RESOURCES, *,
                 clock: Clock | None = None, recheck_interval: float = 1.0,
                 wall_clock: WallTime = utcnow) -> None:
        super().__init__("namespace", clock=clock)
        self.client = client
        self.resource_types = tuple(ref for ref in resource_types if ref.namespaced)
        self.recheck_interval = recheck_interval
        self._wall_clock = wall_clock
        self._namespaces = informers.informer(resources.NAMESPACES)
        self._namespaces.add_event_handler(EventHandler(
            on_add=self._on_namespace, on_update=lambda _old, new: self._on_namespace(new)))
        self.informers.append(self._namespaces)

    def _on_namespace(self, ns: Obj) -> None:
        meta = ns.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self.enqueue(str(meta.get("name", "")))

    async def reconcile(self, key: str) -> None:
        ns = self._namespaces.get(key)
        if ns is None:
            return
        if not (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        content = await self._delete_content(key)
        if content.failures or content.remaining:
            await self._report(ns, content)
            if content.failures:
                raise NamespaceContentError(f"namespace {key}: " + "; ".join(content.failures))
            raise RequeueAfter(self.recheck_interval, f"namespace {key}: content remaining")
        await self._finalize(ns)

    async def _delete_content(self, namespace: str) -> _Content:
        content = _Content()
        for ref in self.resource_types:
            try:
                items = (await self.client.list(ref, namespace, limit=500)).get("items") or []
            except NotFoundError:
                log.debug("namespace %s: %s is not served; skipping", namespace, ref.resource)
                continue
            except ApiClientError as exc:
                content.failures.append(f"listing {ref.resource}: {exc}")
                continue
            for item in items:
                if await self._delete_one(ref, namespace, item, content):
                    content.remaining[_qualified(ref)] += 1
        return content

    async def _delete_one(self, ref: ResourceRef, namespace: str, item: Obj, content: _Content) -> bool:
        """Delete ``item`` unless it is already going; True if it is still there afterwards."""
        meta = item.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            for finalizer in meta.get("finalizers") or []:
                content.finalizers[finalizer] += 1
            return True
        try:
            answer = await self.client.delete(ref, str(meta.get("name", "")), namespace,
                                              propagation_policy="Background", uid=meta.get("uid"))
        except NotFoundError:
            return False
        except ConflictError:
            return True  # replaced by a new object of the same name: the next pass deletes it
        except ApiClientError as exc:
            content.failures.append(f"deleting {ref.resource} {meta.get('name')}: {exc}")
            return True
        # The answer is a Status, or the object: gone unless a grace period or finalizers hold it.
        meta = answer.get("metadata") or {}
        held = bool(meta.get("finalizers")) or (meta.get("deletionGracePeriodSeconds") or 0) > 0
        return answer.get("kind") != "Status" and bool(meta.get("deletionTimestamp")) and held

    async def _report(self, ns: Obj, content: _Content) -> None:
        status = ns.get("status") or {}
        old = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        new = self._conditions(content, old)
        if _strip_times(new) == _strip_times(old):
            return
        body = copy.deepcopy(ns)
        body.setdefault("status", {})["conditions"] = new
        try:
            await self.client.update_status(resources.NAMESPACES, body)
        except ApiClientError as exc:
            log.warning("namespace %s: could not record deletion progress in status: %s",
                        (ns.get("metadata") or {}).get("name"), exc)

    def _conditions(self, content: _Content, old: list[Obj]) -> list[Obj]:
        remaining = ", ".join(f"{resource} has {count} resource instances"
                              for resource, count in sorted(content.remaining.items()))
        finalizers = ", ".join(f"{name} in {count} resource instances"
                               for name, count in sorted(content.finalizers.items()))
        failures = "; ".join(content.failures)
        # (type, true?, reason, message) in Kubernetes' order and words.
        wanted: list[tuple[str, bool, str, str]] = [
            ("NamespaceDeletionDiscoveryFailure", False, "ResourcesDiscovered",
             "All resources successfully discovered"),
            ("NamespaceDeletionGroupVersionParsingFailure", False, "ParsedGroupVersions",
             "All legacy kube types successfully parsed"),
            ("NamespaceDeletionContentFailure", True, "ContentDeletionFailed", failures) if failures
            else ("NamespaceDeletionContentFailure", False, "ContentDeleted",
                  "All content successfully deleted, may be waiting on finalization"),
            ("NamespaceContentRemaining", True, "SomeResourcesRemain",
             f"Some resources are remaining: {remaining}") if remaining
            else ("NamespaceContentRemaining", False, "ContentRemoved", "All content successfully removed"),
            ("NamespaceFinalizersRemaining", True, "SomeFinalizersRemain",
             f"Some content in the namespace has finalizers remaining: {finalizers}") if finalizers
            else ("NamespaceFinalizersRemaining", False, "ContentHasNoFinalizers",
                  "All content-preserving finalizers finished"),
        ]
        previous = {c.get("type"): c for c in old}
        now = format_time(self._wall_clock())
        conditions = []
        for kind, on, reason, message in wanted:
            state = "True" if on else "False"
            before = previous.get(kind) or {}
            since = before.get("lastTransitionTime") if before.get("status") == state else None
            conditions.append({"type": kind, "status": state, "lastTransitionTime": since or now,
                               "reason": reason, "message": message})
        return conditions

    async def _finalize(self, ns: Obj) -> None:
        body = copy.deepcopy(ns)
        spec = body.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        name = (ns.get("metadata") or {}).get("name")
        log.info("namespace %s: empty, removing the %r finalizer", name, FINALIZER)
        try:
            await self.client.update(resources.NAMESPACES, body, subresource="finalize")
        except NotFoundError:
            log.debug("namespace %s: already gone", name)


def _qualified(ref: ResourceRef) -> str:
    """Kubernetes' spelling in condition messages: ``pods.``, ``deployments.apps``."""
    return f"{ref.plural}.{ref.group}"


def _strip_times(conditions: list[Obj]) -> list[tuple[Any, ...]]:
    return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conditions]
