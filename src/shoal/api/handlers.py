"""Generic resource handlers: one code path for every kind in the registry.

A request for ``/api/v1/namespaces/{ns}/{plural}/{name}/{sub}`` (or the ``/apis/{group}``
form) is parsed into a :class:`Target` and dispatched on method, name and subresource:
list/watch, get, create, update (PUT), patch, delete, and the ``status``, ``scale``,
``finalize`` and ``binding`` subresources.  Responses are JSON objects, Tables when the
client asks for ``as=Table``, or Status objects for errors (see :mod:`shoal.kube.errors`).
Requests arrive authenticated and authorized (:mod:`shoal.api.pipeline`); every write carries
the request's user in its :class:`~shoal.api.writes.WriteContext`.  Query options (``limit``,
``resourceVersion``, ``gracePeriodSeconds`` ...) and the bodies of DELETE, ``binding`` and
``scale`` pass :mod:`shoal.api.options` before anything is read or written: a malformed one is
a 4xx naming the parameter or field.  Without ``fieldValidation`` a write is checked as
``Warn``, Kubernetes' default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shoal.api import tables
from shoal.api.admission import AdmissionPlugin
from shoal.api.authn import request_user
from shoal.api.bodies import clone, decode_body, decode_json, json_response, media_type, wants_table
from shoal.api.decode import read_body
from shoal.api.deletion import Deleter
from shoal.api.options import binding_node, delete_options, list_options, scale_replicas
from shoal.api.patch import apply_patch
from shoal.api.storage import ObjectStorage
from shoal.api.watch import watch_response
from shoal.api.writes import WriteContext, Writer
from shoal.kube import errors, fieldselectors, selectors
from shoal.kube.objects import Obj
from shoal.resources.registry import Registry, ResourceKind


@dataclass(frozen=True, slots=True)
class Target:
    kind: ResourceKind
    namespace: str
    name: str
    subresource: str


def parse_target(registry: Registry, group: str, version: str, rest: list[str]) -> Target:
    def lookup(plural: str) -> ResourceKind:
        kind = registry.lookup(group, version, plural)
        if kind is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return kind

    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = registry.lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            if len(rest) > 5:
                lookup("")
            return Target(candidate, rest[1], rest[3] if len(rest) > 3 else "",
                          rest[4] if len(rest) > 4 else "")
    if not rest or len(rest) > 3:
        lookup("")
    kind = lookup(rest[0])
    if kind.namespaced and len(rest) > 1:
        lookup("")  # a namespaced kind addressed without a namespace
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in kind.subresources:
        lookup("")
    return Target(kind, "", rest[1] if len(rest) > 1 else "", sub)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _warning(text: str) -> str:
    """One RFC 7234 warning value, as Kubernetes sends them (code 299, agent "-").

    The text goes out as UTF-8, as kube-apiserver writes it (Starlette writes a header string
    as latin-1, hence the re-decoding); control characters, which no header may hold, as spaces."""
    quoted = _CONTROL.sub(" ", text).replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'.encode("utf-8", "backslashreplace").decode("latin-1")


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


class ResourceHandlers:
    def __init__(self, storage: ObjectStorage, registry: Registry,
                 admission: AdmissionPlugin | None = None) -> None:
        self.storage = storage
        self.registry = registry
        self.writer = Writer(storage, registry, admission)
        self.deleter = Deleter(self.writer)

    # -- context ---------------------------------------------------------------------------
    @staticmethod
    def context(request: Request) -> WriteContext:
        params = request.query_params
        manager = params.get("fieldManager") or ""
        if not manager:
            agent = request.headers.get("user-agent", "unknown")
            manager = agent.split("/", 1)[0] or "unknown"
        validation = params.get("fieldValidation") or "Warn"  # Kubernetes' default; kubectl sends Strict
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f"fieldValidation must be one of Strict, Warn, Ignore, not {validation!r}")
        dry_run = params.getlist("dryRun")
        if any(v != "All" for v in dry_run):
            raise errors.bad_request('dryRun: Unsupported value: only "All" is supported')
        return WriteContext(user=request_user(request.scope), field_manager=manager,
                            dry_run=bool(dry_run), field_validation=validation)

    @staticmethod
    def _respond(obj: Any, ctx: WriteContext, status: int = 200) -> Response:
        headers = {"Warning": ", ".join(_warning(w) for w in ctx.warnings)} if ctx.warnings else None
        return json_response(obj, status, headers)

    # -- dispatch --------------------------------------------------------------------------
    async def handle(self, request: Request, target: Target) -> Response:
        method = request.method
        sub = target.subresource
        if sub == "scale":
            return await self.scale(request, target)
        if sub == "binding":
            return await self.binding(request, target)
        if sub not in ("", "status", "finalize"):
            raise errors.ApiError(404, "NotFound", f"the server does not serve {target.kind.plural}/{sub} yet")
        if not target.name:
            if method == "GET":
                if _bool(request.query_params.get("watch")):
                    return await watch_response(self, request, target)
                return await self.list(request, target)
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return await self.delete_collection(request, target)
            raise errors.method_not_allowed(f"{method} is not supported on a collection")
        if method == "GET":
            obj = await self.storage.get(target.kind, target.namespace, target.name)
            return self.render_one(request, target.kind, obj)
        if method == "PUT":
            return await self.update(request, target)
        if method == "PATCH":
            return await self.patch(request, target)
        if method == "DELETE" and not sub:
            return await self.delete(request, target)
        raise errors.method_not_allowed(f"{method} is not supported here")

    # -- reads -----------------------------------------------------------------------------
    def object_filter(self, request: Request, kind: ResourceKind) -> tables.Filter | None:
        return selectors_filter(kind, request.query_params.get("labelSelector") or "",
                                request.query_params.get("fieldSelector") or "")

    async def list(self, request: Request, target: Target) -> Response:
        params = request.query_params
        options = list_options(params)
        page = await self.storage.list(target.kind, target.namespace,
                                       keep=self.object_filter(request, target.kind),
                                       limit=options.limit, continue_token=options.continue_token)
        metadata: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            metadata["continue"] = page.continue_token
        if wants_table(request.headers.get("accept")):
            return json_response(tables.table(target.kind, page.items, datetime.now(UTC),
                                              params.get("includeObject") or "Metadata", metadata))
        return json_response({"kind": f"{target.kind.kind}List", "apiVersion": target.kind.api_version,
                              "metadata": metadata, "items": page.items})

    def render_one(self, request: Request, kind: ResourceKind, obj: Obj) -> Response:
        if wants_table(request.headers.get("accept")):
            return json_response(tables.table(kind, [obj], datetime.now(UTC),
                                              request.query_params.get("includeObject") or "Metadata",
                                              {"resourceVersion": obj["metadata"]["resourceVersion"]}))
        return json_response(obj)

    # -- writes ----------------------------------------------------------------------------
    async def create(self, request: Request, target: Target) -> Response:
        ctx = self.context(request)
        body = decode_body(await read_body(request), request.headers.get("content-type"), ctx)
        obj = await self.writer.create(target.kind, target.namespace, body, ctx)
        return self._respond(obj, ctx, 201)

    async def update(self, request: Request, target: Target) -> Response:
        ctx = self.context(request)
        body = decode_body(await read_body(request), request.headers.get("content-type"), ctx)
        obj = await self.writer.update(target.kind, target.namespace, target.name, body, ctx,
                                       target.subresource)
        finished = None if ctx.dry_run else await self.deleter.finish_if_done(target.kind, obj)
        return self._respond(finished or obj, ctx)

    async def patch(self, request: Request, target: Target) -> Response:
        ctx = self.context(request)
        content_type = media_type(request.headers.get("content-type"))
        force = _bool(request.query_params.get("force"))
        if content_type == "application/apply-patch+yaml" and target.subresource:
            raise errors.bad_request("server-side apply is not supported on subresources yet")
        obj = await self.writer.patch(target.kind, target.namespace, target.name, await read_body(request),
                                      content_type, ctx, target.subresource, force)
        finished = None if ctx.dry_run else await self.deleter.finish_if_done(target.kind, obj)
        return self._respond(finished or obj, ctx, 200)

    async def delete(self, request: Request, target: Target) -> Response:
        ctx = self.context(request)
        options = await self._delete_options(request)
        obj, _ = await self.deleter.delete(target.kind, target.namespace, target.name, options, ctx)
        return self._respond(obj, ctx)

    @staticmethod
    async def _delete_options(request: Request) -> dict[str, Any]:
        raw = await read_body(request)
        return delete_options(decode_json(raw) if raw.strip() else None, request.query_params)

    async def delete_collection(self, request: Request, target: Target) -> Response:
        ctx = self.context(request)
        options = await self._delete_options(request)
        list_options(request.query_params)
        page = await self.storage.list(target.kind, target.namespace,
                                       keep=self.object_filter(request, target.kind))
        deleted = []
        for obj in page.items:
            meta = obj["metadata"]
            try:
                gone, _ = await self.deleter.delete(target.kind, meta.get("namespace", ""), meta["name"],
                                                    options, ctx)
            except errors.ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(gone)
        return json_response({"kind": f"{target.kind.kind}List", "apiVersion": target.kind.api_version,
                              "metadata": {"resourceVersion": page.resource_version}, "items": deleted})

    # -- subresources ----------------------------------------------------------------------
    def _scale_of(self, kind: ResourceKind, obj: Obj) -> Obj:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": int(spec.get("replicas", 0))},
                "status": {"replicas": int((obj.get("status") or {}).get("replicas", 0)),
                           "selector": selectors.selector_to_string(spec.get("selector") or {})}}

    async def scale(self, request: Request, target: Target) -> Response:
        kind = target.kind
        if request.method == "GET":
            obj = await self.storage.get(kind, target.namespace, target.name)
            return json_response(self._scale_of(kind, obj))
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(f"{request.method} is not supported on scale")
        ctx = self.context(request)
        raw = await read_body(request)
        content_type = media_type(request.headers.get("content-type"))
        wanted_rv = ""
        if request.method == "PUT":
            body = decode_body(raw, content_type, ctx)
            scale_replicas(body, target.name)  # the body's shape, before anything is read
            wanted_rv = str((body.get("metadata") or {}).get("resourceVersion") or "")

        async def compute(old: Obj) -> Obj:
            scale = self._scale_of(kind, old)
            new_scale = body if request.method == "PUT" else apply_patch(scale, raw, content_type)
            replicas = scale_replicas(new_scale, target.name)
            new = clone(old)
            new.setdefault("spec", {})["replicas"] = replicas
            return self.writer.merge_update(kind, old, new, ctx, "")

        obj = await self.writer.write_back(kind, target.namespace, target.name, compute, ctx, wanted_rv,
                                           subresource="scale")
        return self._respond(self._scale_of(kind, obj), ctx)

    async def binding(self, request: Request, target: Target) -> Response:
        if request.method != "POST":
            raise errors.method_not_allowed("bindings can only be created")
        ctx = self.context(request)
        body = decode_body(await read_body(request), request.headers.get("content-type"), ctx)
        node = binding_node(body, target.name)

        async def compute(old: Obj) -> Obj:
            current = (old.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict("pods", "", target.name,
                                      f"pod {target.name} is already assigned to node {current!r}")
            new = clone(old)
            new.setdefault("spec", {})["nodeName"] = node
            result = self.writer.merge_update(target.kind, old, new, ctx, "")
            conditions = result.setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": ctx.timestamp})
            return result

        # Like Kubernetes' BindingREST: only nodeName and the condition change, no pod validation.
        await self.writer.write_back(target.kind, target.namespace, target.name, compute, ctx, checked=False,
                                     subresource="binding")
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "code": 201}, 201)


def selectors_filter(kind: ResourceKind, label_selector: str, field_selector: str) -> tables.Filter | None:
    """A predicate for list/watch, or None when neither selector is given."""
    labels = selectors.parse_label_selector(label_selector) if label_selector else None
    fields = fieldselectors.parse_field_selector(field_selector) if field_selector else None
    if fields is not None:
        fields.check_supported({"metadata.name", "metadata.namespace", *kind.fields({})})
    if labels is None and fields is None:
        return None

    def keep(obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if labels is not None and not labels.matches(meta.get("labels") or {}):
            return False
        if fields is not None:
            values = {"metadata.name": meta.get("name", ""),
                      "metadata.namespace": meta.get("namespace", ""), **kind.fields(obj)}
            return bool(fields.matches(values))
        return True

    return keep
