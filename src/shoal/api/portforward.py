"""The API server's ``pods/portforward``: kubectl's tunnel relayed to the pod's node agent.

kubectl 1.32 (feature PortForwardWebsockets, on by default; KEP-4006) opens a WebSocket on
``/api/v1/namespaces/{ns}/pods/{name}/portforward`` with subprotocol
``SPDY/3.1+portforward.k8s.io``: SPDY/3.1 frames as a byte stream inside binary messages.
For ``kubectl port-forward svc/NAME`` kubectl resolves the Service to one of its pods
itself, so this is the only server side there is.

* The subprotocol is not an HTTP token; :mod:`shoal.api.wsprotocol` lets the handshake take it.
* The upgrade is authorized like any request (a WebSocket is a GET: verb ``get`` on
  ``pods/portforward``, as kube-apiserver 1.32 does; the plain POST is ``create``).
* Locating: the pod (404 as usual), its node (``spec.nodeName``; unscheduled → 400), the
  node's agent endpoint (:func:`shoal.api.podproxy.node_endpoint`).
* The agent's ``/portForward/{ns}/{pod}/{uid}`` WebSocket is opened first (subprotocol
  :data:`AGENT_PROTOCOL`), with the API server's client certificate; if the agent refuses (no running
  sandbox: 404), kubectl's upgrade is refused with the agent's status and Status body.
  Otherwise both are accepted and messages are relayed unchanged both ways
  (:func:`shoal.api.podproxy.relay_websockets`): the agent terminates SPDY, so any number of
  forwarded connections and transfers of any size share the one tunnel with nothing
  buffered here beyond a message.
* Plain HTTP (kubectl's SPDY fallback, ``Upgrade: SPDY/3.1``, taken only when the WebSocket
  upgrade failed): uvicorn cannot hand over the raw connection, so SPDY itself is not
  served; the answer is the locating error, else the agent's, else 400 naming the
  subprotocol to use.  kubectl prints it after "error upgrading connection".
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from shoal.api.bodies import JSON
from shoal.api.podproxy import CONNECT_TIMEOUT, PodProxy, node_endpoint, open_or_deny, relay_websockets
from shoal.kube import errors

log = logging.getLogger(__name__)

SUBRESOURCE = "portforward"
WEBSOCKET_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
#: The same stream towards the agent, under a name that is an HTTP token
#: (``shoal.agent.portforward.WEBSOCKET_PROTOCOL``; api does not import agent).
AGENT_PROTOCOL = "spdy3.1-portforward.shoal"


class PortForwardProxy:
    def __init__(self, proxy: PodProxy) -> None:
        self.proxy = proxy

    async def agent_url(self, scheme: str, namespace: str, name: str) -> str:
        """The agent URL of the pod's port-forward endpoint (raises ApiError)."""
        pod = await self.proxy.storage.get(self.proxy.pods, namespace, name)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        host, port = node_endpoint(await self.proxy.storage.get(self.proxy.nodes, "", node_name))
        host = f"[{host}]" if ":" in host else host
        path = "/".join(quote(str(part), safe="") for part in (namespace, name, pod["metadata"].get("uid", "")))
        return f"{scheme}://{host}:{port}/portForward/{path}"

    async def handle(self, request: Request, namespace: str, name: str) -> Response:
        """Plain HTTP on ``pods/portforward`` (no WebSocket): the reason it cannot be served."""
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(f"{request.method} is not supported on pods/portforward")
        url = await self.agent_url("https", namespace, name)
        async with self.proxy.client(read_timeout=CONNECT_TIMEOUT) as client:
            answer = await self.proxy.send(client, "GET", url)
        if answer.status_code != 400:
            return Response(answer.content, status_code=answer.status_code,
                            media_type=answer.headers.get("content-type", JSON))
        raise errors.bad_request(f"Upgrade request required: this server serves port-forward only over a "
                                 f"WebSocket with subprotocol {WEBSOCKET_PROTOCOL} (kubectl 1.30 or later)")

    async def websocket(self, ws: WebSocket) -> None:
        """The WebSocket route ``/api/v1/namespaces/{namespace}/pods/{name}/portforward``."""
        agent = await open_or_deny(ws, self._open_agent)
        if agent is None:
            return
        try:
            await ws.accept(subprotocol=WEBSOCKET_PROTOCOL)
            await relay_websockets(ws, agent, "port-forward")
        finally:
            await agent.close()

    async def _open_agent(self, ws: WebSocket) -> ClientConnection:
        if WEBSOCKET_PROTOCOL not in (ws.scope.get("subprotocols") or []):
            raise errors.bad_request(f"unable to upgrade: the subprotocol {WEBSOCKET_PROTOCOL} was not offered")
        url = await self.agent_url("wss", ws.path_params["namespace"], ws.path_params["name"])
        try:
            return await connect(url, ssl=self.proxy.context(), subprotocols=[Subprotocol(AGENT_PROTOCOL)],
                                 compression=None, proxy=None, open_timeout=CONNECT_TIMEOUT, max_size=None)
        except InvalidStatus:
            raise
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise errors.internal(f"error dialing backend: {exc!r}") from exc
