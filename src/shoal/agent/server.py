"""The node agent's own HTTPS API (the kubelet's port 10250): container logs, exec, port-forward.

Endpoints (the kubelet's paths; the API server proxies ``pods/log`` and ``pods/exec`` here):

* ``GET /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&timestamps&previous&
  sinceSeconds&sinceTime&limitBytes``: ``text/plain``, chunked, one chunk (flush) per line.
* ``/exec/{namespace}/{pod}/{container}?command=..&command=..&stdin&stdout&stderr&tty``: a
  WebSocket with subprotocol ``v5.channel.k8s.io`` (or v4), framed as described in
  :mod:`shoal.kube.remotecommand`.  The last message is the exit Status on channel 3, then a close
  (1000).  A plain HTTP request that names a usable container is answered 400 "Upgrade
  request required"; otherwise with the same error Status the upgrade would have got, so the
  API server can relay it when kubectl falls back from WebSocket to SPDY.
* ``/portForward/{namespace}/{pod}/{uid}``: a WebSocket with subprotocol
  ``SPDY/3.1+portforward.k8s.io`` carrying kubectl's SPDY port-forward session
  (:mod:`shoal.agent.portforward`), to the pod's sandbox IP.  No running sandbox of that pod
  on this node: 404; plain HTTP: the same error, else 400 "Upgrade request required".
* ``GET /healthz``: ``ok``.

Security (Kubernetes' default for apiserver→kubelet)
---------------------------------------------------
* The serving certificate is self-signed, made in ``cert_dir`` (``agent.crt``/``agent.key``)
  when missing or unusable (:mod:`shoal.agent.servertls`); the API server does not verify it.
* Mutual TLS is REQUIRED: the handshake fails without a client certificate signed by the
  cluster CA (``ca_pem``), and a request whose certificate's CN is not in
  ``allowed_clients`` (default: ``shoal-apiserver``) gets 403 Forbidden.

Container lookup
----------------
The agent supplies ``pod_lookup(namespace, pod, container, previous)`` (:class:`PodLookup`),
which returns the runtime's container ID (with ``previous``: the last terminated instance) or
raises :class:`ContainerLookupError`, best made with :func:`container_not_found`,
:func:`waiting_to_start` or :func:`previous_not_found` so the messages match Kubernetes'.
It may be a plain or an ``async`` function.  Exec also requires the container to be running.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from shoal.agent import execstream, portforward, servertls
from shoal.agent.runtime.driver import (
    ContainerStatus,
    ExecSession,
    NotFoundError,
    RuntimeDriver,
    RuntimeDriverError,
    SandboxStatus,
    State,
)
from shoal.kube import errors, remotecommand

log = logging.getLogger(__name__)

#: The CN of the API server's client certificate (see :mod:`shoal.api.podproxy`).
APISERVER_CLIENT = "shoal-apiserver"


class ContainerLookupError(errors.ApiError):
    """The container cannot serve logs or exec; carried to the client as a Status."""


def container_not_found(container: str, pod: str) -> ContainerLookupError:
    return ContainerLookupError(404, "NotFound", f'container "{container}" in pod "{pod}" not found')


def waiting_to_start(container: str, pod: str, reason: str) -> ContainerLookupError:
    """E.g. ``container "x" in pod "y" is waiting to start: ContainerCreating`` (400)."""
    return ContainerLookupError(400, "BadRequest",
                                f'container "{container}" in pod "{pod}" is waiting to start: {reason}')


def previous_not_found(container: str, pod: str) -> ContainerLookupError:
    return ContainerLookupError(400, "BadRequest",
                                f'previous terminated container "{container}" in pod "{pod}" not found')


class PodLookup(Protocol):
    """Maps a pod's container to a runtime container ID, or raises :class:`ContainerLookupError`."""

    def __call__(self, namespace: str, pod: str, container: str,
                 previous: bool) -> str | Awaitable[str]: ...


class StreamingDriver(Protocol):
    """The part of :class:`~shoal.agent.runtime.driver.RuntimeDriver` this server uses."""

    async def inspect_container(self, container_id: str) -> ContainerStatus: ...

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: datetime | None = None) -> AsyncIterator[bytes]: ...

    async def exec_stream(self, container_id: str, command: list[str], *, stdin: bool,
                          tty: bool) -> ExecSession: ...

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[SandboxStatus]: ...


if TYPE_CHECKING:
    def _every_runtime_driver_streams(driver: RuntimeDriver) -> StreamingDriver:
        return driver


class AgentServerError(Exception):
    """The agent's HTTPS API cannot listen (the port is taken, the address is not local)."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that embeds it, and whose
    failure to listen is an :class:`AgentServerError` rather than uvicorn's ``sys.exit(1)``
    (which would end the whole process past the component runner's clean stop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit as exc:
            config = self.config
            raise AgentServerError(f"the agent API cannot listen on {config.host}:{config.port} "
                                   "(see the error logged above)") from exc


class AgentServer:
    def __init__(self, driver: StreamingDriver, *, pod_lookup: PodLookup, bind: str = "0.0.0.0",
                 port: int = 10250, ca_pem: bytes, cert_dir: Path,
                 allowed_clients: frozenset[str] = frozenset({APISERVER_CLIENT})) -> None:
        self.driver = driver
        self.pod_lookup = pod_lookup
        self.bind = bind
        self.requested_port = port
        self.allowed_clients = allowed_clients
        cert, key = servertls.ensure_serving_cert(cert_dir, bind)
        self.ssl_context = servertls.server_context(cert, key, ca_pem)
        self.app = Starlette(routes=[
            Route("/healthz", self._healthz),
            Route("/containerLogs/{namespace}/{pod}/{container}", self._logs),
            Route("/exec/{namespace}/{pod}/{container}", self._exec_http, methods=["GET", "POST"]),
            WebSocketRoute("/exec/{namespace}/{pod}/{container}", self._exec_websocket),
            Route("/portForward/{namespace}/{pod}/{uid}", self._portforward_http, methods=["GET", "POST"]),
            WebSocketRoute("/portForward/{namespace}/{pod}/{uid}", self._portforward_websocket),
        ])
        self.uvicorn = _Server(uvicorn.Config(
            self, host=bind, port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
            ssl_context_factory=lambda config, default: self.ssl_context,
            http=servertls.PeerIdentityProtocol, ws="websockets-sansio", lifespan="off",
            log_level="warning", access_log=False, timeout_graceful_shutdown=2))
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``); the requested one before :meth:`start`."""
        for server in self.uvicorn.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.requested_port

    async def start(self) -> None:
        """Listen; returns once the socket is bound (raises if binding failed)."""
        self._task = asyncio.create_task(self.uvicorn.serve(), name="agent-server")
        while not self.uvicorn.started:
            if self._task.done():
                await self._task
                raise RuntimeError("agent server stopped during start-up")
            await asyncio.sleep(0.005)
        log.info("agent server listening on https://%s:%d", self.bind, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.uvicorn.should_exit = True
        await self._task
        self._task = None

    async def run(self) -> None:
        """Serve until cancelled."""
        await self.start()
        try:
            assert self._task is not None
            await asyncio.shield(self._task)
        finally:
            await self.stop()

    async def __aenter__(self) -> AgentServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- ASGI: authorization, then routing --------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = (scope.get("state") or {}).get(servertls.PEER_STATE_KEY)
            if peer not in self.allowed_clients:
                who = f'user "{peer}"' if peer else "an anonymous client"
                await remotecommand.deny(scope, receive, send, errors.ApiError(
                    403, "Forbidden", f"Forbidden: {who} may not use the node API"))
                return
        await self.app(scope, receive, send)

    # -- handlers --------------------------------------------------------------------------
    async def _healthz(self, request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    async def _container(self, namespace: str, pod: str, container: str, previous: bool,
                         running: bool) -> str:
        found = self.pod_lookup(namespace, pod, container, previous)
        container_id = await found if inspect.isawaitable(found) else found
        try:
            status = await self.driver.inspect_container(container_id)
        except NotFoundError as exc:
            raise container_not_found(container, pod) from exc
        except RuntimeDriverError as exc:
            raise errors.internal(f"inspecting container {container_id}: {exc}") from exc
        if running and status.state is not State.RUNNING:
            raise ContainerLookupError(400, "BadRequest",
                                       f'container "{container}" in pod "{pod}" is not running')
        return container_id

    async def _logs(self, request: Request) -> Response:
        params = request.path_params
        try:
            options = remotecommand.parse_log_options(request.query_params, params["pod"])
            container_id = await self._container(params["namespace"], params["pod"], params["container"],
                                                 options.previous, running=False)
        except errors.ApiError as exc:
            return remotecommand.status_response(exc)
        lines = self.driver.logs(container_id, follow=options.follow, tail=options.tail_lines,
                                 timestamps=options.timestamps, since=options.since(datetime.now(UTC)))
        return StreamingResponse(_limited(lines, options.limit_bytes), media_type="text/plain")

    async def _exec_target(self, path: dict[str, str], query: QueryParams
                           ) -> tuple[remotecommand.ExecOptions, str]:
        options = remotecommand.parse_exec_options(query)
        container_id = await self._container(path["namespace"], path["pod"], path["container"],
                                             False, running=True)
        return options, container_id

    async def _exec_http(self, request: Request) -> Response:
        try:
            await self._exec_target(request.path_params, request.query_params)
        except errors.ApiError as exc:
            return remotecommand.status_response(exc)
        error = errors.bad_request("Upgrade request required")
        return remotecommand.status_response(error)

    async def _exec_websocket(self, ws: WebSocket) -> None:
        try:
            options, container_id = await self._exec_target(ws.path_params, ws.query_params)
            protocol = remotecommand.choose_subprotocol(ws.scope.get("subprotocols") or [])
            if protocol is None:
                raise errors.bad_request(f"unable to upgrade: none of the subprotocols "
                                         f"{', '.join(remotecommand.SUBPROTOCOLS)} was offered")
        except errors.ApiError as exc:
            await remotecommand.deny(ws.scope, ws.receive, ws.send, exc)
            return
        await ws.accept(subprotocol=protocol)
        await execstream.serve(ws, self.driver, container_id, options, protocol)


    async def _pod_address(self, path: dict[str, str]) -> portforward.PodAddress:
        try:
            return await portforward.find_pod(self.driver, path["namespace"], path["pod"], path["uid"])
        except RuntimeDriverError as exc:
            raise errors.internal(f"listing the sandboxes of pod {path['pod']}: {exc}") from exc

    async def _portforward_http(self, request: Request) -> Response:
        try:
            await self._pod_address(request.path_params)
        except errors.ApiError as exc:
            return remotecommand.status_response(exc)
        return remotecommand.status_response(errors.bad_request("Upgrade request required"))

    async def _portforward_websocket(self, ws: WebSocket) -> None:
        try:
            pod = await self._pod_address(ws.path_params)
            if portforward.WEBSOCKET_PROTOCOL not in (ws.scope.get("subprotocols") or []):
                raise errors.bad_request(f"unable to upgrade: the subprotocol {portforward.WEBSOCKET_PROTOCOL} "
                                         "was not offered")
        except errors.ApiError as exc:
            await remotecommand.deny(ws.scope, ws.receive, ws.send, exc)
            return
        await ws.accept(subprotocol=portforward.WEBSOCKET_PROTOCOL)
        await portforward.serve(ws, pod)


async def _limited(lines: AsyncIterator[bytes], limit: int | None) -> AsyncIterator[bytes]:
    """The driver's lines, cut after ``limit`` bytes; always closes the driver's stream."""
    left = limit
    try:
        async for line in lines:
            if left is not None:
                line = line[:left]
                left -= len(line)
            if line:
                yield line
            if left == 0:
                return
    finally:
        close: Callable[[], Awaitable[None]] | None = getattr(lines, "aclose", None)
        if close is not None:
            await close()
