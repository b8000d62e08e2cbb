"""A lean HTTP/1.1 client connection pool on asyncio, the transport of :class:`~shoal.client.rest.ApiClient`.

Why not httpx: profiling the scheduler benchmark showed ~1.5–2 ms of client CPU per API request
in httpx/httpcore/anyio, a third of it in httpcore's pool checking every pooled connection's
socket for each request.  Here one request is one pre-formatted write and one
``httptools`` (C, llhttp) parse: a few tens of microseconds of Python.

Contract:

* :class:`Pool` talks to one origin (``http://`` or ``https://`` with an ``ssl.SSLContext``).
  :meth:`Pool.request` sends one request and returns the whole :class:`Response`;
  :meth:`Pool.stream` is an async context manager giving a :class:`Streaming` response whose
  :meth:`Streaming.chunks` yields the body as it arrives (watches).
* One request at a time per connection.  A connection whose response was read to the end and
  that the server keeps alive goes back to the pool (at most ``max_idle``, reused
  last-in-first-out); any other is closed.  An idle connection is never reused after
  ``keepalive_expiry`` seconds (below uvicorn's 5 s keep-alive, so the server does not close
  it under our feet) nor after the server closed it (``connection_lost`` marks it).  There is
  no limit on connections in use: callers bound their own concurrency.
* ``timeout`` bounds a whole :meth:`Pool.request` (connect, write, read) and the opening of a
  stream (up to its headers); a stream's chunks wait at most ``read_timeout`` each (None: no limit).
* Every failure without a complete HTTP answer (connect, TLS, reset, timeout, malformed
  response) raises :class:`HttpTransportError`, chained from its cause.  Nothing is retried.
* A stream reads at most ``HIGH_WATER`` bytes ahead of its consumer (the socket is paused).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

__all__ = ["HttpTransportError", "Pool", "Response", "Streaming"]

HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18
CLOSE_GRACE = 1.0


class HttpTransportError(Exception):
    """No complete HTTP answer: connection refused or reset, TLS failure, timeout, bad response."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    #: Header names in lower case (the last value of a repeated header).
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: asyncio protocol and httptools parser callbacks."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = asyncio.get_running_loop().create_future()
        self.idle_since = 0.0
        self.streaming = False
        self._prepare()

    def _prepare(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head_done = False
        self.message_done = False
        self.server_keeps_alive = False
        self.error: HttpTransportError | None = None
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpTransportError(f"malformed HTTP response: {exc}"), exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.message_done:
            self._fail(HttpTransportError(f"connection closed by the server: {exc!r}"), exc)

    # -- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        if self.streaming:
            self.buffered += len(body)
            if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        self.message_done = True
        self.server_keeps_alive = self.parser.should_keep_alive()  # only valid inside the callback
        self._wake()

    # -- used by the pool ----------------------------------------------------------------

    def send(self, data: bytes, *, streaming: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            raise HttpTransportError("connection closed")
        self._prepare()
        self.streaming = streaming
        self.transport.write(data)

    async def wait(self) -> None:
        """Until the parser or the connection reports something."""
        if self.error is not None:
            raise self.error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self, fresh_since: float) -> bool:
        return (self.transport is not None and not self.closed.done() and not self.transport.is_closing()
                and self.idle_since >= fresh_since)

    def keep_alive(self) -> bool:
        return self.message_done and self.error is None and self.server_keeps_alive

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: HttpTransportError, cause: BaseException | None) -> None:
        error.__cause__ = cause
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Streaming:
    """A response whose body is read as it arrives; from :meth:`Pool.stream`."""

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self._conn = connection
        self.status = connection.status
        self.headers = connection.headers
        self._read_timeout = read_timeout

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        conn = self._conn
        while True:
            if conn.chunks:
                yield conn.take()
            elif conn.message_done:
                return
            else:
                try:
                    async with asyncio.timeout(self._read_timeout):
                        await conn.wait()
                except TimeoutError as exc:
                    raise HttpTransportError(f"no data for {self._read_timeout} s") from exc

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


class Pool:
    def __init__(self, url: str, ssl_context: ssl.SSLContext | None, *, timeout: float,
                 max_idle: int = 32, keepalive_expiry: float = 4.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc
        self.ssl = ssl_context if parts.scheme == "https" else None
        self.timeout = timeout
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._closed = False

    async def request(self, head: bytes, body: bytes | None) -> Response:
        """Send ``head`` (request line and headers, ending with the blank line) and ``body``."""
        conn = await self._exchange(head + body if body else head, streaming=False)
        response = Response(conn.status, conn.headers, b"".join(conn.chunks))
        self._release(conn)
        return response

    @contextlib.asynccontextmanager
    async def stream(self, head: bytes, read_timeout: float | None) -> AsyncIterator[Streaming]:
        """Send a body-less request; the response is read as it comes."""
        conn = await self._exchange(head, streaming=True)
        try:
            yield Streaming(conn, read_timeout)
        finally:
            self._release(conn)

    async def _exchange(self, data: bytes, *, streaming: bool) -> _Connection:
        """Send ``data`` on a pooled or new connection; wait for the whole answer (for a stream:
        its headers) within ``timeout``."""
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._acquire()
                try:
                    conn.send(data, streaming=streaming)
                    while not (conn.head_done if streaming else conn.message_done):
                        await conn.wait()
                except BaseException:
                    conn.close()
                    raise
        except TimeoutError as exc:
            raise HttpTransportError(f"no answer within {self.timeout} s") from exc
        except OSError as exc:
            raise HttpTransportError(f"{exc!r}") from exc
        return conn

    async def close(self) -> None:
        """Close every connection, idle or in use (idempotent)."""
        self._closed = True
        self._idle.clear()
        conns = list(self._open)
        for conn in conns:
            conn.close()
        if conns:
            _, late = await asyncio.wait([conn.closed for conn in conns], timeout=CLOSE_GRACE)
            for conn in conns:
                if conn.closed in late and conn.transport is not None:
                    conn.transport.abort()

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise HttpTransportError("client closed")
        loop = asyncio.get_running_loop()
        fresh_since = loop.time() - self.keepalive_expiry
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable(fresh_since):
                return conn
            conn.close()
        _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl,
                                               server_hostname=self.host if self.ssl else None)
        self._open.add(conn)
        conn.closed.add_done_callback(lambda _: self._open.discard(conn))
        return conn

    def _release(self, conn: _Connection) -> None:
        if not self._closed and conn.keep_alive() and len(self._idle) < self.max_idle:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            conn.close()
