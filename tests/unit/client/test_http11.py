"""The HTTP/1.1 pool and ApiClient's use of it, against a scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager

import orjson
import pytest

from shoal.client import http11, resources
from shoal.client.errors import NotFoundError, TransportError
from shoal.client.rest import ApiClient
from tests.support.wait import eventually

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # -> keep the connection open


class Scripted:
    """A tiny HTTP server: ``reply(request_head_and_body, writer)`` answers each request."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.reply(request, writer):
                    return
        finally:
            writer.close()


@asynccontextmanager
async def serving(reply: Reply) -> AsyncIterator[tuple[Scripted, str]]:
    scripted = Scripted(reply)
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield scripted, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in scripted.writers:
            writer.close()
        await server.wait_closed()


def answer(status: int, body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body


def chunked(*chunks: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    for chunk in chunks:
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


async def echo(request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(200, orjson.dumps({"request": request.decode()})))
    return True


async def test_keep_alive_reuses_one_connection_and_sends_the_fixed_headers() -> None:
    async with serving(echo) as (server, url), ApiClient(url, "secret", user_agent="ua") as client:
        for _ in range(3):
            answered = await client.get(resources.PODS, "p", "ns")
        assert server.connections == 1
        head = answered["request"]
        assert head.startswith("GET /api/v1/namespaces/ns/pods/p HTTP/1.1\r\n")
        assert "Authorization: Bearer secret\r\n" in head and "User-Agent: ua\r\n" in head


async def test_body_params_and_content_type() -> None:
    async with serving(echo) as (server, url), ApiClient(url) as client:
        await client.patch(resources.PODS, "p", {"a": 1}, "ns", field_manager="me x")
        request = server.requests[0].decode()
        assert request.startswith("PATCH /api/v1/namespaces/ns/pods/p?fieldManager=me%20x HTTP/1.1\r\n")
        assert "Content-Type: application/merge-patch+json\r\n" in request
        assert request.endswith('\r\n\r\n{"a":1}')


async def test_concurrent_requests_use_several_connections_then_pool_them() -> None:
    gate = asyncio.Event()

    async def slow(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await gate.wait()
        return await echo(request, writer)

    async with serving(slow) as (server, url), ApiClient(url) as client:
        calls = [asyncio.create_task(client.get(resources.PODS, "p", "ns")) for _ in range(3)]
        await eventually(lambda: len(server.requests) == 3, what="three requests in flight", interval=0.01)
        gate.set()
        await asyncio.gather(*calls)
        await asyncio.gather(*(client.get(resources.PODS, "p", "ns") for _ in range(3)))
        assert server.connections == 3


async def test_connection_close_answer_and_server_side_close_get_a_new_connection() -> None:
    async def close_after(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, b"{}", "connection: close\r\n"))
        return False

    async with serving(close_after) as (server, url), ApiClient(url) as client:
        await client.get(resources.PODS, "p", "ns")
        await asyncio.sleep(0.05)  # the close reaches the client
        await client.get(resources.PODS, "p", "ns")
        assert server.connections == 2


async def test_error_answers_become_typed_errors() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
              "code": 404, "message": "pods \"p\" not found"}

    async def missing(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(404, orjson.dumps(status)))
        return True

    async with serving(missing) as (_, url), ApiClient(url) as client:
        with pytest.raises(NotFoundError, match="not found"):
            await client.get(resources.PODS, "p", "ns")


async def test_transport_failures_raise_transport_error() -> None:
    async def never(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(10)
        return False

    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"NOT HTTP\r\n\r\n")
        return True

    async with serving(never) as (_, url), ApiClient(url, timeout=0.2) as client:
        with pytest.raises(TransportError) as caught:
            await client.get(resources.PODS, "p", "ns")
        assert isinstance(caught.value.__cause__, http11.HttpTransportError)
    async with serving(garbage) as (_, url), ApiClient(url) as client:
        with pytest.raises(TransportError, match="malformed"):
            await client.get(resources.PODS, "p", "ns")
    async with serving(echo) as (_, url):
        pass  # the port is free again: nothing listens
    async with ApiClient(url) as client:
        with pytest.raises(TransportError):
            await client.get(resources.PODS, "p", "ns")


async def test_watch_splits_lines_across_chunks_and_the_connection_is_reused() -> None:
    events = [orjson.dumps({"type": "ADDED", "object": {"metadata": {"name": f"p{i}"}}}) + b"\n" for i in range(3)]
    stream = b"".join(events)

    async def watch(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"watch=true" in request:
            writer.write(chunked(stream[:10], stream[10:70], stream[70:]))
        else:
            writer.write(answer(200, b"{}"))
        return True

    async with serving(watch) as (server, url), ApiClient(url) as client:
        async with aclosing(client.watch(resources.PODS, "ns", resource_version="5")) as seen:
            names = [event.object["metadata"]["name"] async for event in seen]
        assert names == ["p0", "p1", "p2"]
        await client.get(resources.PODS, "p", "ns")
        assert server.connections == 1


async def test_a_watch_closed_early_closes_its_connection() -> None:
    async def endless(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"watch=true" not in request:
            writer.write(answer(200, b"{}"))
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        line = orjson.dumps({"type": "ADDED", "object": {"metadata": {"name": "p"}}}) + b"\n"
        writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        await asyncio.sleep(10)
        return False

    async with serving(endless) as (server, url), ApiClient(url) as client:
        async with aclosing(client.watch(resources.PODS, "ns")) as seen:
            async for event in seen:
                assert event.type == "ADDED"
                break
        await client.get(resources.PODS, "p", "ns")
        assert server.connections == 2
