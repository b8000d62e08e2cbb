"""The API server's ``pods/log`` and ``pods/exec``: find the pod's node and proxy to its agent.

Request path (the Kubernetes design): kubectl → API server (the request pipeline of
:mod:`shoal.api.pipeline`: bearer token, then authorization of ``get`` or ``create`` on
``pods/log`` / ``pods/exec``) → the node agent's HTTPS API (:mod:`shoal.agent.server`) → the
runtime driver.

* Locating (:meth:`PodProxy.locate`), with Kubernetes' errors: the pod (404); the container
  (the ``container`` parameter, else the only one; several → 400 ``a container name must be
  specified for pod x, choose one of: [a b]``; unknown → 400 ``container c is not valid for
  pod x``); the node (``spec.nodeName``; unscheduled → 400 ``pod x does not have a host
  assigned``); the node's address (``status.addresses``: InternalIP first, then ExternalIP,
  then Hostname) and port (``status.daemonEndpoints.kubeletEndpoint.Port``, default 10250).
  Exec into a pod whose phase is Succeeded or Failed is refused (400).
* ``GET …/log``: the agent's ``/containerLogs/{ns}/{pod}/{container}`` streamed through chunk
  by chunk (no read timeout, for ``follow``).  An agent error (e.g. ``container "x" in pod
  "y" is waiting to start: ContainerCreating``) is passed on with its code and Status body.
* ``…/exec`` as a WebSocket (``v5.channel.k8s.io``, or ``v4``): the agent WebSocket is opened
  first with the same subprotocol; if the agent refuses, kubectl's upgrade is refused with the
  agent's status and Status body.  Otherwise both are accepted and frames are relayed both
  ways unchanged until either side closes; the agent's close code is passed on (a client
  that closed first, as kr8s does once it has the exit Status, is not an error).  Pings are
  answered by each WebSocket implementation itself (uvicorn towards kubectl, ``websockets``
  towards the agent), so idle sessions stay up while the relay waits.
* ``…/exec`` as plain HTTP (kubectl's SPDY fallback after a refused WebSocket): relayed to the
  agent's plain-HTTP exec endpoint, which repeats the error or answers 400 "Upgrade request
  required"; so kubectl prints the real reason.
* TLS to the agent is authenticated in one direction only, as Kubernetes does by default
  for apiserver→kubelet.  What IS verified: the agent requires and verifies the API server's
  client certificate (:func:`ensure_agent_client_cert`: signed by the cluster CA, CN
  ``shoal-apiserver``; other CNs get 403).  What is NOT verified: the API server does not
  verify the agent's serving certificate at all (``CERT_NONE``, no host-name check; the
  agent's certificate is self-signed), so a machine that can take over a node's address
  can receive the API server's log and exec traffic for that node's pods.  This is not
  mutual TLS, whatever older notes say.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from shoal.api.bodies import JSON
from shoal.api.handlers import Target
from shoal.api.storage import ObjectStorage
from shoal.kube import errors, remotecommand
from shoal.kube.files import atomic_write
from shoal.kube.objects import Obj
from shoal.resources.registry import Registry, ResourceKind
from shoal.security.pki import ensure_pki

log = logging.getLogger(__name__)

#: The identity the node agents accept (``shoal.agent.server.APISERVER_CLIENT``).
CLIENT_COMMON_NAME = "shoal-apiserver"
CLIENT_GROUPS = ("system:masters",)
SUBRESOURCES = frozenset({"log", "exec"})
DEFAULT_AGENT_PORT = 10250
ADDRESS_PREFERENCE = ("InternalIP", "ExternalIP", "Hostname")
RENEW_BEFORE = dt.timedelta(days=30)
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ClientCert:
    cert_path: Path
    key_path: Path

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that presents this certificate and does not verify the agent."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def ensure_agent_client_cert(data_dir: Path, *, now: dt.datetime | None = None) -> ClientCert:
    """The API server's client certificate for node agents, under ``<data_dir>/tls``.

    ``apiserver-agent-client.crt``/``.key``: CN ``shoal-apiserver``, O ``system:masters``,
    signed by the cluster CA (made by :func:`shoal.security.pki.ensure_pki` if missing).
    Reused while it matches its key, was issued by the current CA, has that CN and is valid
    for more than 30 days; reissued otherwise.
    """
    now = now or dt.datetime.now(dt.UTC)
    pki = ensure_pki(data_dir, [], [])
    tls = pki.ca_cert_path.parent
    cert_path, key_path = tls / "apiserver-agent-client.crt", tls / "apiserver-agent-client.key"
    if not _client_cert_usable(cert_path, key_path, pki.ca_pem, now):
        cert_pem, key_pem = pki.issue_client_cert(CLIENT_COMMON_NAME, list(CLIENT_GROUPS))
        atomic_write(key_path, key_pem, 0o600)
        atomic_write(cert_path, cert_pem, 0o644)
        log.info("issued the API server's client certificate for node agents: %s", cert_path)
    return ClientCert(cert_path, key_path)


def _client_cert_usable(cert_path: Path, key_path: Path, ca_pem: bytes, now: dt.datetime) -> bool:
    if not cert_path.exists() or not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    names = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            == key.public_key().public_bytes(serialization.Encoding.DER, spki)
            and names == [CLIENT_COMMON_NAME] and cert.not_valid_after_utc - now > RENEW_BEFORE)


@dataclass(frozen=True, slots=True)
class AgentTarget:
    """Where a pod's container is served: the agent's host and port, and the names."""

    namespace: str
    pod: str
    container: str
    node: str
    host: str
    port: int

    def url(self, scheme: str, endpoint: str, query: list[tuple[str, str]]) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = "/".join(quote(part, safe="") for part in (endpoint, self.namespace, self.pod, self.container))
        return f"{scheme}://{host}:{self.port}/{path}" + (f"?{urlencode(query)}" if query else "")


def choose_container(pod: Obj, requested: str) -> str:
    """The container a log/exec request means, or a 400 worded as Kubernetes words it."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    if requested:
        every = containers + [str(c.get("name")) for kind in ("initContainers", "ephemeralContainers")
                              for c in spec.get(kind) or []]
        if requested not in every:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise errors.bad_request(f"no containers in pod {name}")
    message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
    init = [str(c.get("name")) for c in spec.get("initContainers") or []]
    if init:
        message += f" or one of the init containers: [{' '.join(init)}]"
    raise errors.bad_request(message)


def node_endpoint(node: Obj) -> tuple[str, int]:
    """``(address, port)`` of a Node's agent API."""
    status = node.get("status") or {}
    addresses = [a for a in status.get("addresses") or [] if isinstance(a, dict)]
    for kind in ADDRESS_PREFERENCE:
        for address in addresses:
            if address.get("type") == kind and address.get("address"):
                port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
                return str(address["address"]), int(port) if port else DEFAULT_AGENT_PORT
    known = ", ".join(f"{a.get('type')}:{a.get('address')}" for a in addresses)
    raise errors.internal(f"no preferred addresses found; known addresses: [{known}]")


class PodProxy:
    def __init__(self, storage: ObjectStorage, registry: Registry, client_cert: ClientCert | None) -> None:
        self.storage = storage
        self.pods = self._kind(registry, "pods")
        self.nodes = self._kind(registry, "nodes")
        self.ssl_context = client_cert.ssl_context() if client_cert is not None else None

    @staticmethod
    def _kind(registry: Registry, plural: str) -> ResourceKind:
        kind = registry.lookup("", "v1", plural)
        if kind is None:
            raise ValueError(f"the registry has no core/v1 {plural}")
        return kind

    def context(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            raise errors.service_unavailable("the API server has no client certificate for node agents")
        return self.ssl_context

    async def locate(self, namespace: str, name: str, container: str, *, for_exec: bool) -> AgentTarget:
        pod = await self.storage.get(self.pods, namespace, name)
        chosen = choose_container(pod, container)
        phase = (pod.get("status") or {}).get("phase")
        if for_exec and phase in ("Succeeded", "Failed"):
            raise errors.bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        host, port = node_endpoint(await self.storage.get(self.nodes, "", node_name))
        return AgentTarget(namespace, name, chosen, node_name, host, port)

    # -- plain HTTP: pods/log, and exec without an upgrade -----------------------------------
    async def handle(self, request: Request, target: Target) -> Response:
        """Serve ``pods/log`` or ``pods/exec`` over plain HTTP (raises ApiError)."""
        if target.subresource == "log":
            if request.method != "GET":
                raise errors.method_not_allowed(f"{request.method} is not supported on pods/log")
            return await self.log(request, target.namespace, target.name)
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(f"{request.method} is not supported on pods/exec")
        options = remotecommand.parse_exec_options(request.query_params)
        agent = await self.locate(target.namespace, target.name, options.container, for_exec=True)
        async with self.client(read_timeout=CONNECT_TIMEOUT) as client:
            answer = await self.send(client, request.method, agent.url("https", "exec", options.to_query()))
            return Response(answer.content, status_code=answer.status_code,
                            media_type=answer.headers.get("content-type", JSON))

    async def log(self, request: Request, namespace: str, name: str) -> Response:
        options = remotecommand.parse_log_options(request.query_params, name)
        agent = await self.locate(namespace, name, options.container, for_exec=False)
        client = self.client(read_timeout=None)
        try:
            upstream = await self.send(client, "GET", agent.url("https", "containerLogs", options.to_query()),
                                        stream=True)
        except BaseException:
            await client.aclose()
            raise
        if upstream.status_code != 200:
            try:
                body = await upstream.aread()
            finally:
                await upstream.aclose()
                await client.aclose()
            return Response(body, status_code=upstream.status_code,
                            media_type=upstream.headers.get("content-type", JSON))

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()
                await client.aclose()

        return StreamingResponse(relay(), media_type="text/plain")

    def client(self, read_timeout: float | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self.context(), trust_env=False,
                                 timeout=httpx.Timeout(CONNECT_TIMEOUT, read=read_timeout))

    @staticmethod
    async def send(client: httpx.AsyncClient, method: str, url: str, *, stream: bool = False) -> httpx.Response:
        try:
            return await client.send(client.build_request(method, url), stream=stream)
        except httpx.HTTPError as exc:
            raise errors.internal(f"error dialing backend: {exc!r}") from exc

    # -- exec over WebSocket -----------------------------------------------------------------
    async def exec_websocket(self, ws: WebSocket) -> None:
        """The WebSocket route ``/api/v1/namespaces/{namespace}/pods/{name}/exec``."""
        agent = await open_or_deny(ws, self._open_agent)
        if agent is None:
            return
        try:
            await ws.accept(subprotocol=agent.subprotocol)
            await relay_websockets(ws, agent, "exec")
        finally:
            await agent.close()

    async def _open_agent(self, ws: WebSocket) -> ClientConnection:
        options = remotecommand.parse_exec_options(ws.query_params)
        protocol = remotecommand.choose_subprotocol(ws.scope.get("subprotocols") or [])
        if protocol is None:
            raise errors.bad_request(f"unable to upgrade: none of the subprotocols "
                                     f"{', '.join(remotecommand.SUBPROTOCOLS)} was offered")
        target = await self.locate(ws.path_params["namespace"], ws.path_params["name"], options.container,
                                   for_exec=True)
        url = target.url("wss", "exec", options.to_query())
        try:
            return await connect(url, ssl=self.context(), subprotocols=[Subprotocol(protocol)],
                                 compression=None, proxy=None, open_timeout=CONNECT_TIMEOUT, max_size=None)
        except InvalidStatus:
            raise
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise errors.internal(f"error dialing backend: {exc!r}") from exc


async def open_or_deny(ws: WebSocket, open_agent: Callable[[WebSocket], Awaitable[ClientConnection]]
                       ) -> ClientConnection | None:
    """The agent's WebSocket for ``ws``; or ``None`` once ``ws`` was refused with our error's
    Status, or with the agent's own status and body when the agent refused."""
    try:
        return await open_agent(ws)
    except errors.ApiError as exc:
        await remotecommand.deny(ws.scope, ws.receive, ws.send, exc)
    except InvalidStatus as exc:
        response = exc.response
        await ws.send_denial_response(Response(
            bytes(response.body or b""), status_code=response.status_code,
            media_type=response.headers.get("Content-Type", JSON)))
    return None


async def relay_websockets(ws: WebSocket, agent: ClientConnection, what: str) -> None:
    """Copy messages both ways until one side closes; then close the other (exec, port-forward)."""
    upstream = asyncio.create_task(_client_to_agent(ws, agent), name=f"{what}-to-agent")
    downstream = asyncio.create_task(_agent_to_client(ws, agent, what), name=f"{what}-to-client")
    done: set[asyncio.Task[None]] = set()
    try:
        done, _ = await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # raises what went wrong
    finally:
        for task in (upstream, downstream):
            task.cancel()
        results = await asyncio.gather(upstream, downstream, return_exceptions=True)
        for task, result in zip((upstream, downstream), results, strict=True):
            # The first to finish was checked above; a late failure of the other is logged.
            if task not in done and isinstance(result, Exception) and not isinstance(
                    result, WebSocketDisconnect | ConnectionClosed):
                log.warning("%s relay: %s", what, result, exc_info=result)


async def _client_to_agent(ws: WebSocket, agent: ClientConnection) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data: Any = message.get("bytes")
        try:
            await agent.send(data if data is not None else message.get("text") or "")
        except ConnectionClosed:
            return  # the agent is done; _agent_to_client passes its close on


async def _agent_to_client(ws: WebSocket, agent: ClientConnection, what: str) -> None:
    try:
        async for message in agent:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_text(message)
    except ConnectionClosed as exc:
        log.warning("node agent closed a %s stream abnormally: %s", what, exc)
        await _close_client(ws, 1011, "node agent connection lost")
        return
    except WebSocketDisconnect:
        return
    code = agent.close_code
    await _close_client(ws, code if code is not None and code not in (1005, 1006) and not 1015 <= code < 3000
                        else 1000)


async def _close_client(ws: WebSocket, code: int, reason: str | None = None) -> None:
    """Pass the agent's close on; a client that closed first (kr8s and httpx-ws close as soon
    as they have the exit Status) has nothing left to receive, so that is not an error."""
    try:
        await ws.close(code, reason)
    except WebSocketDisconnect:
        log.debug("exec client closed before the agent's close (%d) could be passed on", code)

