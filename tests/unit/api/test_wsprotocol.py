"""uvicorn with :class:`shoal.api.wsprotocol.WebSocketProtocol` takes kubectl's port-forward
subprotocol ``SPDY/3.1+portforward.k8s.io`` (not an HTTP token), and still everything else."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from shoal.api.wsprotocol import WebSocketProtocol
from tests.support.server import free_port


async def choose_first(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept with the first offered subprotocol, echo one message, close."""
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    message = await receive()
    await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    await send({"type": "websocket.close", "code": 1000})


@contextlib.asynccontextmanager
async def serving(ws: type[asyncio.Protocol] | str) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(choose_first, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="critical", ws=ws))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn stopped during start-up"
                await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def handshake(port: int, protocols: str) -> tuple[bytes, bytes]:
    """The 101 response head and the echo of a masked binary message (b"" if refused)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Protocol: {protocols}\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            return head, b""
        mask = os.urandom(4)
        payload = b"\x80\x03\x00\x06"
        writer.write(bytes([0x82, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        first = await reader.readexactly(2)
        return head, await reader.readexactly(first[1] & 0x7F)
    finally:
        writer.close()


@pytest.mark.parametrize("offered", ["SPDY/3.1+portforward.k8s.io", "v5.channel.k8s.io, v4.channel.k8s.io"])
async def test_subprotocols_reach_the_application_and_the_response(offered: str) -> None:
    async with serving(WebSocketProtocol) as port:
        head, echo = await handshake(port, offered)
    assert head.startswith(b"HTTP/1.1 101")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if line)
    assert {k.lower(): v for k, v in headers.items()}["sec-websocket-protocol"] == offered.split(",")[0]
    assert echo == b"\x80\x03\x00\x06"


async def test_plain_uvicorn_refuses_the_non_token_subprotocol() -> None:
    # Why the module exists: the stock protocol answers 400 before the application runs.
    async with serving("websockets-sansio") as port:
        head, _ = await handshake(port, "SPDY/3.1+portforward.k8s.io")
    assert head.startswith(b"HTTP/1.1 400")
