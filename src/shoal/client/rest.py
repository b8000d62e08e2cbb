"""An async Kubernetes REST client over pooled HTTP/1.1 connections (:mod:`shoal.client.http11`).

:class:`ApiClient` speaks the standard Kubernetes REST conventions to a Shoal (or any
Kubernetes) API server: JSON bodies, a bearer token and/or a client certificate, TLS verified
against the cluster CA.  A resource type is addressed with a
:class:`~shoal.client.resources.ResourceRef`; objects are plain JSON dicts.

Contract:

* Every method either returns the decoded JSON answer or raises a typed
  :class:`~shoal.client.errors.ApiClientError` built from the server's ``Status``
  (``NotFoundError``, ``ConflictError`` ...) for any answer outside 2xx.  Network failures
  raise :class:`~shoal.client.errors.TransportError`, chained from the transport's error.
* Requests go over :mod:`shoal.client.http11` (pooled keep-alive HTTP/1.1 connections); the
  request line and the fixed headers (Host, Accept, User-Agent, Authorization) are formatted
  once per client.  Several requests in flight use several connections.
* :meth:`ApiClient.list` follows ``continue`` tokens when ``limit`` is given and returns one
  list whose ``metadata.resourceVersion`` is the first page's (the snapshot the pages share).
* :meth:`ApiClient.watch` is an async generator of :class:`WatchEvent`; an ``ERROR`` event is
  raised as its typed error (410 → :class:`~shoal.client.errors.GoneError`: relist).  Close it
  with ``contextlib.aclosing`` when stopping early.
* The client never retries: retry policy belongs to the caller (informer, workqueue).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import orjson

from shoal.client import http11, kubeconfig
from shoal.client.errors import TransportError, error_from_status
from shoal.client.resources import ResourceRef
from shoal.kube.objects import Obj
from shoal.kube.objects import meta as _meta

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "ApiClient",
    "WatchEvent",
]

_Params = dict[str, str]
_Patch = Obj | list[Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

PropagationPolicy = Literal["Background", "Foreground", "Orphan"]
WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event.  For ``BOOKMARK`` only ``object.metadata.resourceVersion`` is meaningful."""

    type: WatchEventType
    object: Obj


class ApiClient:
    """One connection pool to one API server.  Use as ``async with`` or call :meth:`close`."""

    def __init__(
        self,
        server_url: str,
        token: str | None = None,
        *,
        ca_pem: str | bytes | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        timeout: float = 30.0,
        user_agent: str = "shoal-client",
    ) -> None:
        self.server_url = server_url.rstrip("/")
        context: ssl.SSLContext | None = None
        if self.server_url.startswith("https://"):
            context = kubeconfig.ssl_context(ca_pem=ca_pem, ca_file=ca_file, cert_file=cert_file,
                                             key_file=key_file, insecure=insecure)
        self._timeout = timeout
        self._pool = http11.Pool(self.server_url, context, timeout=timeout)
        self._prefix = urlsplit(self.server_url).path
        self._fixed_headers = (f"Host: {self._pool.netloc}\r\nAccept: application/json\r\n"
                               f"User-Agent: {user_agent}\r\n")
        if token:
            self._fixed_headers += f"Authorization: Bearer {token}\r\n"

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> ApiClient:
        """A client for ``context`` (default: ``current-context``) of the kubeconfig at ``path``."""
        creds = kubeconfig.load(path, context)
        with creds.materialized() as files:
            return cls(creds.server, creds.token, ca_pem=creds.ca_pem, ca_file=creds.ca_file,
                       cert_file=files.cert_file, key_file=files.key_file, insecure=creds.insecure)

    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        await self._pool.close()

    async def aclose(self) -> None:
        """Alias of :meth:`close`, for ``contextlib.aclosing``."""
        await self.close()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- the generic request -------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: _Params | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        """Send one request and return the decoded JSON answer (``None`` for an empty body)."""
        content = None if body is None else orjson.dumps(body)
        head = self._head(method, path, params, content_type, content)
        try:
            response = await self._pool.request(head, content)
        except http11.HttpTransportError as exc:
            raise TransportError(f"{method} {self.server_url}{path}: {exc}") from exc
        _raise_for_status(response.status, response.body)
        return _decode(response.body)

    def _head(self, method: str, path: str, params: _Params | None, content_type: str,
              content: bytes | None) -> bytes:
        """The request line and headers, through the blank line."""
        target = self._prefix + quote(path, safe=_PATH_SAFE)
        if params:
            target += "?" + urlencode(params, quote_via=quote)
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed_headers}"
        if content is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(content)}\r\n"
        return (head + "\r\n").encode()

    # -- verbs ---------------------------------------------------------------------------

    async def get(self, ref: ResourceRef, name: str, namespace: str | None = None, *,
                  subresource: str | None = None) -> Obj:
        return _obj(await self.request("GET", ref.object_path(name, namespace, subresource)))

    async def list(self, ref: ResourceRef, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   resource_version: str | None = None, limit: int | None = None) -> Obj:
        """List objects (all namespaces when ``namespace`` is ``None``), following every page."""
        params: _Params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if limit:
            params["limit"] = str(limit)
        path = ref.collection_path(namespace)
        result = _obj(await self.request("GET", path, params=params))
        items = result.setdefault("items", None) or []
        result["items"] = items
        token = _continue_token(result)
        while token:
            page = _obj(await self.request("GET", path, params={**params, "continue": token}))
            items.extend(page.get("items") or [])
            token = _continue_token(page)
        result.setdefault("metadata", {}).pop("continue", None)
        return result

    async def create(self, ref: ResourceRef, obj: Obj, namespace: str | None = None) -> Obj:
        namespace = namespace or _meta(obj).get("namespace")
        return _obj(await self.request("POST", ref.collection_path(namespace), body=obj))

    async def update(self, ref: ResourceRef, obj: Obj, *, subresource: str | None = None) -> Obj:
        """PUT ``obj`` (name and namespace from its metadata).  A stale resourceVersion → ConflictError."""
        meta = _meta(obj)
        path = ref.object_path(meta.get("name", ""), meta.get("namespace"), subresource)
        return _obj(await self.request("PUT", path, body=obj))

    async def update_status(self, ref: ResourceRef, obj: Obj) -> Obj:
        return await self.update(ref, obj, subresource="status")

    async def patch(self, ref: ResourceRef, name: str, patch: _Patch, namespace: str | None = None,
                    *, content_type: str = MERGE_PATCH, subresource: str | None = None,
                    field_manager: str | None = None) -> Obj:
        params = {"fieldManager": field_manager} if field_manager else None
        return _obj(await self.request("PATCH", ref.object_path(name, namespace, subresource),
                                       params=params, body=patch, content_type=content_type))

    async def delete(self, ref: ResourceRef, name: str, namespace: str | None = None, *,
                     propagation_policy: PropagationPolicy | None = None, uid: str | None = None,
                     resource_version: str | None = None,
                     grace_period_seconds: int | None = None) -> Obj:
        """DELETE with ``DeleteOptions``.  ``uid``/``resource_version`` become preconditions
        (a mismatch is a ConflictError).  Returns the object (if finalizers keep it) or a Status."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        preconditions = {}
        if uid:
            preconditions["uid"] = uid
        if resource_version:
            preconditions["resourceVersion"] = resource_version
        if preconditions:
            options["preconditions"] = preconditions
        answer = await self.request("DELETE", ref.object_path(name, namespace), body=options)
        return answer if isinstance(answer, dict) else {}

    async def watch(self, ref: ResourceRef, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncGenerator[WatchEvent, None]:
        """Stream events after ``resource_version`` until the server ends the stream.

        Raises the typed error of an ``ERROR`` event (``GoneError`` when the version expired).
        Without ``timeout_seconds`` the read timeout is disabled (the stream may idle)."""
        params: _Params = {"watch": "true"}
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        read_timeout: float | None = None
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(timeout_seconds)
            read_timeout = timeout_seconds + self._timeout
        path = ref.collection_path(namespace)
        head = self._head("GET", path, params, "", None)
        try:
            async with self._pool.stream(head, read_timeout) as response:
                if not 200 <= response.status < 300:
                    _raise_for_status(response.status, await response.read())
                pending = b""
                async with aclosing(response.chunks()) as chunks:
                    async for chunk in chunks:
                        *lines, pending = (pending + chunk).split(b"\n")
                        for line in lines:
                            if line.strip():
                                yield _watch_event(line)
                if pending.strip():
                    yield _watch_event(pending)
        except http11.HttpTransportError as exc:
            raise TransportError(f"watch {self.server_url}{path}: {exc}") from exc


# Characters left as they are in a request path (RFC 3986 pchar and "/"; "%" keeps escapes).
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def _raise_for_status(status: int, content: bytes) -> None:
    if 200 <= status < 300:
        return
    try:
        answer = _decode(content)
    except orjson.JSONDecodeError:
        answer = content.decode("utf-8", "replace")
    raise error_from_status(status, answer)


def _watch_event(line: bytes) -> WatchEvent:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise TransportError(f"watch: undecodable event {line[:200]!r}") from exc
    kind = event.get("type") if isinstance(event, dict) else None
    obj = event.get("object") if isinstance(event, dict) else None
    if not isinstance(obj, dict):
        raise TransportError(f"watch: event without an object: {line[:200]!r}")
    if kind == "ERROR":
        # No transport exception carries this one: the Status arrived inside a 200 stream.
        raise error_from_status(None, obj)
    if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
        raise TransportError(f"watch: unknown event type {kind!r}")
    return WatchEvent(kind, obj)


def _decode(content: bytes) -> Any:
    return orjson.loads(content) if content.strip() else None


def _obj(answer: Any) -> Obj:
    if not isinstance(answer, dict):
        raise TransportError(f"expected a JSON object from the server, got {type(answer).__name__}")
    return answer


def _continue_token(page: Obj) -> str:
    token = _meta(page).get("continue")
    return token if isinstance(token, str) else ""
