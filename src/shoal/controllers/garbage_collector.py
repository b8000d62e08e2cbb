"""The garbage collector: deletes dependants whose owners are gone, and runs cascading deletion.

Kubernetes semantics (``metadata.ownerReferences``, ``deleteOptions.propagationPolicy``):

* **Background** - an object whose every owner is gone is deleted (uid precondition).  If some
  owners remain, only the references to the missing ones are removed.  "Gone" means: no
  object with the reference's uid in the informer caches *and* a live GET of the owner (by
  kind and name) finds nothing or an object with another uid.  The live check covers owners
  whose informer lags behind, or whose kind is not watched (a Node, a Namespace).
* **Foreground** - an owner with a ``deletionTimestamp`` and the ``foregroundDeletion``
  finalizer: each dependant is deleted with ``propagationPolicy: Foreground`` (so the cascade
  recurses), unless it has another live owner, in which case only its reference to this
  owner is removed.  When the caches show no dependant left, the finalizer is removed
  (PUT of the owner) and the API server deletes the owner.
* **Orphan** - an owner with a ``deletionTimestamp`` and the ``orphan`` finalizer: the reference
  to it is removed from every dependant, then the ``orphan`` finalizer is removed.

The graph is the informer caches plus two indexes on each: ``uid`` and ``ownerUid``.  Work
items are ``<plural.group>/<namespace>/<name>`` (namespace empty for cluster-scoped objects).
Handlers only enqueue: the object itself, its owners (so a foreground owner notices its
dependants going), and on deletion its dependants.  ``reconcile`` recomputes everything from
the current caches; every write is conditional (uid precondition on DELETE, a JSON-patch
``test`` on ownerReferences, resourceVersion on PUT), so a stale cache costs a retry, never a
wrong deletion of a replaced object.  Unknown owner kinds are treated as present (logged).
"""

from __future__ import annotations

import copy
import enum
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from shoal.client import resources
from shoal.client.controller import Controller
from shoal.client.errors import ConflictError, NotFoundError
from shoal.client.informer import EventHandler, Informer, InformerFactory
from shoal.client.resources import ResourceRef
from shoal.client.rest import JSON_PATCH, ApiClient, PropagationPolicy
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj
from shoal.kube.objects import meta as _meta

__all__ = ["DEFAULT_RESOURCES", "FOREGROUND_FINALIZER", "ORPHAN_FINALIZER", "GarbageCollector"]

log = logging.getLogger(__name__)

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"

#: The resource types that can be owners or dependants by default.
DEFAULT_RESOURCES: tuple[ResourceRef, ...] = (
    resources.PODS, resources.REPLICASETS, resources.DEPLOYMENTS, resources.SERVICES,
    resources.ENDPOINTS, resources.ENDPOINTSLICES, resources.CONFIGMAPS, resources.SECRETS,
    resources.EVENTS,
)

UID_INDEX = "uid"
OWNER_INDEX = "ownerUid"


class _Owner(enum.Enum):
    ABSENT = "absent"  # no object with that uid: a dangling reference
    SOLID = "solid"  # exists and is not being deleted in the foreground
    WAITING = "waiting"  # exists, deletionTimestamp + foregroundDeletion: waiting for dependants


def _owner_refs(obj: Obj) -> list[dict[str, Any]]:
    refs = _meta(obj).get("ownerReferences") or []
    return [ref for ref in refs if isinstance(ref, dict)]


def index_uid(obj: Obj) -> list[str]:
    uid = _meta(obj).get("uid")
    return [uid] if isinstance(uid, str) and uid else []


def index_owner_uids(obj: Obj) -> list[str]:
    return [ref["uid"] for ref in _owner_refs(obj) if isinstance(ref.get("uid"), str)]


def node_key(ref: ResourceRef, obj: Obj) -> str:
    meta = _meta(obj)
    return f"{ref.resource}/{meta.get('namespace') or ''}/{meta.get('name', '')}"


class GarbageCollector(Controller):
    """Owner-reference garbage collection over ``resource_types`` (see the module docstring)."""

    def __init__(self, client: ApiClient, informers: InformerFactory,
                 resource_types: Sequence[ResourceRef] = DEFAULT_RESOURCES, *,
                 clock: Clock | None = None) -> None:
        super().__init__("garbage-collector", clock=clock)
        self.client = client
        self._monitors: dict[str, tuple[ResourceRef, Informer]] = {}
        for ref in resource_types:
            informer = informers.informer(ref)
            informer.add_index(UID_INDEX, index_uid)
            informer.add_index(OWNER_INDEX, index_owner_uids)
            informer.add_event_handler(self._handler(ref))
            self._monitors[ref.resource] = (ref, informer)
            self.informers.append(informer)

    # -- handlers: enqueue only ----------------------------------------------------------

    def _handler(self, ref: ResourceRef) -> EventHandler:
        def on_add(obj: Obj) -> None:
            self.enqueue(node_key(ref, obj))
            self._enqueue_owners(obj)

        def on_update(old: Obj, new: Obj) -> None:
            self.enqueue(node_key(ref, new))
            self._enqueue_owners(new)
            self._enqueue_owners(old)

        def on_delete(obj: Obj) -> None:
            self._enqueue_owners(obj)
            for uid in index_uid(obj):
                for dep_ref, dependant in self._dependants(uid):
                    self.enqueue(node_key(dep_ref, dependant))

        return EventHandler(on_add, on_update, on_delete)

    def _enqueue_owners(self, obj: Obj) -> None:
        for uid in index_owner_uids(obj):
            found = self._cached(uid)
            if found is not None:
                self.enqueue(node_key(*found))

    # -- the graph -----------------------------------------------------------------------

    def _cached(self, uid: str) -> tuple[ResourceRef, Obj] | None:
        for ref, informer in self._monitors.values():
            for obj in informer.by_index(UID_INDEX, uid):
                return ref, obj
        return None

    def _dependants(self, uid: str) -> list[tuple[ResourceRef, Obj]]:
        return [(ref, obj) for ref, informer in self._monitors.values()
                for obj in informer.by_index(OWNER_INDEX, uid)]

    async def _owner_state(self, dependant: Obj, owner: dict[str, Any]) -> _Owner:
        uid = owner.get("uid")
        found = self._cached(uid) if isinstance(uid, str) else None
        obj = found[1] if found is not None else await self._live_owner(dependant, owner)
        if obj is None:
            return _Owner.ABSENT
        meta = _meta(obj)
        if meta.get("deletionTimestamp") and FOREGROUND_FINALIZER in (meta.get("finalizers") or []):
            return _Owner.WAITING
        return _Owner.SOLID

    async def _live_owner(self, dependant: Obj, owner: dict[str, Any]) -> Obj | None:
        ref = resources.ref_for_kind(str(owner.get("apiVersion", "")), str(owner.get("kind", "")))
        if ref is None:
            log.warning("garbage collector: %s refers to an owner of unknown kind %s %s; keeping it",
                        _describe(dependant), owner.get("apiVersion"), owner.get("kind"))
            return {"metadata": {"uid": owner.get("uid")}}
        namespace = _meta(dependant).get("namespace")
        if ref.namespaced and not namespace:
            return None  # a cluster-scoped object cannot be owned by a namespaced one
        try:
            live = await self.client.get(ref, str(owner.get("name", "")), namespace)
        except NotFoundError:
            return None
        return live if _meta(live).get("uid") == owner.get("uid") else None

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        resource, namespace, name = key.split("/", 2)
        monitor = self._monitors.get(resource)
        if monitor is None:
            raise ValueError(f"garbage collector: no informer for {resource!r} (key {key!r})")
        ref, informer = monitor
        obj = informer.get(f"{namespace}/{name}" if namespace else name)
        if obj is None:
            return  # deleted: its dependants were enqueued by the delete handler
        meta = _meta(obj)
        if meta.get("deletionTimestamp"):
            finalizers = meta.get("finalizers") or []
            if ORPHAN_FINALIZER in finalizers:
                await self._orphan_dependants(ref, obj)
            elif FOREGROUND_FINALIZER in finalizers:
                await self._delete_dependants(ref, obj)
            return
        await self._collect_if_dangling(ref, obj)

    async def _collect_if_dangling(self, ref: ResourceRef, obj: Obj) -> None:
        owners = _owner_refs(obj)
        if not owners:
            return
        states = [(owner, await self._owner_state(obj, owner)) for owner in owners]
        doomed = {str(owner.get("uid")) for owner, state in states if state is not _Owner.SOLID}
        if not doomed:
            return
        if any(state is _Owner.SOLID for _, state in states):
            log.info("garbage collector: %s loses its references to %s", _describe(obj), sorted(doomed))
            await self._remove_owner_refs(ref, obj, doomed)
            return
        waiting = any(state is _Owner.WAITING for _, state in states)
        await self._delete(ref, obj, "Foreground" if waiting else "Background")

    async def _delete_dependants(self, ref: ResourceRef, owner: Obj) -> None:
        uid = _meta(owner).get("uid", "")
        dependants = self._dependants(uid)
        for dep_ref, dependant in dependants:
            if _meta(dependant).get("deletionTimestamp"):
                continue  # already going; its own reconcile runs its cascade
            others = [o for o in _owner_refs(dependant) if o.get("uid") != uid]
            states = [await self._owner_state(dependant, other) for other in others]
            if _Owner.SOLID in states:
                await self._remove_owner_refs(dep_ref, dependant, {uid})
            else:
                await self._delete(dep_ref, dependant, "Foreground")
        if not dependants:
            await self._remove_finalizer(ref, owner, FOREGROUND_FINALIZER)

    async def _orphan_dependants(self, ref: ResourceRef, owner: Obj) -> None:
        uid = _meta(owner).get("uid", "")
        for dep_ref, dependant in self._dependants(uid):
            await self._remove_owner_refs(dep_ref, dependant, {uid})
        await self._remove_finalizer(ref, owner, ORPHAN_FINALIZER)

    # -- writes --------------------------------------------------------------------------

    async def _delete(self, ref: ResourceRef, obj: Obj, policy: PropagationPolicy) -> None:
        meta = _meta(obj)
        log.info("garbage collector: deleting %s (propagation %s)", _describe(obj), policy)
        try:
            await self.client.delete(ref, meta.get("name", ""), meta.get("namespace"),
                                     propagation_policy=policy, uid=meta.get("uid"))
        except NotFoundError:
            log.debug("garbage collector: %s was already gone", _describe(obj))
        except ConflictError:
            log.debug("garbage collector: %s was replaced (uid precondition failed)", _describe(obj))

    async def _remove_owner_refs(self, ref: ResourceRef, obj: Obj, uids: Iterable[str]) -> None:
        """Drop the references to ``uids``, on condition the references are still as cached."""
        meta = _meta(obj)
        drop = set(uids)
        current = meta.get("ownerReferences") or []
        keep = [owner for owner in current if not (isinstance(owner, dict) and owner.get("uid") in drop)]
        if len(keep) == len(current):
            return
        patch: list[Obj] = [
            {"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
            {"op": "test", "path": "/metadata/ownerReferences", "value": current},
            {"op": "replace", "path": "/metadata/ownerReferences", "value": keep} if keep
            else {"op": "remove", "path": "/metadata/ownerReferences"},
        ]
        try:
            await self.client.patch(ref, meta.get("name", ""), patch, meta.get("namespace"),
                                    content_type=JSON_PATCH)
        except NotFoundError:
            log.debug("garbage collector: %s was already gone", _describe(obj))

    async def _remove_finalizer(self, ref: ResourceRef, obj: Obj, finalizer: str) -> None:
        body = copy.deepcopy(obj)
        meta = body["metadata"]
        meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != finalizer]
        log.info("garbage collector: removing finalizer %s from %s", finalizer, _describe(obj))
        try:
            await self.client.update(ref, body)
        except NotFoundError:
            log.debug("garbage collector: %s was already gone", _describe(obj))


def _describe(obj: Obj) -> str:
    meta = _meta(obj)
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', 'object')} {where}{meta.get('name', '')} ({meta.get('uid', '')})"
