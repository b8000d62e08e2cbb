"""An async Kubernetes REST client over ``httpx.AsyncClient``.

:class:`ApiClient` speaks the standard Kubernetes REST conventions to a Shoal (or any
Kubernetes) API server: JSON bodies, a bearer token and/or a client certificate, TLS verified
against the cluster CA.  A resource type is addressed with a
:class:`~shoal.client.resources.ResourceRef`; objects are plain JSON dicts.

Contract:

* Every method either returns the decoded JSON answer or raises a typed
  :class:`~shoal.client.errors.ApiClientError` built from the server's ``Status``
  (``NotFoundError``, ``ConflictError`` ...), chained from the httpx exception.  Network
  failures raise :class:`~shoal.client.errors.TransportError`.
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
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx
import orjson

from shoal.client import kubeconfig
from shoal.client.errors import TransportError, error_from_status
from shoal.client.objects import meta as _meta
from shoal.client.resources import ResourceRef

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "ApiClient",
    "WatchEvent",
]

Obj = dict[str, Any]
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
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify: ssl.SSLContext | bool = True
        if self.server_url.startswith("https://"):
            verify = kubeconfig.ssl_context(ca_pem=ca_pem, ca_file=ca_file, cert_file=cert_file,
                                            key_file=key_file, insecure=insecure)
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.server_url, headers=headers, verify=verify,
                                       timeout=httpx.Timeout(timeout))

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> ApiClient:
        """A client for ``context`` (default: ``current-context``) of the kubeconfig at ``path``."""
        creds = kubeconfig.load(path, context)
        with creds.materialized() as files:
            return cls(creds.server, creds.token, ca_pem=creds.ca_pem, ca_file=creds.ca_file,
                       cert_file=files.cert_file, key_file=files.key_file, insecure=creds.insecure)

    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        await self._http.aclose()

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
        headers = {}
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = content_type
        try:
            response = await self._http.request(method, path, params=params, content=content,
                                                headers=headers)
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {self.server_url}{path}: {exc!r}") from exc
        _raise_for_status(response)
        return _decode(response.content)

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
        timeout = httpx.Timeout(self._timeout, read=read_timeout)
        path = ref.collection_path(namespace)
        try:
            async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.is_error:
                    await response.aread()
                    _raise_for_status(response)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield _watch_event(line)
        except httpx.TransportError as exc:
            raise TransportError(f"watch {self.server_url}{path}: {exc!r}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        try:
            status = _decode(response.content)
        except orjson.JSONDecodeError:
            status = response.text
        raise error_from_status(response.status_code, status) from exc


def _watch_event(line: str) -> WatchEvent:
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
