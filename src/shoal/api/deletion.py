"""Deletion with Kubernetes semantics: preconditions, graceful deletion, finalizers, propagation.

``DELETE`` on an object:

* checks ``preconditions`` (uid, resourceVersion) -> 409 Conflict on mismatch;
* picks the propagation policy (``propagationPolicy``, else the legacy ``orphanDependents``,
  else Background) and adds the ``foregroundDeletion`` or ``orphan`` finalizer for the garbage
  collector (``shoal.controllers.garbage_collector``) to act on;
* Namespaces become ``Terminating``: the namespace controller empties them and clears
  ``spec.finalizers`` through ``/finalize``;
* Pods bound to a node are deleted gracefully: ``deletionTimestamp`` = now + grace period and
  ``deletionGracePeriodSeconds``; the node's agent stops the containers and finishes the
  deletion with grace period 0.  Unbound pods and ``gracePeriodSeconds: 0`` go at once; a
  negative grace period is 1 s (Kubernetes' pod strategy).  Any
  int64 grace period is taken, as Kubernetes does; a deadline past year 9999 is written as
  :data:`LATEST_TIMESTAMP`.  The options' types are checked by :func:`shoal.api.options.delete_options`;
* an object with a ``deletionTimestamp`` and no finalizers left is removed from the store.
  :meth:`Deleter.finish_if_done` is called after every update so that removing the last
  finalizer completes the deletion.

Admission (:mod:`shoal.api.admission`) sees every DELETE after the preconditions passed, with
the stored object as the old object; every removal releases what the object held (Service
IPs and ports) through admission's ``release_unused``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.api.admission import AdmissionRequest, Operation
from shoal.api.writes import WriteContext, Writer
from shoal.kube import errors, times
from shoal.kube.objects import Obj
from shoal.resources.registry import ResourceKind

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


#: The latest ``deletionTimestamp`` there is: RFC 3339 has four-digit years.
LATEST_TIMESTAMP = "9999-12-31T23:59:59Z"


def _deadline(ctx: WriteContext, seconds: int) -> str:
    """``now + seconds`` as a timestamp, clamped to :data:`LATEST_TIMESTAMP`.

    Kubernetes takes any int64 grace period (its Go arithmetic wraps around); a deadline past
    year 9999 cannot be written, and such a pod is in practice never killed: the latest
    timestamp says the same."""
    latest = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    if seconds >= (latest - ctx.now).total_seconds():
        return LATEST_TIMESTAMP
    return times.format_time(ctx.now + timedelta(seconds=seconds))


def _policy(options: dict[str, Any]) -> str:
    policy = options.get("propagationPolicy")
    if policy:
        if policy not in ("Background", "Foreground", "Orphan"):
            raise errors.invalid("DeleteOptions", "", "", [errors.FieldError(
                "propagationPolicy", "FieldValueNotSupported",
                'supported values: "Foreground", "Background", "Orphan"', policy)])
        return str(policy)
    if options.get("orphanDependents") is True:
        return "Orphan"
    return "Background"


class Deleter:
    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.storage = writer.storage

    def _done(self, kind: ResourceKind, obj: Obj) -> bool:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        if kind.plural == "namespaces" and (obj.get("spec") or {}).get("finalizers"):
            return False
        return not (kind.plural == "pods" and meta.get("deletionGracePeriodSeconds", 0) > 0)

    async def finish_if_done(self, kind: ResourceKind, obj: Obj) -> Obj | None:
        """Remove ``obj`` from the store when nothing holds its deletion back any more."""
        if not self._done(kind, obj):
            return None
        try:
            removed = await self.storage.remove(kind, obj)
        except errors.ApiError as exc:
            if exc.code in (404, 409):  # someone else finished it, or it changed again
                return None
            raise
        await self.writer.admission.release_unused(kind, None, removed)
        return removed

    async def delete(
        self, kind: ResourceKind, namespace: str, name: str, options: dict[str, Any],
        ctx: WriteContext,
    ) -> tuple[Obj, bool]:
        """Returns (object, finished): finished is False while the deletion is pending."""
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        policy = _policy(options)
        preconditions = options.get("preconditions") or {}
        grace = options.get("gracePeriodSeconds")
        for _ in range(8):
            obj = await self.storage.get(kind, namespace, name)
            meta = obj["metadata"]
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise errors.conflict(
                    kind.plural, kind.group, name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {meta.get('uid')}")
            wanted_rv = preconditions.get("resourceVersion")
            if wanted_rv and wanted_rv != meta["resourceVersion"]:
                raise errors.conflict(
                    kind.plural, kind.group, name,
                    f"Precondition failed: ResourceVersion in precondition: {wanted_rv}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}")
            await self.writer.admission.admit(AdmissionRequest(
                Operation.DELETE, kind, namespace, name, None, obj, ctx.user, ctx.dry_run))
            new = copy.deepcopy(obj)
            self._mark(kind, new, policy, grace, ctx)
            if ctx.dry_run:
                return new, self._done(kind, new)
            if self._done(kind, new):
                try:
                    removed = await self.storage.remove(kind, obj)
                except errors.ApiError as exc:
                    if exc.code == 409:
                        continue
                    raise
                await self.writer.admission.release_unused(kind, None, removed)
                return removed, True
            if new == obj:
                return obj, False
            try:
                stored = await self.storage.update(kind, new, int(meta["resourceVersion"]))
            except errors.ApiError as exc:
                if exc.code == 409:
                    continue
                raise
            return stored, False
        raise errors.conflict(kind.plural, kind.group, name, "too many concurrent writers; retry")

    def _mark(self, kind: ResourceKind, obj: Obj, policy: str, grace: Any, ctx: WriteContext) -> None:
        meta = obj["metadata"]
        finalizers: list[str] = list(meta.get("finalizers") or [])
        already = bool(meta.get("deletionTimestamp"))
        if policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers = [f for f in finalizers if f != ORPHAN] + [FOREGROUND]
        elif policy == "Orphan" and ORPHAN not in finalizers and not already:
            finalizers = [f for f in finalizers if f != FOREGROUND] + [ORPHAN]
        if finalizers:
            meta["finalizers"] = finalizers
        if kind.plural == "pods":
            seconds = grace if isinstance(grace, int) else (obj.get("spec") or {}).get(
                "terminationGracePeriodSeconds", 30)
            if not (obj.get("spec") or {}).get("nodeName") or (obj.get("status") or {}).get(
                    "phase") in ("Succeeded", "Failed"):
                seconds = 0
            seconds = int(seconds)
            if seconds < 0:
                seconds = 1  # Kubernetes' pod strategy: a negative grace period is one second
            current = meta.get("deletionGracePeriodSeconds")
            if current is None or seconds < current:
                meta["deletionGracePeriodSeconds"] = seconds
                meta["deletionTimestamp"] = _deadline(ctx, seconds)
        elif not already:
            meta["deletionTimestamp"] = ctx.timestamp
            meta["deletionGracePeriodSeconds"] = 0
        if kind.plural == "namespaces":
            obj.setdefault("status", {})["phase"] = "Terminating"
