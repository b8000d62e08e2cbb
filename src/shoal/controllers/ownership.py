"""Label selectors, controller references and claiming (Kubernetes' ``ControllerRefManager``).

A *controller reference* is the one ``ownerReferences`` entry with ``controller: true``; an
object has at most one controller.  A controller (a ReplicaSet for pods, a Deployment for
ReplicaSets) *claims* the objects of its namespace:

* an object it controls that its selector still matches is kept;
* an object it controls that no longer matches is *released* (its reference removed), unless
  the controller or the object is being deleted;
* an *orphan* (no controller) that matches, is not being deleted, while the controller is not
  being deleted either, is *adopted* (a controller reference added) - but only after a live GET
  of the controller (``can_adopt``) shows it still exists with the same uid and no
  ``deletionTimestamp``, so a stale cache never adopts for a dead owner;
* objects controlled by someone else are ignored.

Every adopt/release is a JSON patch that first ``test``-s the object's uid and
resourceVersion: it applies only to the object as cached, so a concurrent writer costs a
retry (raised as :class:`~shoal.client.errors.ConflictError`), never a lost reference.

Selectors (``metav1.LabelSelector``) match through :func:`shoal.kube.selectors.matches`: an
empty selector matches everything, a missing (None) one nothing, and one Kubernetes refuses
(an unknown operator) nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shoal.client.errors import ApiClientError, ConflictError, InvalidError, NotFoundError, make_status
from shoal.client.resources import ResourceRef
from shoal.client.rest import JSON_PATCH, ApiClient
from shoal.kube import objects, selectors
from shoal.kube.objects import Obj, OwnerReference
from shoal.kube.objects import meta as _meta

__all__ = [
    "CONTROLLER_UID_INDEX",
    "Claimer",
    "controller_ref",
    "index_controller_uid",
]

log = logging.getLogger(__name__)

#: Informer index name for :func:`index_controller_uid` (shared by the workload controllers).
CONTROLLER_UID_INDEX = "controllerUid"


def index_controller_uid(obj: Obj) -> list[str]:
    """Informer index function: the uid of the object's controller (if any)."""
    ref = objects.controller_of(obj)
    uid = ref.get("uid") if ref is not None else None
    return [uid] if uid else []


def controller_ref(owner: Obj, ref: ResourceRef) -> OwnerReference:
    """A controller ``ownerReference`` to ``owner`` (of type ``ref``), blocking its deletion."""
    return {"apiVersion": ref.api_version, "kind": ref.kind, "name": objects.name(owner),
            "uid": objects.uid(owner), "controller": True, "blockOwnerDeletion": True}


@dataclass
class Claimer:
    """Claims the objects of type ``ref`` for ``owner`` (of type ``owner_ref``).

    ``can_adopt`` is awaited (at most once per :meth:`claim`) before the first adoption and
    raises if the owner may not adopt (gone, replaced, or being deleted)."""

    client: ApiClient
    ref: ResourceRef
    owner: Obj
    owner_ref: ResourceRef
    selector: Any
    can_adopt: Callable[[], Awaitable[None]]
    _checked: bool = field(default=False, init=False)

    async def claim(self, objs: Iterable[Obj]) -> list[Obj]:
        """The objects the owner controls after adopting and releasing (read-only inputs).

        Every object is tried; if any write failed, the first error is raised afterwards."""
        owner_uid = objects.uid(self.owner)
        owner_deleting = objects.deleting(self.owner)
        claimed: list[Obj] = []
        errors: list[ApiClientError] = []
        for obj in objs:
            ref = objects.controller_of(obj)
            matches = selectors.matches(self.selector, objects.labels(obj))
            try:
                if ref is not None:
                    if ref.get("uid") != owner_uid:
                        continue
                    if matches:
                        claimed.append(obj)
                    elif not owner_deleting and not objects.deleting(obj):
                        await self._release(obj)
                elif matches and not owner_deleting and not objects.deleting(obj) \
                        and await self._adopt(obj):
                    claimed.append(obj)
            except ApiClientError as exc:
                errors.append(exc)
        for extra in errors[1:]:
            log.warning("claim by %s: another failure: %s", _describe(self.owner), extra)
        if errors:
            raise errors[0]
        return claimed

    async def _adopt(self, obj: Obj) -> bool:
        if not self._checked:
            await self.can_adopt()
            self._checked = True
        new_refs = [*objects.owner_references(obj), controller_ref(self.owner, self.owner_ref)]
        log.info("%s adopts %s", _describe(self.owner), _describe(obj))
        return await self._patch_refs(obj, new_refs)

    async def _release(self, obj: Obj) -> None:
        owner_uid = objects.uid(self.owner)
        refs = objects.owner_references(obj)
        log.info("%s releases %s", _describe(self.owner), _describe(obj))
        await self._patch_refs(obj, [r for r in refs if r.get("uid") != owner_uid])

    async def _patch_refs(self, obj: Obj, refs: list[OwnerReference]) -> bool:
        """Set ``ownerReferences`` on the object as cached; False if the object is gone."""
        meta = objects.typed_meta(obj)
        patch: list[Obj] = [
            {"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
            {"op": "add", "path": "/metadata/ownerReferences", "value": refs} if refs
            else {"op": "remove", "path": "/metadata/ownerReferences"},
        ]
        try:
            await self.client.patch(self.ref, meta.get("name", ""), patch, meta.get("namespace"),
                                    content_type=JSON_PATCH)
        except NotFoundError:
            return False
        except InvalidError as exc:
            # A failed ``test``: the object changed since it was cached.  Routine; retry.
            raise ConflictError(make_status(409, "Conflict", f"{_describe(obj)} changed: {exc}")) from exc
        return True


def _describe(obj: Obj) -> str:
    meta = _meta(obj)
    return f"{obj.get('kind', 'object')} {meta.get('namespace', '')}/{meta.get('name', '')}"


async def recheck_owner(client: ApiClient, ref: ResourceRef, owner: Obj) -> None:
    """Before adopting: re-read ``owner`` live and refuse (409) if it was replaced or is being deleted.

    The cached owner may be stale; adopting for a deleted owner would orphan the adoptees again
    (Kubernetes' ``RecheckDeletionTimestamp``).
    """
    meta = _meta(owner)
    fresh = await client.get(ref, meta["name"], meta.get("namespace"))
    if _meta(fresh).get("uid") != meta.get("uid"):
        raise ConflictError(make_status(409, "Conflict", f"original {ref.kind} {meta['name']} is gone"))
    if _meta(fresh).get("deletionTimestamp"):
        raise ConflictError(make_status(409, "Conflict", f"{ref.kind} {meta['name']} is being deleted"))
