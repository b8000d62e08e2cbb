"""The hardened HTTPS server: peer certificate in the ASGI scope, and the connection book.

Issue 8 item 9 (connection hygiene).  :class:`~shoal.api.serving.HardenedServer` runs here
in-process on 127.0.0.1 with the cluster PKI's context (client certificate optional); the
book is driven directly with stand-in entries (it only needs an address and ``abort``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets

from shoal.api import connlimits, procres, serving
from shoal.api.authn import PEERCERT_STATE_KEY
from shoal.security.pki import Pki, ensure_pki


async def echo_peer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    cert = scope["state"].get(PEERCERT_STATE_KEY)
    subject = None if cert is None else dict(pair[0] for pair in cert["subject"])
    body = json.dumps({"subject": subject}).encode()
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body.decode()})
        await send({"type": "websocket.close"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Served:
    port: int
    pki: Pki
    tmp: Path
    server: serving.HardenedServer

    def client_context(self, with_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert_path))
        context.check_hostname = False
        if with_cert:
            cert, key = self.pki.issue_client_cert("alice", ["devs"])
            (self.tmp / "alice.crt").write_bytes(cert)
            (self.tmp / "alice.key").write_bytes(key)
            context.load_cert_chain(self.tmp / "alice.crt", self.tmp / "alice.key")
        return context


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    pki = ensure_pki(tmp_path / "data", ["localhost"], [])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(echo_peer, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = serving.HardenedServer(config, pki.ssl_context())
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield Served(port, pki, tmp_path, server)
    finally:
        server.should_exit = True
        await task


async def http_get(served: Served, with_cert: bool) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port, ssl=served.client_context(with_cert))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    result: dict[str, Any] = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return result


async def test_the_verified_client_certificate_reaches_the_http_scope(served: Served) -> None:
    """Issue 8 item 9: the connection's verified peer certificate is in scope["state"]."""
    assert (await http_get(served, with_cert=True))["subject"] == {"commonName": "alice",
                                                                  "organizationName": "devs"}
    assert (await http_get(served, with_cert=False))["subject"] is None


async def test_the_verified_client_certificate_reaches_the_websocket_scope(served: Served) -> None:
    async with websockets.connect(f"wss://127.0.0.1:{served.port}/", ssl=served.client_context(True)) as ws:
        message = json.loads(await ws.recv())
    assert message["subject"]["commonName"] == "alice"


async def test_a_certificate_from_another_ca_fails_the_handshake(served: Served, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other", ["localhost"], [])
    cert, key = other.issue_client_cert("mallory", [])
    (tmp_path / "m.crt").write_bytes(cert)
    (tmp_path / "m.key").write_bytes(key)
    context = served.client_context(False)
    context.load_cert_chain(tmp_path / "m.crt", tmp_path / "m.key")
    async def attempt() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port, ssl=context)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()

    # TLS 1.3: the client finishes first and learns of the refusal on its first read (an
    # alert, or the end of the stream): never an answer.
    try:
        answer = await attempt()
    except (ssl.SSLError, ConnectionError):
        answer = b""
    assert answer == b""


def closed_transports() -> list[asyncio.Transport]:
    """asyncio's socket transports (``selector_events._SelectorSocketTransport``) of this
    process that closed but are still alive."""
    return [obj for obj in gc.get_objects()
            if isinstance(obj, asyncio.Transport) and type(obj).__name__ == "_SelectorSocketTransport"
            and obj.is_closing()]


def blocking_clients(served: Served) -> None:
    """Three clients in plain blocking sockets (no asyncio transports of their own): a request
    and its answer, a TLS connection that sends nothing, a TCP connection that never starts TLS."""
    context = served.client_context(False)
    with socket.create_connection(("127.0.0.1", served.port)) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while tls.recv(65536):
            pass
    with socket.create_connection(("127.0.0.1", served.port)) as raw, \
            context.wrap_socket(raw, server_hostname="localhost"):
        pass
    with socket.create_connection(("127.0.0.1", served.port)):
        pass


async def test_a_closed_connection_is_freed_without_the_collector(served: Served) -> None:
    """Issue 8 item 9: the memory of closed connections returns.  Before Python 3.12 asyncio's
    socket transport is a reference cycle (its read callback); a closed one waited for a full
    collection, and one open when ``shoal server`` froze its heap (``gc.freeze``) was never
    freed: 4,000 connections left 4,000 transports, sockets and dicts behind."""
    gc.collect()
    assert closed_transports() == []
    gc.disable()
    try:
        await asyncio.to_thread(blocking_clients, served)
        book = served.server.book
        assert book is not None
        for _ in range(500):
            if book.total == 0 and not closed_transports():
                break
            await asyncio.sleep(0.01)
        assert book.total == 0
        assert closed_transports() == []
    finally:
        gc.enable()


class CountingHeap(procres.Heap):
    def __init__(self) -> None:
        super().__init__()
        self.releases = 0

    def release(self) -> bool:
        self.releases += 1
        return super().release()


async def test_after_many_closes_the_book_releases_the_heap_and_shrinks_its_tables() -> None:
    """Issue 8 item 9: the book's own sets and dicts keep the size of their high mark (a
    dict never shrinks as entries leave) until the release after the closes rebuilds them."""
    heap = CountingHeap()
    limits = connlimits.ConnectionLimits(per_address=5000, max_connections=5000)
    b = connlimits.ConnectionBook(limits, asyncio.get_running_loop(), heap)
    empty = sys.getsizeof(b.live), sys.getsizeof(b._idle)
    entries = [FakeEntry(f"10.0.0.{i % 4}") for i in range(connlimits.TRIM_AFTER_CLOSES * 4)]
    for entry in entries:
        assert b.admit(entry)
    for entry in entries:
        b.release(entry)
    assert sys.getsizeof(b.live) > empty[0] and heap.releases == 0
    for _ in range(int(connlimits.TRIM_MAX_DEFER * 20)):
        if heap.releases:
            break
        await asyncio.sleep(0.05)
    assert heap.releases == 1 and heap.trims == (1 if heap.glibc else 0)
    assert (sys.getsizeof(b.live), sys.getsizeof(b._idle)) == empty
    assert b.total == 0 and b.per_address == {} and b._idle_by_address == {}


@dataclass(eq=False)
class FakeEntry:
    address: str
    counted: bool = False
    aborted: bool = False

    def abort(self) -> None:
        self.aborted = True


def book(per_address: int = 2, total: int = 3) -> connlimits.ConnectionBook:
    limits = connlimits.ConnectionLimits(per_address=per_address, max_connections=total)
    return connlimits.ConnectionBook(limits, asyncio.get_running_loop())


async def test_the_book_evicts_the_oldest_idle_connection_of_the_address_at_its_cap() -> None:
    b = book()
    first, second, third = FakeEntry("a"), FakeEntry("a"), FakeEntry("a")
    assert b.admit(first) and b.admit(second)
    assert b.admit(third)
    assert first.aborted and not first.counted and not second.aborted
    assert b.per_address == {"a": 2} and b.total == 2


async def test_the_book_never_evicts_a_busy_connection_and_refuses_instead() -> None:
    b = book()
    one, two = FakeEntry("a"), FakeEntry("a")
    assert b.admit(one) and b.admit(two)
    b.busy(one)
    b.busy(two)
    late = FakeEntry("a")
    assert not b.admit(late) and not late.counted
    assert not one.aborted and not two.aborted and b.refused == 1
    b.idle(two)
    assert b.admit(late) and two.aborted


async def test_the_total_cap_evicts_across_addresses_oldest_first() -> None:
    b = book(per_address=10, total=3)
    entries = [FakeEntry(address) for address in ("a", "b", "c")]
    for entry in entries:
        assert b.admit(entry)
    b.idle(entries[0])  # a request just finished on it: now the newest idle one
    assert b.admit(FakeEntry("d"))
    assert entries[1].aborted and not entries[0].aborted
    b.release(entries[1])  # its connection_lost arrives later: a no-op
    assert b.total == 3 and b.per_address == {"a": 1, "c": 1, "d": 1}


def test_limits_are_validated_and_fit_the_fd_limit() -> None:
    with pytest.raises(ValueError, match="header_timeout"):
        connlimits.ConnectionLimits(header_timeout=0)
    with pytest.raises(ValueError, match="per_address"):
        connlimits.ConnectionLimits(per_address=0)
    fitted = connlimits.ConnectionLimits(max_connections=8192).within_fd_limit(1024, backlog=128)
    assert fitted.max_connections == 1024 - 128 - connlimits.FD_RESERVE
