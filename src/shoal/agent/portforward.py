"""``kubectl port-forward`` on the agent: SPDY streams in, TCP connections to the pod out.

The API server relays kubectl's WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``:
SPDY/3.1 frames carried as a byte stream in binary messages, KEP-4006's tunnelling) message by
message to the agent's ``/portForward/{namespace}/{pod}/{uid}`` (subprotocol
:data:`WEBSOCKET_PROTOCOL`), where :func:`serve` runs a
:class:`~shoal.kube.spdysession.ServerSession` over it.  The protocol is the kubelet's
``portforward.k8s.io`` (v1):

* every forwarded connection is two streams with headers ``streamtype`` (``error`` or
  ``data``), ``port`` (1-65535, required on both) and ``requestid`` (pairs them; without it
  the error stream is paired by its own id and the data stream by its id minus 2, as the
  kubelet does).  A stream with a bad or missing header, or a second stream of one type for
  a request, is refused (RST_STREAM).  A pair not complete within
  :data:`STREAM_CREATION_TIMEOUT` is dropped with an error on its error stream.
* for a complete pair, the agent connects to ``pod_ip:port`` and copies bytes both ways on
  the data stream: the client's FIN half-closes the pod connection (``shutdown(SHUT_WR)``)
  and the copy from the pod goes on; the pod's EOF ends the forward.  Then both streams are
  closed (FIN) -- an error stream closed without a message is kubectl's "no error".
* a connection that cannot be made, or breaks, puts ``error forwarding port P to pod
  NS/NAME, uid U: <why>`` on the error stream (kubectl prints it), then closes both streams.
* a reset data stream (kubectl stopping) closes the pod connection at once.

Each pair is independent, so any number of connections share one session, and a transfer
of any size streams through in chunks of at most 64 KiB with back-pressure both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from shoal.agent.runtime import labels
from shoal.agent.runtime.driver import SandboxStatus
from shoal.kube import errors
from shoal.kube.spdysession import ServerSession, Stream, StreamClosed

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
#: The agent's WebSocket subprotocol for SPDY/3.1 port-forward frames as a byte stream: what
#: kubectl calls ``SPDY/3.1+portforward.k8s.io``, renamed to an HTTP token (no ``/``) so
#: standard WebSocket libraries negotiate it.
WEBSOCKET_PROTOCOL = "spdy3.1-portforward.shoal"
STREAM_CREATION_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class PodAddress:
    namespace: str
    name: str
    uid: str
    ip: str


@dataclass(slots=True)
class _Pair:
    request_id: str
    error: Stream | None = None
    data: Stream | None = None
    expiry: asyncio.Task[None] | None = None


class SandboxLister(Protocol):
    async def list_sandboxes(self, pod_uid: str | None = None) -> list[SandboxStatus]: ...


async def find_pod(driver: SandboxLister, namespace: str, name: str, uid: str) -> PodAddress:
    """The address of pod ``namespace/name`` with ``uid`` on this node: its ready sandbox's IP.

    Raises a 404 :class:`~shoal.kube.errors.ApiError` when no ready sandbox of that pod (same
    uid, namespace and name labels) with an IP runs here."""
    for sandbox in await driver.list_sandboxes(uid):
        if (sandbox.ready and sandbox.ip and sandbox.pod_uid == uid
                and sandbox.labels.get(labels.POD_NAMESPACE, namespace) == namespace
                and sandbox.labels.get(labels.POD_NAME, name) == name):
            return PodAddress(namespace, name, uid, sandbox.ip)
    raise errors.ApiError(404, "NotFound", f'pod "{name}" in namespace "{namespace}" is not running on this node')


def parse_port(value: str) -> int | None:
    """The ``port`` header as the kubelet takes it (``ParseUint(v, 10, 16)``, not 0), else None."""
    if not value.isascii() or not value.isdigit():
        return None
    port = int(value)
    return port if 0 < port < 65536 else None


class Forwarder:
    """One SPDY connection's port-forward requests for one pod."""

    def __init__(self, pod: PodAddress, *, connect_timeout: float = CONNECT_TIMEOUT,
                 pair_timeout: float = STREAM_CREATION_TIMEOUT) -> None:
        self.pod = pod
        self.connect_timeout = connect_timeout
        self.pair_timeout = pair_timeout
        self.pairs: dict[str, _Pair] = {}
        self.session: ServerSession | None = None

    def attach(self, session: ServerSession) -> None:
        self.session = session

    def on_stream(self, stream: Stream) -> bool:
        assert self.session is not None, "attach() the session first"
        kind = stream.header("streamtype")
        if kind not in ("error", "data") or parse_port(stream.header("port")) is None:
            log.info("port-forward to %s/%s: refused stream %d with headers %s", self.pod.namespace,
                     self.pod.name, stream.id, stream.headers)
            return False
        request_id = stream.header("requestid") or str(stream.id if kind == "error" else stream.id - 2)
        pair = self.pairs.get(request_id)
        if pair is None:
            pair = self.pairs[request_id] = _Pair(request_id)
            pair.expiry = self.session.spawn(self._expire(pair), name=f"portforward-expire-{request_id}")
        if getattr(pair, kind) is not None:
            log.info("port-forward: a second %s stream for request %s", kind, request_id)
            return False
        setattr(pair, kind, stream)
        if pair.error is not None and pair.data is not None:
            if pair.expiry is not None:
                pair.expiry.cancel()
            self.session.spawn(self._forward(pair, pair.error, pair.data), name=f"portforward-{request_id}")
        return True

    async def _expire(self, pair: _Pair) -> None:
        await asyncio.sleep(self.pair_timeout)
        self.pairs.pop(pair.request_id, None)
        for stream in (pair.error, pair.data):
            if stream is not None:
                if stream is pair.error:
                    with contextlib.suppress(ConnectionError):
                        await stream.write(f"timed out waiting for the streams of request {pair.request_id}"
                                           .encode())
                await stream.finish()

    async def _forward(self, pair: _Pair, error: Stream, data: Stream) -> None:
        port = parse_port(data.header("port"))
        assert port is not None  # checked in on_stream
        try:
            problem = await self._copy(port, data)
            if problem:
                message = (f"error forwarding port {port} to pod {self.pod.namespace}/{self.pod.name}, "
                           f"uid {self.pod.uid}: {problem}")
                log.info("port-forward: %s", message)
                with contextlib.suppress(ConnectionError):
                    await error.write(message.encode())
        finally:
            self.pairs.pop(pair.request_id, None)
            await data.finish()
            await error.finish()

    async def _copy(self, port: int, data: Stream) -> str:
        """Forward one connection; returns what went wrong ("" when nothing did)."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.pod.ip, port),
                                                    self.connect_timeout)
        except TimeoutError:
            return f"dial tcp {self.pod.ip}:{port}: i/o timeout"
        except OSError as exc:
            return f"dial tcp {self.pod.ip}:{port}: connect: {_reason(exc)}"
        upstream = asyncio.create_task(_client_to_pod(data, writer), name="portforward-up")
        downstream = asyncio.create_task(_pod_to_client(reader, data), name="portforward-down")
        try:
            done, _ = await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
            if upstream in done and not downstream.done():
                upstream.result()
                if not data.was_reset:  # the client's FIN: the pod may still answer
                    await downstream
            for task in (upstream, downstream):
                if task.done():
                    task.result()
            return ""
        except StreamClosed:
            return ""  # kubectl reset the stream or the session ended: nobody to tell
        except OSError as exc:
            return f"read/write on the connection to {self.pod.ip}:{port}: {_reason(exc)}"
        finally:
            for task in (upstream, downstream):
                task.cancel()
            await asyncio.gather(upstream, downstream, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _reason(exc: OSError) -> str:
    """``connection refused``, as Go words errno (asyncio's own text names the address again)."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


async def _client_to_pod(data: Stream, writer: asyncio.StreamWriter) -> None:
    while chunk := await data.read():
        writer.write(chunk)
        await writer.drain()
    if not data.was_reset and writer.can_write_eof():
        writer.write_eof()


async def _pod_to_client(reader: asyncio.StreamReader, data: Stream) -> None:
    while chunk := await reader.read(READ_CHUNK):
        await data.write(chunk)


async def serve(ws: WebSocket, pod: PodAddress) -> None:
    """Run port-forwarding for an accepted WebSocket until the client leaves."""
    forwarder = Forwarder(pod)

    async def receive() -> bytes:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return b""
            raw = message.get("bytes")
            if raw is None:
                raw = (message.get("text") or "").encode()
            if raw:
                return bytes(raw)

    async def send(data: bytes) -> None:
        try:
            await ws.send_bytes(data)
        except (RuntimeError, OSError, WebSocketDisconnect) as exc:  # the socket is closed
            raise ConnectionError(str(exc)) from exc

    session = ServerSession(receive, send, forwarder.on_stream)
    forwarder.attach(session)
    log.info("port-forward session for pod %s/%s (%s) started", pod.namespace, pod.name, pod.ip)
    try:
        await session.run()
    finally:
        log.info("port-forward session for pod %s/%s ended", pod.namespace, pod.name)
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close(1000)

