"""The server side of a SPDY/3.1 connection (streams opened by the client), on asyncio.

A :class:`ServerSession` runs over any ordered byte transport: ``receive()`` returns the next
bytes (``b""`` at the end), ``send(data)`` writes them and raises :class:`ConnectionError`
once the transport is gone (the session's writers then get :class:`StreamClosed`).
:meth:`ServerSession.run` reads frames until the transport ends and then tears every stream
down.  Frames are encoded and sent under one lock, so header
blocks reach the peer in the order the shared zlib stream compressed them.

What the session does, matching Go's spdystream (kubectl's side of ``kubectl port-forward``):

* SYN_STREAM: the id must be odd (client-initiated) and above every earlier one, and the
  session must not have received GOAWAY; else RST_STREAM PROTOCOL_ERROR (REFUSED_STREAM after
  GOAWAY).  ``on_stream(stream)`` is called synchronously, in frame order, to accept (True)
  or refuse it (False: RST_STREAM CANCEL, as the kubelet's ``stream.Reset()``); an accepted
  stream gets an empty SYN_REPLY before any data the server writes on it.
* DATA: appended to the stream's input; FIN (on DATA or HEADERS) ends the input.  Data for
  an unknown stream is dropped (spdystream does the same).  While a stream holds more than
  ``stream_buffer`` unread bytes the session stops reading the transport, so a slow consumer
  slows the sender instead of growing memory (flow control by the transport, as with
  spdystream, which neither sends nor honours WINDOW_UPDATE; the session likewise ignores
  SETTINGS and WINDOW_UPDATE and never limits what it sends).  A stream whose handler has
  :meth:`Stream.finish`-ed drops further input.
* RST_STREAM: the stream's input ends and writes fail with :class:`StreamClosed`.
* PING with an odd id (the client's): echoed.  GOAWAY: no new streams; existing ones go on.
* A :class:`~shoal.kube.spdy.ProtocolError`: GOAWAY PROTOCOL_ERROR, then the session ends.

When :meth:`run` returns, every stream is reset and every task started with
:meth:`ServerSession.spawn` has been cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from shoal.kube import spdy

log = logging.getLogger(__name__)

#: The largest data frame the session sends (spdystream's reader takes any length).
MAX_DATA_CHUNK = 64 * 1024


class StreamClosed(ConnectionError):
    """A write on a stream that was reset, finished, or whose session ended."""


class Stream:
    """One client-initiated stream: its headers, its input, and the server's half."""

    def __init__(self, session: ServerSession, stream_id: int, headers: spdy.Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._replied = asyncio.Event()
        self.remote_closed = False  # the client's FIN, or a reset
        self.local_closed = False  # our FIN was sent
        self.was_reset = False
        self.abandoned = False

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    # -- input ---------------------------------------------------------------------------
    async def read(self) -> bytes:
        """The next chunk the client sent; ``b""`` once its half is closed or the stream reset."""
        while not self._chunks:
            if self.remote_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered <= self.session.stream_buffer:
            self._space.set()
        return chunk

    def _receive(self, data: bytes, fin: bool) -> None:
        if data and not self.abandoned and not self.remote_closed:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > self.session.stream_buffer:
                self._space.clear()
        if fin:
            self.remote_closed = True
        self._readable.set()

    def _reset(self) -> None:
        """Both halves are over (RST_STREAM either way, refusal, or the session's end)."""
        self.remote_closed = self.local_closed = self.was_reset = True
        self._chunks.clear()
        self._buffered = 0
        self._readable.set()
        self._space.set()
        self._replied.set()  # a writer waiting for the reply now fails with StreamClosed

    # -- output --------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        await self._replied.wait()
        for start in range(0, len(data), MAX_DATA_CHUNK):
            if self.local_closed:
                raise StreamClosed(f"stream {self.id} is closed")
            await self.session.send(spdy.Data(self.id, data[start:start + MAX_DATA_CHUNK]))

    async def close(self) -> None:
        """Send FIN (once): the server writes nothing more on this stream."""
        if self.local_closed:
            return
        await self._replied.wait()
        self.local_closed = True
        with contextlib.suppress(ConnectionError):
            await self.session.send(spdy.Data(self.id, b"", spdy.FLAG_FIN))
        self.session._maybe_forget(self)

    async def reset(self, status: int = spdy.CANCEL) -> None:
        if self.was_reset:
            return
        self._reset()
        with contextlib.suppress(ConnectionError):
            await self.session.send(spdy.RstStream(self.id, status))
        self.session._maybe_forget(self)

    async def finish(self) -> None:
        """Close our half and drop whatever the client still sends (the handler is done)."""
        self.abandoned = True
        self._chunks.clear()
        self._buffered = 0
        self._space.set()
        await self.close()


class ServerSession:
    def __init__(self, receive: Callable[[], Awaitable[bytes]], send: Callable[[bytes], Awaitable[None]],
                 on_stream: Callable[[Stream], bool], *, stream_buffer: int = 1 << 20) -> None:
        self._receive = receive
        self._send = send
        self.on_stream = on_stream
        self.stream_buffer = stream_buffer
        self.codec = spdy.Codec()
        self.streams: dict[int, Stream] = {}
        self._last_id = 0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.gone_away = False
        self.closed = False

    async def send(self, frame: spdy.Frame) -> None:
        if self.closed:
            raise StreamClosed("the SPDY connection is closed")
        async with self._lock:
            data = self.codec.encode(frame)
            try:
                await self._send(data)
            except ConnectionError as exc:
                self.closed = True
                raise StreamClosed(f"the SPDY connection is closed: {exc}") from exc

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` for as long as the session lives (cancelled when it ends)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("SPDY stream handler %s failed", task.get_name(), exc_info=task.exception())

    async def run(self) -> None:
        """Serve frames until the transport ends (or the peer breaks the protocol)."""
        try:
            while True:
                data = await self._receive()
                if not data:
                    return
                for frame in self.codec.feed(data):
                    await self._dispatch(frame)
        except spdy.ProtocolError as exc:
            log.warning("SPDY protocol error from the client: %s", exc)
            with contextlib.suppress(ConnectionError):
                await self.send(spdy.GoAway(self._last_id, spdy.GOAWAY_PROTOCOL_ERROR))
        finally:
            self.closed = True
            for stream in self.streams.values():
                stream._reset()
            self.streams.clear()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _dispatch(self, frame: spdy.Frame) -> None:
        match frame:
            case spdy.Data():
                stream = self.streams.get(frame.stream_id)
                if stream is None:
                    return
                await stream._space.wait()
                stream._receive(frame.data, frame.fin)
                self._maybe_forget(stream)
            case spdy.SynStream():
                await self._open(frame)
            case spdy.RstStream():
                stream = self.streams.pop(frame.stream_id, None)
                if stream is not None:
                    stream._reset()
            case spdy.HeadersFrame():
                stream = self.streams.get(frame.stream_id)
                if stream is not None and frame.flags & spdy.FLAG_FIN:
                    stream._receive(b"", True)
                    self._maybe_forget(stream)
            case spdy.Ping():
                if frame.ping_id & 1:
                    await self._send_quietly(frame)
            case spdy.GoAway():
                self.gone_away = True
            case _:  # SETTINGS, WINDOW_UPDATE, SYN_REPLY (we open no streams), unknown types
                return

    async def _open(self, frame: spdy.SynStream) -> None:
        if self.gone_away:
            await self._send_quietly(spdy.RstStream(frame.stream_id, spdy.REFUSED_STREAM))
            return
        if frame.stream_id % 2 == 0 or frame.stream_id <= self._last_id:
            await self._send_quietly(spdy.RstStream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        self._last_id = frame.stream_id
        stream = Stream(self, frame.stream_id, frame.headers)
        if frame.flags & spdy.FLAG_FIN:
            stream.remote_closed = True
        if frame.flags & spdy.FLAG_UNIDIRECTIONAL:
            stream.local_closed = True
        if not self.on_stream(stream):
            stream._reset()
            await self._send_quietly(spdy.RstStream(frame.stream_id, spdy.CANCEL))
            return
        self.streams[stream.id] = stream
        await self._send_quietly(spdy.SynReply(stream.id, {}))
        stream._replied.set()

    async def _send_quietly(self, frame: spdy.Frame) -> None:
        """Send, or nothing if the transport is gone (the read loop then ends by itself)."""
        with contextlib.suppress(ConnectionError):
            await self.send(frame)

    def _maybe_forget(self, stream: Stream) -> None:
        if stream.remote_closed and stream.local_closed:
            self.streams.pop(stream.id, None)
