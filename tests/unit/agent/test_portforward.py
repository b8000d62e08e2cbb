"""The agent's port-forward over a SPDY server session, driven as kubectl drives it.

A client-side :class:`~shoal.kube.spdy.Codec` plays kubectl over an in-memory transport;
the pod is a real TCP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from shoal.agent.portforward import Forwarder, PodAddress, parse_port
from shoal.kube import spdy
from shoal.kube.spdysession import ServerSession


class Client:
    """kubectl's end: frames out through the session's receive(), frames back from its send()."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.codec = spdy.Codec()
        self.to_server: asyncio.Queue[bytes] = asyncio.Queue()
        self.from_server: asyncio.Queue[spdy.Frame] = asyncio.Queue()
        self.server_codec = spdy.Codec()
        self.session = ServerSession(self.to_server.get, self._receive_from_server, forwarder.on_stream,
                                     stream_buffer=64 * 1024)
        forwarder.attach(self.session)
        self.next_id = 1
        self.frames: dict[int, list[spdy.Frame]] = {}
        self.others: list[spdy.Frame] = []
        self.arrived = asyncio.Event()

    async def _receive_from_server(self, data: bytes) -> None:
        for frame in self.server_codec.feed(data):
            stream_id = getattr(frame, "stream_id", None)
            if stream_id is None:
                self.others.append(frame)
            else:
                self.frames.setdefault(stream_id, []).append(frame)
            self.arrived.set()

    def send(self, frame: spdy.Frame) -> None:
        self.to_server.put_nowait(self.codec.encode(frame))

    def open(self, headers: dict[str, str]) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        self.send(spdy.SynStream(stream_id, {k: [v] for k, v in headers.items()}))
        return stream_id

    def pair(self, port: int, request: int) -> tuple[int, int]:
        error = self.open({"streamtype": "error", "port": str(port), "requestid": str(request)})
        self.send(spdy.Data(error, b"", spdy.FLAG_FIN))  # kubectl closes its half of the error stream
        data = self.open({"streamtype": "data", "port": str(port), "requestid": str(request)})
        return error, data

    async def until(self, check: object, within: float = 10) -> None:
        assert callable(check)
        async with asyncio.timeout(within):
            while not check():
                self.arrived.clear()
                await self.arrived.wait()

    def received(self, stream_id: int) -> bytes:
        return b"".join(f.data for f in self.frames.get(stream_id, []) if isinstance(f, spdy.Data))

    def finished(self, stream_id: int) -> bool:
        return any(isinstance(f, spdy.Data) and f.fin for f in self.frames.get(stream_id, []))

    def kinds(self, stream_id: int) -> list[type]:
        return [type(f) for f in self.frames.get(stream_id, [])]


@contextlib.asynccontextmanager
async def running(forwarder: Forwarder) -> AsyncIterator[Client]:
    client = Client(forwarder)
    task = asyncio.create_task(client.session.run())
    try:
        yield client
    finally:
        client.to_server.put_nowait(b"")  # the transport ends
        await asyncio.wait_for(task, 10)


class Ends(list[str]):
    """How the pod's connections ended ("eof" or "reset"), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, how: str) -> None:
        super().append(how)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self) < count:
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[int, Ends]]:
    """A TCP server that echoes each connection until EOF, then closes; records how each ended."""
    ends = Ends()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            ends.append("eof")
        except ConnectionError:
            ends.append("reset")
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], ends
    finally:
        server.close()
        await server.wait_closed()


def pod() -> Forwarder:
    return Forwarder(PodAddress("ns", "web", "uid-1", "127.0.0.1"), connect_timeout=5)


async def test_one_connection_echoes_and_closes_cleanly() -> None:
    async with echo_server() as (port, ends), running(pod()) as client:
        error, data = client.pair(port, 0)
        client.send(spdy.Data(data, b"hello"))
        await client.until(lambda: client.received(data) == b"hello")
        assert client.kinds(error)[0] is spdy.SynReply and client.kinds(data)[0] is spdy.SynReply
        client.send(spdy.Data(data, b"", spdy.FLAG_FIN))  # the local client closed: the pod sees EOF
        await client.until(lambda: client.finished(data) and client.finished(error))
        assert client.received(error) == b""  # no error: kubectl's clean end
        assert ends == ["eof"]


async def test_concurrent_connections_and_a_large_transfer_stay_intact() -> None:
    big = os.urandom(1024 * 1024 + 7)
    async with echo_server() as (port, _), running(pod()) as client:
        streams = [client.pair(port, request) for request in range(6)]
        for offset in range(0, len(big), 32 * 1024):  # kubectl writes 32 KiB frames, interleaved
            for index, (_, data) in enumerate(streams):
                piece = big[offset:offset + 32 * 1024] if index == 0 else f"{index}:{offset};".encode()
                client.send(spdy.Data(data, piece))
        for _, data in streams:
            client.send(spdy.Data(data, b"", spdy.FLAG_FIN))
        await client.until(lambda: all(client.finished(d) and client.finished(e) for e, d in streams), 30)
        assert client.received(streams[0][1]) == big
        for index, (error, data) in enumerate(streams[1:], start=1):
            expected = b"".join(f"{index}:{offset};".encode() for offset in range(0, len(big), 32 * 1024))
            assert client.received(data) == expected and client.received(error) == b""
        assert max(len(f.data) for f in client.frames[streams[0][1]] if isinstance(f, spdy.Data)) <= 64 * 1024


async def test_a_refused_connection_is_reported_on_the_error_stream() -> None:
    async with echo_server() as (port, _):
        pass  # closed: nothing listens there now
    async with running(pod()) as client:
        error, data = client.pair(port, 0)
        await client.until(lambda: client.finished(error) and client.finished(data))
        assert client.received(error).decode() == (
            f"error forwarding port {port} to pod ns/web, uid uid-1: dial tcp 127.0.0.1:{port}: "
            "connect: connection refused")


async def test_a_reset_data_stream_closes_the_pod_connection() -> None:
    async with echo_server() as (port, ends), running(pod()) as client:
        _, data = client.pair(port, 0)
        client.send(spdy.Data(data, b"ping"))
        await client.until(lambda: client.received(data) == b"ping")
        client.send(spdy.RstStream(data, spdy.CANCEL))
        await ends.wait_for(1)
        assert ends == ["eof"]


async def test_the_pod_closing_first_ends_the_forward() -> None:
    async def answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_and_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with running(pod()) as client:
            error, data = client.pair(port, 0)
            await client.until(lambda: client.finished(data) and client.finished(error))
            assert client.received(data) == b"bye" and client.received(error) == b""
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("headers", [
    {"streamtype": "data", "requestid": "0"},  # no port
    {"streamtype": "data", "port": "0", "requestid": "0"},
    {"streamtype": "data", "port": "65536", "requestid": "0"},
    {"streamtype": "bogus", "port": "80", "requestid": "0"},
    {"port": "80", "requestid": "0"},
])
async def test_streams_with_bad_headers_are_refused(headers: dict[str, str]) -> None:
    async with running(pod()) as client:
        stream = client.open(headers)
        await client.until(lambda: bool(client.frames.get(stream)))
        assert client.frames[stream] == [spdy.RstStream(stream, spdy.CANCEL)]


async def test_a_second_stream_of_one_type_is_refused() -> None:
    async with running(pod()) as client:
        first = client.open({"streamtype": "error", "port": "80", "requestid": "9"})
        second = client.open({"streamtype": "error", "port": "80", "requestid": "9"})
        await client.until(lambda: bool(client.frames.get(first)) and bool(client.frames.get(second)))
        assert client.kinds(first) == [spdy.SynReply]
        assert client.frames[second] == [spdy.RstStream(second, spdy.CANCEL)]


async def test_session_rules_ids_pings_goaway() -> None:
    async with running(pod()) as client:
        client.send(spdy.SynStream(2, {"streamtype": ["error"], "port": ["80"]}))  # even: the server's ids
        client.send(spdy.Ping(7))
        client.send(spdy.Settings(((0, 7, 65536),)))
        client.send(spdy.WindowUpdate(0, 1000))
        client.send(spdy.Data(99, b"for nobody"))
        client.send(spdy.GoAway(0))
        client.send(spdy.SynStream(5, {"streamtype": ["error"], "port": ["80"]}))
        await client.until(lambda: 2 in client.frames and 5 in client.frames and client.others)
        assert client.frames[2] == [spdy.RstStream(2, spdy.PROTOCOL_ERROR)]
        assert client.frames[5] == [spdy.RstStream(5, spdy.REFUSED_STREAM)]
        assert client.others == [spdy.Ping(7)]
        assert 99 not in client.frames


async def test_an_unpaired_stream_times_out_with_an_error() -> None:
    forwarder = Forwarder(PodAddress("ns", "web", "uid-1", "127.0.0.1"), pair_timeout=0.05)
    async with running(forwarder) as client:
        error = client.open({"streamtype": "error", "port": "80", "requestid": "3"})
        await client.until(lambda: client.finished(error))
        assert client.received(error) == b"timed out waiting for the streams of request 3"
        assert forwarder.pairs == {}


async def test_a_protocol_error_ends_the_session_with_goaway() -> None:
    forwarder = pod()
    client = Client(forwarder)
    task = asyncio.create_task(client.session.run())
    client.to_server.put_nowait(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # SPDY/2
    await asyncio.wait_for(task, 5)
    assert client.others == [spdy.GoAway(0, spdy.GOAWAY_PROTOCOL_ERROR)]


async def test_the_end_of_the_transport_closes_every_pod_connection() -> None:
    async with echo_server() as (port, ends):
        async with running(pod()) as client:
            streams = [client.pair(port, request) for request in range(3)]
            for _, data in streams:
                client.send(spdy.Data(data, b"x"))
            await client.until(lambda: all(client.received(d) == b"x" for _, d in streams))
        await ends.wait_for(3)


def test_parse_port_takes_what_the_kubelet_takes() -> None:
    assert [parse_port(v) for v in ("1", "80", "65535", "0", "65536", "-1", "+80", " 80", "8O", "")] == [
        1, 80, 65535, None, None, None, None, None, None, None]
