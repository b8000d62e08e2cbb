"""uvicorn's WebSocket protocol, taking subprotocol names that are not HTTP tokens.

kubectl 1.32's port-forward offers the subprotocol ``SPDY/3.1+portforward.k8s.io`` (KEP-4006).
``/`` is not a token character (RFC 9110 §5.6.2), so the ``websockets`` library's handshake
refuses the request with 400 "invalid Sec-WebSocket-Protocol header" before the application
sees it -- and kubectl falls back to SPDY, which uvicorn cannot serve.  Go's WebSocket
servers (kube-apiserver's) take any comma-separated value.

:class:`WebSocketProtocol` is uvicorn's ``websockets-sansio`` protocol whose handshake skips
that parsing.  Nothing else changes: uvicorn never gives ``websockets`` a list of
subprotocols, so ``websockets`` selected none before either; uvicorn itself splits the header
on commas into ``scope["subprotocols"]`` and puts the application's choice into the 101
response.  Serve the API with ``uvicorn.Config(..., ws=WebSocketProtocol)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol


class _ServerProtocol(ServerProtocol):
    def process_subprotocol(self, headers: Headers) -> Subprotocol | None:
        return None  # the application chooses (uvicorn passes the header on unparsed)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        made = self.conn
        self.conn = _ServerProtocol(extensions=made.available_extensions,
                                    max_size=(made.max_message_size, made.max_fragment_size), logger=made.logger)
