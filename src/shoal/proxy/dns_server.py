"""The DNS wire protocol of cluster DNS: asyncio UDP and TCP servers, answers, forwarding.

:class:`DnsServer` answers each query (dnspython for the wire format):

* a question under the cluster domain is answered from :class:`~shoal.proxy.dns_records.ClusterRecords`
  (authoritative, SOA in the authority section of NXDOMAIN and NODATA answers); before the
  informers have synced (``ready()`` false) it is SERVFAIL, never a wrong NXDOMAIN;
* any other question is forwarded, as received, to the upstream resolvers in order (over the
  transport the client used, :data:`UPSTREAM_TIMEOUT` seconds each) and the first answer is
  relayed; when every upstream fails: SERVFAIL; with no upstream at all: NXDOMAIN at once;
* a message that does not parse: FORMERR when its header can be read, else nothing; an opcode
  other than QUERY: NOTIMP; not exactly one question: FORMERR.

UDP answers larger than the client allows (512 bytes, or its EDNS payload size) are sent
truncated (TC set, no records), so the client retries over TCP.  TCP connections carry any
number of length-prefixed queries, one after the other, and are closed after
:data:`TCP_IDLE_TIMEOUT` idle seconds.  At most :data:`MAX_FORWARDS` forwarded queries are in
flight; beyond that a query gets SERVFAIL at once (bounded memory under a flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from shoal.proxy.dns_records import NXDOMAIN, ClusterRecords, Record

__all__ = ["MAX_FORWARDS", "TCP_IDLE_TIMEOUT", "UPSTREAM_TIMEOUT", "DnsServer", "Upstream"]

log = logging.getLogger(__name__)

#: Seconds one upstream resolver has to answer a forwarded query.
UPSTREAM_TIMEOUT = 2.0
#: Seconds a TCP client may stay silent before the server closes the connection.
TCP_IDLE_TIMEOUT = 10.0
#: Forwarded queries in flight at most.
MAX_FORWARDS = 1000
#: The largest EDNS payload this server announces and honours.
EDNS_PAYLOAD = 1232

#: Parsed records kept (about 1 kB each).
RDATA_CACHE = 16384

#: An upstream resolver: (address, port).
Upstream = tuple[str, int]


@functools.lru_cache(maxsize=RDATA_CACHE)
def _parsed(record: Record) -> tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdata.Rdata]:
    """A record's owner, type and rdata in dnspython's form (parsing text costs ~20 us per
    record, so the answers of names asked again are not parsed again; records are values)."""
    rdtype = dns.rdatatype.from_text(record.rtype)
    return (dns.name.from_text(record.name), rdtype,
            dns.rdata.from_text(dns.rdataclass.IN, rdtype, _absolute_targets(record)))


def _rrset(record: Record) -> dns.rrset.RRset:
    name, rdtype, rdata = _parsed(record)
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
    rrset.add(rdata, record.ttl)
    return rrset


def _absolute_targets(record: Record) -> str:
    """Names inside a record's value are absolute (``example.com.``)."""
    if record.rtype == "CNAME":
        return record.value.rstrip(".") + "."
    if record.rtype == "SRV":
        priority, weight, port, target = record.value.split()
        return f"{priority} {weight} {port} {target.rstrip('.')}."
    if record.rtype == "SOA":
        mname, rname, *numbers = record.value.split()
        return " ".join([mname + ".", rname + ".", *numbers])
    return record.value


def _add(section: list[dns.rrset.RRset], record: Record) -> None:
    rrset = _rrset(record)
    for existing in section:
        if existing.name == rrset.name and existing.rdtype == rrset.rdtype:
            for rdata in rrset:
                existing.add(rdata, record.ttl)
            return
    section.append(rrset)


class DnsServer:
    """Answers DNS queries (see the module docstring); :meth:`answer` is the protocol-free
    core, :meth:`serve_udp` / :meth:`serve_tcp` put it on sockets."""

    def __init__(self, records: ClusterRecords, upstreams: Sequence[Upstream], *,
                 ready: Callable[[], bool] = lambda: True, timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.records = records
        self.upstreams = list(upstreams)
        self.ready = ready
        self.timeout = timeout
        self._forwards = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    # -- answers ----------------------------------------------------------------------------

    def local_answer(self, wire: bytes, max_size: int | None) -> tuple[bytes | None, bool]:
        """(answer, False) for questions this server answers itself, (None, True) for those to
        forward, (None, False) for garbage without a readable header."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _error_from_header(wire, dns.rcode.FORMERR), False
        if query.opcode() != dns.opcode.QUERY:
            return self._render(_response(query, dns.rcode.NOTIMP), query, max_size), False
        if len(query.question) != 1:
            return self._render(_response(query, dns.rcode.FORMERR), query, max_size), False
        question = query.question[0]
        if not self.records.in_domain(question.name.to_text()):
            if not self.upstreams:
                return self._render(_response(query, dns.rcode.NXDOMAIN), query, max_size), False
            return None, True
        if not self.ready():
            return self._render(_response(query, dns.rcode.SERVFAIL), query, max_size), False
        found = self.records.lookup(question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
        response = _response(query, found.rcode)
        response.flags |= dns.flags.AA
        for record in found.answer:
            _add(response.answer, record)
        for record in found.additional:
            _add(response.additional, record)
        if not found.answer or found.rcode == NXDOMAIN:
            _add(response.authority, self.records.soa())
        return self._render(response, query, max_size), False

    def _render(self, response: dns.message.Message, query: dns.message.Message, max_size: int | None) -> bytes:
        limit = 65535 if max_size is None else max(512, min(query.payload if query.edns >= 0 else 512, max_size))
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = _response(query, response.rcode())
            truncated.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
            return truncated.to_wire(max_size=limit)

    async def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The answer to one query message (``None``: send nothing)."""
        local, forward = self.local_answer(wire, None if tcp else EDNS_PAYLOAD)
        if not forward:
            return local
        if self._forwards >= MAX_FORWARDS:
            return _error_from_header(wire, dns.rcode.SERVFAIL)
        self._forwards += 1
        try:
            for upstream in self.upstreams:
                try:
                    send = _forward_tcp if tcp else _forward_udp
                    reply = await asyncio.wait_for(send(upstream, wire), self.timeout)
                except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError) as exc:
                    log.info("upstream %s:%d failed: %r", *upstream, exc)
                    continue
                if reply[:2] == wire[:2]:
                    return reply
                log.info("upstream %s:%d answered another query id", *upstream)
            return _error_from_header(wire, dns.rcode.SERVFAIL)
        finally:
            self._forwards -= 1

    # -- sockets ----------------------------------------------------------------------------

    async def serve_udp(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=sock)
        self._udp = transport

    async def serve_tcp(self, sock: socket.socket) -> None:
        self._tcp = await asyncio.start_server(self._tcp_client, sock=sock)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("DNS query handling failed", exc_info=task.exception())

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    wire = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                reply = await self.answer(wire, tcp=True)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        local, forward = self.server.local_answer(data, EDNS_PAYLOAD)
        if not forward:
            if local is not None and self.transport is not None:
                self.transport.sendto(local, addr)
            return
        self.server.spawn(self._forward(data, addr))

    async def _forward(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = await self.server.answer(data, tcp=False)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.info("DNS UDP socket error: %r", exc)


def _response(query: dns.message.Message, rcode: int) -> dns.message.Message:
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    response.flags |= dns.flags.RA
    response.set_rcode(dns.rcode.Rcode(rcode))
    return response


def _error_from_header(wire: bytes, rcode: int) -> bytes | None:
    """A bare answer with ``rcode`` for a message of which only the header is readable."""
    if len(wire) < 12:
        return None
    query_id, flags = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:
        return None  # a response: never answer those
    answer_flags = 0x8000 | (flags & 0x7900) | 0x0080 | (rcode & 0xF)  # QR, opcode, RD; RA; rcode
    return struct.pack("!HHHHHH", query_id, answer_flags, 0, 0, 0, 0)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _forward_udp(upstream: Upstream, wire: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_UdpClient, remote_addr=upstream)
    try:
        transport.sendto(wire)
        return await protocol.reply
    finally:
        transport.close()


async def _forward_tcp(upstream: Upstream, wire: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
