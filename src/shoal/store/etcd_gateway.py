"""HTTP transport to etcd v3.4's gRPC-JSON gateway, with fail-over across endpoints.

The gateway (``POST /v3/kv/range``, ``/v3/kv/txn``, ``/v3/watch``, ...) takes and returns
protobuf-JSON: keys and values are base64, int64 fields are decimal strings, and fields with
their zero value (``false``, ``0``, empty) are left out.  An RPC failure is a non-200
response ``{"error": ..., "code": <gRPC code>, "message": ...}``.

Fail-over rules
---------------
* A connection that cannot be opened (refused, connect timeout) means the request was never
  sent: the next endpoint is tried, each endpoint once, before
  :class:`StoreUnavailableError` is raised.
* A failure after the request was sent (connection reset, read timeout, gRPC UNAVAILABLE)
  leaves a write's outcome unknown: reads (``idempotent=True``) go on to the next endpoint,
  writes raise :class:`StoreUnavailableError` at once (the next call starts on the next
  endpoint).  Nothing is retried twice on the same endpoint within one call.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import httpx
import orjson

from shoal.store.interface import StoreError, StoreUnavailableError

Json = dict[str, Any]

#: gRPC status codes that mean "this member cannot serve now" (UNAVAILABLE, DEADLINE_EXCEEDED).
_UNAVAILABLE_CODES: Final = frozenset({14, 4})
#: The key range that covers every key (etcd's "\0" .. "\0").
ALL_KEYS: Final = "AA=="


class EtcdRequestError(StoreError):
    """etcd refused a request; ``code`` is the gRPC status code, ``message`` etcd's text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"etcd error (code {code}): {message}")
        self.code = code
        self.message = message

    @property
    def compacted(self) -> bool:
        return "required revision has been compacted" in self.message

    @property
    def future_revision(self) -> bool:
        return "required revision is a future revision" in self.message


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def unb64(data: str) -> bytes:
    return base64.b64decode(data)


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """``(key, range_end)``, base64, selecting every key that starts with ``prefix``."""
    raw = prefix.encode()
    if not raw:
        return ALL_KEYS, ALL_KEYS
    end = bytearray(raw)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return b64(raw), ALL_KEYS  # all 0xff: every key >= prefix
    end[-1] += 1
    return b64(raw), b64(bytes(end))


def normalize_endpoint(endpoint: str) -> str:
    """``HOST:PORT`` or ``http(s)://HOST:PORT`` to a base URL without a trailing slash."""
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint:
        raise ValueError("empty etcd endpoint")
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"unsupported etcd endpoint {endpoint!r} (want HOST:PORT or http://HOST:PORT)")
    return endpoint


def _error_of(response: httpx.Response, body: bytes) -> StoreError:
    try:
        payload = orjson.loads(body)
        code, message = int(payload.get("code", -1)), str(payload.get("message") or payload.get("error"))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        code, message = -1, f"HTTP {response.status_code}: {body[:200]!r}"
    if code in _UNAVAILABLE_CODES or response.status_code == 503:
        url = response.request.url
        return StoreUnavailableError(f"etcd at {url.host}:{url.port}: {message}")
    return EtcdRequestError(code, message)


class Gateway:
    """One httpx client and the endpoint list; ``active`` is the endpoint tried first."""

    def __init__(self, endpoints: list[str], *, timeout: float = 10.0) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [normalize_endpoint(e) for e in endpoints]
        self.active = 0
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        # One HTTP/1.1 connection per open watch stream: no cap on connections.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 2.0)),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise StoreUnavailableError("etcd store is not started")
        return self._client

    def fail_over(self) -> None:
        self.active = (self.active + 1) % len(self.endpoints)

    def _request(self, path: str, body: Json, *, stream: bool = False) -> httpx.Request:
        # A watch stream may stay silent for as long as nothing changes: no read timeout.
        timeout = httpx.Timeout(self._timeout, connect=min(self._timeout, 2.0), read=None)
        return self.client.build_request(
            "POST", self.endpoints[self.active] + path, content=orjson.dumps(body),
            headers={"content-type": "application/json"},
            timeout=timeout if stream else httpx.USE_CLIENT_DEFAULT,
        )

    async def call(self, path: str, body: Json, *, idempotent: bool) -> Json:
        """POST ``body`` to ``path``; returns the decoded reply or raises a :class:`StoreError`."""
        last: Exception | None = None
        for _ in self.endpoints:
            try:
                response = await self.client.send(self._request(path, body))
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                last = err
                self.fail_over()
                continue
            except httpx.TransportError as err:
                self.fail_over()
                if not idempotent:
                    raise StoreUnavailableError(f"etcd {path}: {err!r}; outcome unknown") from err
                last = err
                continue
            if response.status_code == 200:
                reply: Json = orjson.loads(response.content)
                return reply
            error = _error_of(response, response.content)
            if isinstance(error, StoreUnavailableError):
                self.fail_over()
                if not idempotent:
                    raise error
                last = error
                continue
            raise error
        raise StoreUnavailableError(
            f"no etcd endpoint of {self.endpoints} answered {path}: {last!r}"
        ) from last

    async def open_stream(self, path: str, body: Json) -> httpx.Response:
        """Open a streaming POST (a watch) on the first endpoint that accepts it."""
        last: Exception | None = None
        for _ in self.endpoints:
            try:
                response = await self.client.send(self._request(path, body, stream=True), stream=True)
            except httpx.TransportError as err:
                last = err
                self.fail_over()
                continue
            if response.status_code == 200:
                return response
            try:
                error = _error_of(response, await response.aread())
            finally:
                await response.aclose()
            if isinstance(error, StoreUnavailableError):
                last = error
                self.fail_over()
                continue
            raise error
        raise StoreUnavailableError(
            f"no etcd endpoint of {self.endpoints} accepted {path}: {last!r}"
        ) from last
