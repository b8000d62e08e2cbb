"""OpenAPI v3 documents, as kubectl fetches them from ``/openapi/v3``.

``GET /openapi/v3`` returns :meth:`OpenAPIV3.index`: one entry per served group-version,
``{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=<H>"}}}``,
where ``H`` is the SHA-512 of that document (kubectl caches documents by this URL).
``GET /openapi/v3/apis/apps/v1`` returns :meth:`OpenAPIV3.document`.

Each group-version document has Kubernetes' shape and what kubectl relies on:

* a path per resource URL (collection, item, all-namespaces list, and the ``status``,
  ``scale``, ``log`` and ``binding`` subresources when served), whose operations carry
  ``x-kubernetes-group-version-kind`` and ``x-kubernetes-action``;
* PATCH operations with an inline ``fieldValidation`` query parameter (kubectl's
  query-param verifier then leaves validation to the server: ``fieldValidation=Strict``)
  and a request body listing the four patch media types (kubectl then computes apply's
  strategic merge patch from the schemas' ``x-kubernetes-patch-*`` extensions);
* response bodies that ``$ref`` the kind's schema, and ``components.schemas`` holding every
  schema reachable from the group-version's paths (so ``kubectl explain`` can walk them).

Invariants: documents depend only on the :class:`ResourceInfo` list given to
:func:`build_openapi_v3` and the committed schemas; each is built and encoded once (keys
sorted, so the bytes and the hash are stable across restarts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from shoal.resources import schema as schemas
from shoal.resources.registry import ALL_VERBS, ResourceKind

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")
INFO = {"title": "Kubernetes", "version": "v1.32.0"}

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """What the documents need to know about one served resource."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS

    @classmethod
    def from_kind(cls, kind: ResourceKind) -> ResourceInfo:
        return cls(kind.group, kind.version, kind.kind, kind.plural, kind.namespaced,
                   tuple(kind.subresources), tuple(kind.verbs))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gv_path(self) -> str:
        return gv_path(self.group, self.version)


def gv_path(group: str, version: str) -> str:
    """The index key of a group-version: ``api/v1`` or ``apis/<group>/<version>``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def resource_infos(kinds: Iterable[ResourceKind]) -> list[ResourceInfo]:
    return [ResourceInfo.from_kind(k) for k in kinds]


def build_openapi_v3(resources: list[ResourceInfo]) -> OpenAPIV3:
    return OpenAPIV3(resources)


class OpenAPIV3:
    """The index and the per-group-version documents for one set of resources."""

    def __init__(self, resources: Iterable[ResourceInfo]) -> None:
        self._by_gv: dict[str, list[ResourceInfo]] = {}
        for res in resources:
            self._by_gv.setdefault(res.gv_path, []).append(res)
        self._encoded: dict[str, bytes] = {}
        self._hashes: dict[str, str] = {}

    def gv_paths(self) -> list[str]:
        return list(self._by_gv)

    def index(self) -> Doc:
        return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={self.hash(gv)}"}
                          for gv in self._by_gv}}

    def document(self, gv: str) -> bytes | None:
        """The encoded document for ``gv`` (e.g. ``apis/apps/v1``), or None if not served."""
        gv = gv.strip("/")
        cached = self._encoded.get(gv)
        if cached is None:
            resources = self._by_gv.get(gv)
            if resources is None:
                return None
            cached = orjson.dumps(_document(resources), option=orjson.OPT_SORT_KEYS)
            self._encoded[gv] = cached
            self._hashes[gv] = hashlib.sha512(cached).hexdigest().upper()
        return cached

    def hash(self, gv: str) -> str | None:
        gv = gv.strip("/")
        if self.document(gv) is None:
            return None
        return self._hashes[gv]


# -- document construction ------------------------------------------------------------------


def _document(resources: list[ResourceInfo]) -> Doc:
    paths: dict[str, Doc] = {}
    for res in resources:
        paths.update(_resource_paths(res))
    components = schemas.closure(schemas.references(paths))
    return {
        "openapi": "3.0.0",
        "info": dict(INFO),
        "paths": paths,
        "components": {"schemas": {name: schemas.get(name) for name in components}},
    }


def _ref(name: str) -> Doc:
    return {"$ref": schemas.REF_PREFIX + name}


def _schema_of(api_version: str, kind: str) -> Doc:
    name = schemas.name_for_kind(api_version, kind)
    return _ref(name) if name is not None else {"type": "object"}


def _query(name: str, description: str, kind: str = "string") -> Doc:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind}}


def _path_param(name: str, description: str) -> Doc:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. "
                 "Valid values are: - All: all dry run stages will be processed")
FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or "
                       "entity that is making these changes.")
FIELD_VALIDATION = _query(
    "fieldValidation", "fieldValidation instructs the server on how to handle objects in the "
    "request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: "
    "- Ignore, - Warn, - Strict (the default).")
FORCE = _query("force", "Force is going to \"force\" Apply requests. It means user will "
               "re-acquire conflicting fields owned by other people.", "boolean")
PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
LIST_PARAMS = [
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type "
           "\"BOOKMARK\".", "boolean"),
    _query("continue", "The continue option should be set when retrieving more results from "
           "the server."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query("resourceVersion", "resourceVersion sets a constraint on what resource versions a "
           "request may be served from."),
    _query("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is "
           "applied to list calls."),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources and return them as a stream "
           "of add, update, and remove notifications.", "boolean"),
]
DELETE_PARAMS = [
    DRY_RUN,
    _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.",
           "integer"),
    _query("propagationPolicy", "Whether and how garbage collection will be performed: "
           "'Orphan', 'Background' or 'Foreground'."),
]
LOG_PARAMS = [
    _query("container", "The container for which to stream logs."),
    _query("follow", "Follow the log stream of the pod.", "boolean"),
    _query("limitBytes", "The number of bytes to read from the server before terminating the "
           "log output.", "integer"),
    _query("previous", "Return previous terminated container logs.", "boolean"),
    _query("sinceSeconds", "A relative time in seconds before the current time from which to "
           "show logs.", "integer"),
    _query("sinceTime", "An RFC3339 timestamp from which to show logs."),
    _query("tailLines", "The number of lines from the end of the logs to show.", "integer"),
    _query("timestamps", "If true, add an RFC3339 timestamp at the beginning of every line.",
           "boolean"),
]


@dataclass(frozen=True, slots=True)
class _Target:
    """What an operation acts on: the GVK it is tagged with and its body schema."""

    gvk: Doc
    body: Doc
    noun: str
    op_suffix: str


def _operation(res: ResourceInfo, target: _Target, action: str, verb: str, description: str,
               params: list[Doc], response: Doc, request: Doc | None = None) -> Doc:
    op: Doc = {
        "description": description,
        "operationId": verb + _op_group(res) + target.op_suffix,
        "parameters": params,
        "responses": {"200": {"description": "OK",
                              "content": {"application/json": {"schema": response}}},
                      "401": {"description": "Unauthorized"}},
        "tags": [_op_tag(res)],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": target.gvk,
    }
    if request is not None:
        op["requestBody"] = request
    return op


def _op_group(res: ResourceInfo) -> str:
    group = res.group.split(".")[0] if res.group else "core"
    return group[:1].upper() + group[1:] + res.version[:1].upper() + res.version[1:]


def _op_tag(res: ResourceInfo) -> str:
    return f"{(res.group.split('.')[0] if res.group else 'core')}_{res.version}"


def _json_body(schema: Doc) -> Doc:
    return {"content": {"application/json": {"schema": schema}}, "required": True}


def _patch_body() -> Doc:
    return {"content": {t: {"schema": _ref(META + "Patch")} for t in PATCH_TYPES}, "required": True}


def _item_ops(res: ResourceInfo, target: _Target, verbs: Iterable[str]) -> Doc:
    """get / put / patch / delete on one object (or one object's subresource)."""
    noun, body = target.noun, target.body
    ops: Doc = {}
    if "get" in verbs:
        ops["get"] = _operation(res, target, "get", "read", f"read the specified {noun}", [], body)
    if "update" in verbs:
        ops["put"] = _operation(res, target, "put", "replace", f"replace the specified {noun}",
                                [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body, _json_body(body))
    if "patch" in verbs:
        ops["patch"] = _operation(res, target, "patch", "patch",
                                  f"partially update the specified {noun}",
                                  [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE], body,
                                  _patch_body())
    if "delete" in verbs:
        ops["delete"] = _operation(res, target, "delete", "delete", f"delete a {noun}",
                                   DELETE_PARAMS, _ref(META + "Status"),
                                   _json_body(_ref(META + "DeleteOptions")))
    return ops


def _resource_paths(res: ResourceInfo) -> dict[str, Doc]:
    prefix = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    scope = "Namespaced" if res.namespaced else ""
    gvk = {"group": res.group, "version": res.version, "kind": res.kind}
    main = _Target(gvk, _schema_of(res.api_version, res.kind), res.kind, scope + res.kind)
    listing = _schema_of(res.api_version, res.kind + "List")
    ns_param = [_path_param("namespace", "object name and auth scope, such as for teams and projects")]
    name_param = [_path_param("name", f"name of the {res.kind}")]
    base_params = [*ns_param] if res.namespaced else []
    collection = (f"{prefix}/namespaces/{{namespace}}/{res.plural}" if res.namespaced
                  else f"{prefix}/{res.plural}")
    item = collection + "/{name}"
    verbs = set(res.verbs)

    coll_ops: Doc = {"parameters": [*base_params, PRETTY]}
    if "list" in verbs:
        coll_ops["get"] = _operation(res, main, "list", "list", f"list or watch objects of kind {res.kind}",
                                     LIST_PARAMS, listing)
    if "create" in verbs:
        coll_ops["post"] = _operation(res, main, "post", "create", f"create a {res.kind}",
                                      [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], main.body,
                                      _json_body(main.body))
    if "deletecollection" in verbs:
        coll_ops["delete"] = _operation(res, main, "deletecollection", "deleteCollection",
                                        f"delete collection of {res.kind}",
                                        [*DELETE_PARAMS, *LIST_PARAMS[1:5]], _ref(META + "Status"),
                                        _json_body(_ref(META + "DeleteOptions")))
    paths: dict[str, Doc] = {collection: coll_ops}
    if res.namespaced and "list" in verbs:
        all_ns = _Target(gvk, main.body, res.kind, res.kind + "ForAllNamespaces")
        paths[f"{prefix}/{res.plural}"] = {
            "parameters": [PRETTY],
            "get": _operation(res, all_ns, "list", "list", f"list or watch objects of kind {res.kind}",
                              LIST_PARAMS, listing)}
    paths[item] = {"parameters": [*name_param, *base_params, PRETTY], **_item_ops(res, main, verbs)}

    sub_params = [*name_param, *base_params, PRETTY]
    if "status" in res.subresources:
        status = _Target(gvk, main.body, f"{res.kind} status", main.op_suffix + "Status")
        paths[item + "/status"] = {"parameters": sub_params,
                                   **_item_ops(res, status, ("get", "update", "patch"))}
    if "scale" in res.subresources:
        scale = _Target({"group": "autoscaling", "version": "v1", "kind": "Scale"},
                        _schema_of("autoscaling/v1", "Scale"), f"scale of {res.kind}",
                        main.op_suffix + "Scale")
        paths[item + "/scale"] = {"parameters": sub_params,
                                  **_item_ops(res, scale, ("get", "update", "patch"))}
    if "log" in res.subresources:
        log = _Target(gvk, {"type": "string"}, f"log of {res.kind}", main.op_suffix + "Log")
        op = _operation(res, log, "get", "read", f"read log of the specified {res.kind}",
                        LOG_PARAMS, {"type": "string"})
        op["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
        paths[item + "/log"] = {"parameters": sub_params, "get": op}
    if "binding" in res.subresources:
        binding = _Target({"group": "", "version": "v1", "kind": "Binding"},
                          _schema_of("v1", "Binding"), f"binding of a {res.kind}",
                          main.op_suffix + "Binding")
        paths[item + "/binding"] = {"parameters": sub_params, "post": _operation(
            res, binding, "post", "create", f"create binding of a {res.kind}",
            [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], binding.body, _json_body(binding.body))}
    return paths
