"""The write path: create, update, patch and apply with Kubernetes' object semantics.

Every write goes through the same pipeline, in Kubernetes' order:

1. decode (done by the caller) and schema check: type errors are 422 Invalid naming the field;
   unknown fields are refused under ``fieldValidation=Strict`` (400, "strict decoding error"),
   reported as a ``Warning`` header under ``Warn`` (the default, as in Kubernetes) and dropped
   under ``Ignore`` — an unknown field is never stored as if it were honoured;
2. system metadata: ``uid``, ``creationTimestamp``, ``generation`` (1 on create, +1 only when
   something outside ``metadata`` and ``status`` changed), ``managedFields``; fields clients
   may not set are reset from the old object;
3. admission (:mod:`shoal.api.admission`, ``admit``: on create, the namespace exists and is
   not terminating), the kind's defaults and validation (422 naming each bad field), then
   admission's ``reserve`` (Service IP and port allocation), undone if the store write fails;
4. the store write with compare-and-swap on the revision.  A write that carries a
   ``resourceVersion`` fails with 409 when it is stale; one without it is retried on conflict.
   After a stored update, admission's ``release_unused`` frees what the old object held.

:class:`WriteContext` carries the request's user (:class:`~shoal.security.user.UserInfo`),
which admission sees in every :class:`~shoal.api.admission.AdmissionRequest`.

``dryRun=All`` runs everything but the store write.  Deletion lives in
:mod:`shoal.api.deletion`.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shoal.api.admission import AdmissionPlugin, AdmissionRequest, Operation, default_admission
from shoal.api.apply import record_update, server_side_apply
from shoal.api.bodies import clone, decode_yaml_or_json
from shoal.api.patch import apply_patch, decode_patch
from shoal.api.storage import ObjectStorage
from shoal.kube import errors, times
from shoal.kube.objects import Obj
from shoal.resources import validation
from shoal.resources.registry import Registry, ResourceKind
from shoal.security.user import UserInfo

# Fields of metadata owned by the server: a client write never changes them.
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "selfLink")
_RETRIES = 8


@dataclass
class WriteContext:
    user: UserInfo
    field_manager: str = ""
    dry_run: bool = False
    #: Kubernetes' default when the request names none (kubectl sends Strict itself).
    field_validation: str = "Warn"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    warnings: list[str] = field(default_factory=list)

    @property
    def timestamp(self) -> str:
        return times.format_time(self.now)


def spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Writer:
    def __init__(self, storage: ObjectStorage, registry: Registry,
                 admission: AdmissionPlugin | None = None) -> None:
        self.storage = storage
        self.registry = registry
        self.admission: AdmissionPlugin = admission or default_admission(storage, registry)

    # -- helpers ---------------------------------------------------------------------------
    def check_schema(self, kind: ResourceKind, obj: Obj, ctx: WriteContext) -> None:
        result = validation.validate_schema(obj)
        if result.unknown:
            if ctx.field_validation == "Strict":
                raise errors.bad_request(validation.unknown_fields_message(result.unknown))
            if ctx.field_validation == "Warn":
                ctx.warnings.extend(f'unknown field "{p}"' for p in result.unknown)
            validation.prune(result)
        if result.errors:
            raise errors.invalid(kind.kind, kind.group, _name_of(obj), result.errors)

    def _identify(self, kind: ResourceKind, obj: Obj, namespace: str, name: str | None) -> None:
        if not isinstance(obj, dict):
            raise errors.bad_request("the request body must be a JSON object")
        api_version, kind_name = obj.get("apiVersion"), obj.get("kind")
        if api_version not in (None, "", kind.api_version) or kind_name not in (None, "", kind.kind):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({kind.api_version}) or kind ({kind_name} vs {kind.kind})"
            )
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.invalid(kind.kind, kind.group, "", [errors.FieldError(
                "metadata", "FieldValueInvalid", "must be an object", None)])
        if kind.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request")
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
            meta["name"] = name

    def _finish(self, kind: ResourceKind, obj: Obj, old: Obj | None) -> None:
        kind.default(obj)
        problems = kind.validate(obj, old)
        if problems:
            raise errors.invalid(kind.kind, kind.group, _name_of(obj), problems)

    # -- create ----------------------------------------------------------------------------
    async def create(self, kind: ResourceKind, namespace: str, body: Obj, ctx: WriteContext) -> Obj:
        self._identify(kind, body, namespace, None)
        self.check_schema(kind, body, ctx)
        meta = body["metadata"]
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + _suffix()
            else:
                raise errors.invalid(kind.kind, kind.group, "", [errors.FieldError(
                    "metadata.name", "FieldValueRequired", "name or generateName is required")])
        self.prepare_create(kind, body, ctx)
        return await self._store_new(kind, body, ctx)

    async def _store_new(self, kind: ResourceKind, obj: Obj, ctx: WriteContext) -> Obj:
        """Admission, defaults and validation, admission's claims, then the store create."""
        meta = obj["metadata"]
        request = AdmissionRequest(Operation.CREATE, kind, meta.get("namespace", ""), meta["name"], obj,
                                   None, ctx.user, ctx.dry_run)
        await self.admission.admit(request)
        self._finish(kind, obj, None)
        release = await self.admission.reserve(request)
        if ctx.dry_run:
            return obj
        try:
            return await self.storage.create(kind, obj)
        except BaseException:
            await release()
            raise

    def prepare_create(self, kind: ResourceKind, obj: Obj, ctx: WriteContext) -> None:
        meta = obj["metadata"]
        for key in (*_SYSTEM_META, "resourceVersion", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = ctx.timestamp
        meta["generation"] = 1
        if kind.has_status and kind.plural not in ("nodes",):
            obj["status"] = {}
        if kind.plural == "pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        if ctx.field_manager:
            record_update(None, obj, ctx.field_manager, "Update", ctx.timestamp, kind=kind.kind,
                          track_status=not kind.has_status)

    # -- update ----------------------------------------------------------------------------
    async def update(
        self, kind: ResourceKind, namespace: str, name: str, body: Obj, ctx: WriteContext,
        subresource: str = "",
    ) -> Obj:
        self._identify(kind, body, namespace, name)
        self.check_schema(kind, body, ctx)
        wanted_rv = body["metadata"].get("resourceVersion") or ""

        async def compute(old: Obj) -> Obj:
            return self.merge_update(kind, old, copy.deepcopy(body), ctx, subresource)

        return await self.write_back(kind, namespace, name, compute, ctx, wanted_rv, subresource=subresource)

    def merge_update(self, kind: ResourceKind, old: Obj, new: Obj, ctx: WriteContext,
                     subresource: str) -> Obj:
        """The object to store when a client sends ``new`` to replace ``old``.

        A ``metadata.uid`` in ``new`` is a precondition, as in Kubernetes (the kubelet's status
        patches carry one): another object of the same name is a 409 Conflict."""
        wanted_uid = (new.get("metadata") or {}).get("uid")
        if wanted_uid and wanted_uid != old["metadata"].get("uid"):
            raise errors.conflict(kind.plural, kind.group, str(old["metadata"].get("name", "")),
                                  f"Precondition failed: UID in precondition: {wanted_uid}, "
                                  f"UID in object meta: {old['metadata'].get('uid', '')}")
        if subresource == "status":
            result = clone(old)
            result["status"] = new.get("status") or {}  # null: the empty status, as Go decodes it
            new = result
        elif subresource == "finalize":
            result = clone(old)
            result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            new = result
        elif kind.has_status and "status" in old:
            new["status"] = clone(old["status"])
        meta, old_meta = new["metadata"], old["metadata"]
        for key in _SYSTEM_META:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if old_meta.get("deletionTimestamp") and set(meta.get("finalizers") or []) - set(
                old_meta.get("finalizers") or []):
            raise errors.ApiError(422, "Invalid", "no new finalizers can be added if the object is "
                                  "being deleted", {"name": meta["name"]})
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if not subresource:
            # Kubernetes defaults a body when it decodes it, before the strategy compares specs:
            # a PUT that leaves out defaulted fields changes nothing and bumps no generation.
            kind.default(new)
        if spec_part(new) != spec_part(old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        if ctx.field_manager:
            record_update(old, new, ctx.field_manager, "Update", ctx.timestamp, kind=kind.kind,
                          subresource=subresource, track_status=not kind.has_status or subresource == "status")
        return new

    async def write_back(
        self, kind: ResourceKind, namespace: str, name: str,
        compute: Callable[[Obj], Awaitable[Obj]], ctx: WriteContext, wanted_rv: str = "",
        create_missing: Callable[[], Awaitable[Obj]] | None = None, *, checked: bool = True,
        subresource: str = "",
    ) -> Obj:
        """Read-modify-write with CAS; retried on conflict unless the client named a version.

        ``checked=False`` skips the kind's defaults and validation of the result: for writes
        that change only server-set fields of a stored (so already valid) object, as
        Kubernetes' pods/binding does.  Admission runs in either case; ``subresource`` is
        what it is told was written."""
        for _ in range(_RETRIES):
            try:
                old = await self.storage.get(kind, namespace, name)
            except errors.ApiError as exc:
                if exc.code == 404 and create_missing is not None:
                    try:
                        return await create_missing()
                    except errors.ApiError as create_exc:
                        if create_exc.code == 409 and create_exc.reason == "AlreadyExists":
                            continue
                        raise
                raise
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.plural, kind.group, name,
                                      "the object has been modified; please apply your changes to "
                                      "the latest version and try again")
            new = await compute(clone(old))
            request = AdmissionRequest(Operation.UPDATE, kind, namespace, name, new, old, ctx.user,
                                       ctx.dry_run, subresource)
            await self.admission.admit(request)
            if checked:
                self._finish(kind, new, old)
            if new == old:
                return old
            release = await self.admission.reserve(request)
            if ctx.dry_run:
                return new
            try:
                stored = await self.storage.update(kind, new, int(old["metadata"]["resourceVersion"]))
            except errors.ApiError as exc:
                await release()
                if exc.code == 409 and not wanted_rv:
                    continue
                raise
            await self.admission.release_unused(kind, stored, old)
            return stored
        raise errors.conflict(kind.plural, kind.group, name, "too many concurrent writers; retry")

    # -- patch -----------------------------------------------------------------------------
    async def patch(
        self, kind: ResourceKind, namespace: str, name: str, body: bytes, content_type: str,
        ctx: WriteContext, subresource: str = "", force: bool = False,
    ) -> Obj:
        if content_type == "application/apply-patch+yaml":
            return await self.apply(kind, namespace, name, body, ctx, force)
        patch = decode_patch(body, content_type, ctx)  # once, not on every retry

        async def compute(old: Obj) -> Obj:
            patched = apply_patch(old, patch)
            self._identify(kind, patched, namespace, name)
            self.check_schema(kind, patched, ctx)
            return self.merge_update(kind, old, patched, ctx, subresource)

        return await self.write_back(kind, namespace, name, compute, ctx, subresource=subresource)

    async def apply(self, kind: ResourceKind, namespace: str, name: str, body: bytes,
                    ctx: WriteContext, force: bool) -> Obj:
        applied = decode_yaml_or_json(body, ctx)
        self._identify(kind, applied, namespace, name)
        self.check_schema(kind, applied, ctx)
        if not ctx.field_manager:
            raise errors.bad_request("fieldManager is required for apply requests")

        async def compute(old: Obj) -> Obj:
            merged = server_side_apply(old, applied, ctx.field_manager, force, kind.kind, ctx.timestamp,
                                       track_status=not kind.has_status)
            new = self.merge_update(kind, old, merged, _no_manager(ctx), "")
            new["metadata"]["managedFields"] = merged["metadata"].get("managedFields", [])
            return new

        async def create() -> Obj:
            fresh = server_side_apply(None, copy.deepcopy(applied), ctx.field_manager, force,
                                      kind.kind, ctx.timestamp, track_status=not kind.has_status)
            managed = fresh["metadata"].get("managedFields", [])
            self.prepare_create(kind, fresh, _no_manager(ctx))
            fresh["metadata"]["managedFields"] = managed
            return await self._store_new(kind, fresh, ctx)

        return await self.write_back(kind, namespace, name, compute, ctx, create_missing=create)


def _no_manager(ctx: WriteContext) -> WriteContext:
    return WriteContext(ctx.user, "", ctx.dry_run, ctx.field_validation, ctx.now, ctx.warnings)


def _name_of(obj: Any) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        return str(obj["metadata"].get("name") or "")
    return ""


def _suffix() -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(5))
