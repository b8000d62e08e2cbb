"""Connection hygiene of the HTTPS API server: uvicorn, with the limits a production server has.

Without them, anyone who can reach the port holds connections without a token: one that
completes TLS and sends nothing, or sends its headers a byte at a time, stays open for
ever, costs about 290 KiB, and a thousand of them exhaust the usual 1,024 open files.

:class:`HardenedServer` is a ``uvicorn.Server`` that makes its listening socket itself
(uvicorn's ``startup`` passes no TLS handshake timeout) and takes every connection through
these steps; the values are :class:`~shoal.api.connlimits.ConnectionLimits`:

1. **admission**, at accept and before any TLS work, by the
   :class:`~shoal.api.connlimits.ConnectionBook`: caps per client address and in all; at a
   cap the oldest connection not inside a request makes room, else the new one is aborted.
   The total cap stays below the open-file limit, which start-up raises to the hard limit
   (:func:`shoal.api.procres.raise_fd_limit`).
2. **the TLS handshake**, which starts with the client's first byte and must end
   ``tls_handshake_timeout`` after accept (else aborted).  The server asks for a client
   certificate (``CERT_OPTIONAL`` against the cluster CA, set by the caller's
   ``SSLContext``) and puts the verified peer certificate (``getpeercert()``'s dict, None
   without one) into every HTTP request's and WebSocket's ``scope["state"]`` under
   :data:`PEERCERT_STATE_KEY`.  Renegotiation is refused.
3. **the request headers**: complete within ``header_timeout`` of the handshake (first
   request) or of the request's first byte (the next ones), else the connection is aborted;
   bytes arriving do not extend the deadline (slowloris).  More than ``max_header_bytes``
   before the headers end: 431 and close.
4. **the request**: no server timeout once its headers are complete, so watches, log and
   exec streams and WebSockets run as long as their handlers do.
5. **idle keep-alive**: after a response, the next request's first byte must come within
   ``idle_timeout``, else the connection is closed (TLS close_notify, then at most
   ``tls_shutdown_timeout`` for the peer's).

Memory (measured, OpenSSL 3.0, Python 3.11): asyncio's ``SSLProtocol`` allocates a 256 KiB
receive buffer per connection; here one buffer per listener serves all of its connections
(the socket read and the copy into the TLS object happen in one synchronous step of the
event loop, so no two reads share it).  An idle TLS connection then costs about 28 KiB
(17 KiB OpenSSL, the rest asyncio's and uvicorn's objects), a socket that never sends a
byte well under 1 KiB.  After many connections close the book collects and trims the heap.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shoal.api import connlimits, procres
from shoal.api.authn import PEERCERT_STATE_KEY

#: Bytes read from a socket at once (one buffer per listener, shared by its connections).
RECEIVE_BUFFER = 256 * 1024
#: The most plaintext asked of the TLS object per read (one TLS record is at most 16 KiB).
PLAINTEXT_READ = 64 * 1024


class _Connection(asyncio.Protocol):
    """One accepted socket: the book's entry for it, and its protocol until its first byte.

    TLS starts (:class:`_TlsConnection` takes over the socket) only when the client sends
    something: a socket that never does costs a few hundred bytes instead of the ~40 KiB of
    an OpenSSL object waiting for its ClientHello.  The handshake deadline runs from accept.
    """

    def __init__(self, listener: _Listener) -> None:
        self.listener = listener
        self.address = ""
        self.counted = False
        self.transport: asyncio.Transport | None = None
        self.tls: _TlsConnection | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else ""
        book = self.listener.book
        if not book.admit(self):
            transport.abort()
            return
        loop, timeout = self.listener.loop, book.limits.tls_handshake_timeout
        self._deadline = loop.time() + timeout
        self._timer = loop.call_later(timeout, self.abort)

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.tls is not None or not self.counted:
            return
        self._cancel_timer()
        remaining = max(0.001, self._deadline - self.listener.loop.time())
        app = self.listener.server.new_http_protocol()
        app.entry = self
        self.tls = tls = _TlsConnection(self.listener, self, app, remaining)
        self.transport.set_protocol(tls)
        tls.connection_made(self.transport)
        view = tls.get_buffer(len(data))
        for offset in range(0, len(data), len(view)):
            chunk = data[offset:offset + len(view)]
            view[:len(chunk)] = chunk
            tls.buffer_updated(len(chunk))

    def eof_received(self) -> bool | None:
        return None  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.listener.book.release(self)
        self.forget_transport()

    def forget_transport(self) -> None:
        """Drop the socket's transport, breaking its reference cycle (called as the connection is lost).

        Before Python 3.12 asyncio's socket transport keeps its read callback, a bound method
        of itself, after it closed (CPython gh-100348): a reference cycle, so each closed
        transport with its socket and ``extra`` dict waits for a full collection, and one that
        was open when the heap was frozen (``gc.freeze``) is never freed.  The transport reads
        nothing more once its connection is lost (its reader left the loop at close).
        """
        transport, self.transport = self.transport, None
        if transport is not None and getattr(transport, "_read_ready_cb", None) is not None:
            transport._read_ready_cb = None  # type: ignore[attr-defined]

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _TlsConnection(sslproto.SSLProtocol):
    """asyncio's TLS protocol with the listener's shared receive buffer, released from the book."""

    max_size = PLAINTEXT_READ

    def __init__(self, listener: _Listener, entry: _Connection, app: ShoalHttpProtocol,
                 handshake_timeout: float) -> None:
        super().__init__(listener.loop, app, listener.tls, None,  # type: ignore[arg-type]
                         server_side=True,
                         ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
                         ssl_shutdown_timeout=listener.book.limits.tls_shutdown_timeout)
        # Replaces the 64 KiB buffer SSLProtocol.__init__ just made (freed at once).
        self._ssl_buffer = listener.buffer
        self._ssl_buffer_view = listener.view
        self.entry = entry

    def get_buffer(self, n: int) -> memoryview:
        return self._ssl_buffer_view

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self.entry.listener.book.release(self.entry)
            self.entry.forget_transport()
            self.entry.tls = None  # no reference cycle: freed without the collector


class _Listener:
    """Per listening socket: the TLS context, the shared receive buffer, the book."""

    def __init__(self, server: HardenedServer, tls: ssl.SSLContext, book: connlimits.ConnectionBook) -> None:
        self.server = server
        self.loop = book.loop
        self.tls = tls
        self.book = book
        self.buffer = bytearray(RECEIVE_BUFFER)
        self.view = memoryview(self.buffer)

    def accept(self) -> _Connection:
        return _Connection(self)


_HEADERS, _BUSY, _IDLE, _CLOSED = "headers", "busy", "idle", "closed"


class ShoalHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the header and idle deadlines and the peer certificate."""

    entry: _Connection | None = None
    limits = connlimits.ConnectionLimits()

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = _HEADERS
        self._clock: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A per-connection copy: uvicorn copies app_state into every request's scope["state"]
        # and hands it to the WebSocket protocol on upgrade.
        self.app_state = {**self.app_state, PEERCERT_STATE_KEY: transport.get_extra_info("peercert")}
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _CLOSED
        self._stop_clock()
        super().connection_lost(exc)
        # Break the protocol <-> request cycle (cycle.on_response is our bound method) so
        # reference counting frees the connection; a handler still running keeps its cycle.
        self.cycle = None  # type: ignore[assignment]
        self.pipeline.clear()

    def data_received(self, data: bytes) -> None:
        if self._phase == _IDLE:
            self._await_headers()  # the first byte of the next request starts its deadline
        if self._phase == _HEADERS:
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse_headers()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        if self._phase == _HEADERS:
            self._stop_clock()
            self._phase = _BUSY
            if self.entry is not None:
                self.entry.listener.book.busy(self.entry)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer only when no pipelined request follows.
        if self.timeout_keep_alive_task is None or self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self._phase = _IDLE
        self._start_clock(self.limits.idle_timeout, self._idle_expired)
        if self.entry is not None:
            self.entry.listener.book.idle(self.entry)

    # -- deadlines ---------------------------------------------------------------------------
    def _await_headers(self) -> None:
        self._phase = _HEADERS
        self._header_bytes = 0
        self._start_clock(self.limits.header_timeout, self._headers_expired)

    def _start_clock(self, seconds: float, callback: Any) -> None:
        self._stop_clock()
        self._clock = self.loop.call_later(seconds, callback)

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _headers_expired(self) -> None:
        self._clock = None
        if self._phase == _HEADERS:
            self._phase = _CLOSED
            self.transport.abort()

    def _idle_expired(self) -> None:
        self._clock = None
        if self._phase == _IDLE:
            self._phase = _CLOSED
            self.transport.close()

    def _refuse_headers(self) -> None:
        self._phase = _CLOSED
        self._stop_clock()
        body = b"Request headers too large."
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             b"content-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.close()


class HardenedServer(uvicorn.Server):
    """uvicorn serving HTTPS on ``config.host:config.port`` through :class:`ShoalHttpProtocol`.

    ``config`` must not carry TLS settings (``tls`` is the context); its ``http`` setting is
    ignored.  A failure to listen raises the ``OSError`` (not uvicorn's ``sys.exit``).
    Start-up raises the process's open-file limit and may tune glibc's allocator.
    """

    def __init__(self, config: uvicorn.Config, tls: ssl.SSLContext,
                 limits: connlimits.ConnectionLimits | None = None) -> None:
        super().__init__(config)
        tls.options |= ssl.OP_NO_RENEGOTIATION
        self.tls = tls
        self.limits = limits or connlimits.ConnectionLimits()
        self.book: connlimits.ConnectionBook | None = None

    def new_http_protocol(self) -> ShoalHttpProtocol:
        assert self.book is not None
        protocol = ShoalHttpProtocol(self.config, self.server_state, self.lifespan.state, self.book.loop)
        protocol.limits = self.book.limits
        return protocol

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await self.lifespan.startup()
        loop = asyncio.get_running_loop()
        fd_limit = procres.raise_fd_limit()
        # The listen queue is also how many sockets asyncio accepts at once (each a descriptor).
        backlog = max(16, min(self.config.backlog, fd_limit // 8))
        limits = self.limits.within_fd_limit(fd_limit, backlog)
        self.book = connlimits.ConnectionBook(limits, loop)
        listener = _Listener(self, self.tls, self.book)
        server = await loop.create_server(listener.accept, host=self.config.host, port=self.config.port,
                                          backlog=backlog)
        self.servers = [server]
        self.started = True

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        if self.book is not None:
            for server in self.servers:
                server.close()
            self.book.abort_all(idle_only=True)
        try:
            await super().shutdown(sockets)
        finally:
            if self.book is not None:
                self.book.abort_all()
                self.book.close()
