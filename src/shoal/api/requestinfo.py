"""What a request asks for, read from its path, method and query: Kubernetes' ``RequestInfo``.

:func:`request_info` is Kubernetes' ``RequestInfoFactory.NewRequestInfo`` for the paths
Shoal serves, and feeds authorization (:mod:`shoal.api.authz`) and audit
(:mod:`shoal.api.audit`).

Rules
-----
* A *resource request* is ``/api/{version}/...`` or ``/apis/{group}/{version}/...`` with at
  least a resource after the version; everything else (``/api``, ``/apis/apps/v1``, discovery,
  OpenAPI, ``/metrics``, health) is a *non-resource request* whose verb is the lower-case
  HTTP method (``get``, ``post``, ...).
* ``/namespaces/{ns}/{resource}/...`` sets the namespace; ``/namespaces/{ns}`` itself (and its
  ``status`` and ``finalize``) is the resource ``namespaces`` named ``{ns}`` in namespace
  ``{ns}``.  Then the parts are ``resource[/name[/subresource]]``.
* Verbs: POST create, GET/HEAD get, PUT update, PATCH patch, DELETE delete, anything else the
  empty verb.  A GET without a name is ``list``, or ``watch`` with ``watch=true``; a DELETE
  without a name is ``deletecollection``.  A list or watch with the field selector
  ``metadata.name=<n>`` is about the object ``<n>`` (so a policy on names covers it).
* WebSocket upgrades are GET requests.
* Empty path segments are dropped.  :func:`split_path` is the one reading of a resource path,
  for these attributes and for :meth:`shoal.api.app.ApiServer.resource`'s routing alike, so
  authorization decides on what is really done, never on a different reading of the same path.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl

from starlette.types import Scope

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}
#: Subresources of a namespace that keep ``namespaces`` as the resource (Kubernetes' list).
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


class RequestInfo(NamedTuple):
    """The parsed request.  Non-resource requests have only ``path`` and ``verb``.

    A named tuple, not a frozen dataclass: it is built for every request, and a tuple is
    built several times faster."""

    path: str
    verb: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def header(scope: Scope, name: bytes) -> str | None:
    """The first header ``name`` (lower case) of an ASGI scope, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def split_path(path: str) -> tuple[str, str, list[str]] | None:
    """``(group, version, rest)`` of an ``/api/...`` or ``/apis/...`` path, empty segments dropped
    (``group`` "" for the core ``/api``; ``version`` "" when the path stops before it); None for
    any other path.  The one reading of a resource path: the handlers route with it too."""
    if path.startswith("/api/"):
        parts = path[5:].split("/")
        if "" in parts:
            parts = [p for p in parts if p]
        return "", parts[0] if parts else "", parts[1:]
    if path.startswith("/apis/"):
        parts = path[6:].split("/")
        if "" in parts:
            parts = [p for p in parts if p]
        return parts[0] if parts else "", parts[1] if len(parts) > 1 else "", parts[2:]
    return None


def request_info(scope: Scope) -> RequestInfo:
    """The :class:`RequestInfo` of an ASGI ``http`` or ``websocket`` scope."""
    path: str = scope["path"]
    method: str = scope.get("method", "GET")
    split = split_path(path)
    if split is None or not split[1]:
        return RequestInfo(path, method.lower())
    group, version, parts = split
    if not parts:
        return RequestInfo(path, method.lower())  # a group-version discovery document
    verb = _VERBS.get(method, "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    count = len(parts)
    name = parts[1] if count > 1 else ""
    if not name:
        if verb == "get":
            verb, name = _list_or_watch(scope.get("query_string", b""))
        elif verb == "delete":
            verb = "deletecollection"
    return RequestInfo(path, verb, True, group, version, namespace, parts[0], parts[2] if count > 2 else "", name)


def _list_or_watch(query_string: bytes) -> tuple[str, str]:
    """``(verb, name)`` of a GET on a collection: list or watch, and the name it selects."""
    if b"%" not in query_string and b"watch" not in query_string and b"fieldSelector" not in query_string:
        return "list", ""  # the common case (``limit=500``), without parsing the query
    watch = False
    name = ""
    # Later values win, as in starlette's QueryParams.get, which the handlers read.
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == "watch":
            watch = value.lower() in ("true", "1")
        elif key == "fieldSelector":
            name = _selected_name(value)
    return ("watch" if watch else "list"), name


def _selected_name(selector: str) -> str:
    """The name a field selector requires exactly (``metadata.name=x`` or ``==x``), or ""."""
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!"):
            continue
        value = value.removeprefix("=")
        valid_name = value not in ("", ".", "..") and "/" not in value and "%" not in value
        if key.strip() == "metadata.name" and valid_name:
            return value
    return ""
