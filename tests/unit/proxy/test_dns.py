"""Cluster DNS (issue 9 item 4) against the real in-process API, over real UDP and TCP sockets.

One :class:`~shoal.proxy.dns.ClusterDns` listens on ``127.0.0.1:<free port>`` and is fed by its
informers from the API harness; Services, EndpointSlices and Pods are created through the API
(the EndpointSlices by the test, as a user of a selector-less Service would).  Names outside
the domain go to a second, real DNS server on 127.0.0.1 acting as the node's upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from shoal.proxy.dns import ClusterDns, DnsConfig, kube_dns_service, node_upstreams, parse_listen
from shoal.proxy.dns_records import ClusterRecords
from shoal.proxy.dns_server import DnsServer
from tests.support.api_harness import ApiHarness

pytestmark = pytest.mark.timeout(30)


def service(name: str, namespace: str = "default", *, cluster_ip: str | None = None,
            ports: list[Obj] | None = None, **spec: object) -> Obj:
    body: Obj = {"ports": ports or [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}], **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": body}


def endpoint_slice(name: str, service_name: str, endpoints: list[Obj], namespace: str = "default",
                   ports: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


async def pod_with_ip(client: ApiClient, name: str, ip: str, namespace: str = "default", **spec: object) -> Obj:
    await client.create(resources.PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}})
    return await client.patch(resources.PODS, name, {"status": {"podIP": ip, "podIPs": [{"ip": ip}]}},
                              namespace, subresource="status")


class StaticCaches:
    """The upstream's records: one Service ``www`` in namespace ``ext`` of ``upstream.test``."""

    def service(self, namespace: str, name: str) -> Obj | None:
        return service("www", "ext", cluster_ip="192.0.2.7") if (namespace, name) == ("ext", "www") else None

    def has_services(self, namespace: str) -> bool:
        return namespace == "ext"

    def slices(self, namespace: str, service: str) -> list[Obj]:
        return []

    def pods_with_ip(self, ip: str) -> list[Obj]:
        return []

    def pod(self, namespace: str, name: str) -> Obj | None:
        return None


@contextlib.asynccontextmanager
async def upstream_server() -> AsyncIterator[tuple[str, int]]:
    """A real DNS server on 127.0.0.1 that knows ``www.ext.svc.upstream.test``."""
    from shoal.proxy import dns_netns

    server = DnsServer(ClusterRecords(StaticCaches(), "upstream.test"), [])
    bound = dns_netns.bind_sockets("127.0.0.1", 0, add_address=False)
    try:
        await server.serve_udp(bound.udp)
        await server.serve_tcp(bound.tcp)
        yield "127.0.0.1", int(bound.udp.getsockname()[1])
    finally:
        await server.close()
        bound.udp.close()
        bound.tcp.close()


@contextlib.asynccontextmanager
async def cluster_dns(client: ApiClient, **options: object) -> AsyncIterator[ClusterDns]:
    config = DnsConfig(listen="127.0.0.1:0", add_address=False, **options)  # type: ignore[arg-type]
    component = ClusterDns(client, config)
    stop = asyncio.Event()
    task = asyncio.create_task(component.run(stop))
    try:
        await asyncio.wait_for(component.serving.wait(), 5)
        deadline = time.monotonic() + 5
        while not component.caches.synced():
            assert time.monotonic() < deadline, "the DNS informers did not sync"
            await asyncio.sleep(0.01)
        yield component
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def ask(dns_: ClusterDns, name: str, rtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
    assert dns_.bound is not None
    host, port = dns_.bound
    query = dns.message.make_query(name, rtype)
    if tcp:
        return await dns.asyncquery.tcp(query, host, port=port, timeout=3)
    return await dns.asyncquery.udp(query, host, port=port, timeout=3)


def addresses(message: dns.message.Message, rtype: str = "A") -> list[str]:
    return sorted(r.to_text() for rrset in message.answer if rrset.rdtype == dns.rdatatype.from_text(rtype)
                  for r in rrset)


async def eventually(dns_: ClusterDns, name: str, expected: list[str], rtype: str = "A") -> dns.message.Message:
    """Ask until the answer is ``expected`` (the informers lag the API a little)."""
    deadline = time.monotonic() + 5
    while True:
        reply = await ask(dns_, name, rtype)
        if addresses(reply, rtype) == expected:
            return reply
        assert time.monotonic() < deadline, f"{name} {rtype}: {addresses(reply, rtype)}, not {expected}"
        await asyncio.sleep(0.02)


async def test_service_names_resolve_over_udp_and_tcp(harness: ApiHarness, harness_client: ApiClient) -> None:
    """A ClusterIP Service answers with its ClusterIP; unknown names are NXDOMAIN with the SOA;
    another type on an existing name is NODATA (NOERROR, no answer)."""
    web = await harness_client.create(resources.SERVICES, service("web", cluster_ip="10.43.5.5"))
    assert web["spec"]["clusterIP"] == "10.43.5.5"
    async with cluster_dns(harness_client, upstreams=[]) as server:
        reply = await eventually(server, "web.default.svc.cluster.local", ["10.43.5.5"])
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert reply.answer[0].ttl == 5
        tcp = await ask(server, "WEB.default.svc.cluster.local.", tcp=True)
        assert addresses(tcp) == ["10.43.5.5"], "over TCP too, names compared without case"

        missing = await ask(server, "nope.default.svc.cluster.local")
        assert missing.rcode() == dns.rcode.NXDOMAIN and not missing.answer
        assert missing.authority and missing.authority[0].rdtype == dns.rdatatype.SOA
        for name in ("x.y.z.default.svc.cluster.local", "default.pod.cluster.local.extra.cluster.local",
                     "web.nowhere.svc.cluster.local", "nowhere.svc.cluster.local", "other.cluster.local"):
            assert (await ask(server, name)).rcode() == dns.rcode.NXDOMAIN, name

        for name, rtype in (("web.default.svc.cluster.local", "AAAA"), ("default.svc.cluster.local", "A"),
                            ("svc.cluster.local", "A"), ("cluster.local", "A")):
            nodata = await ask(server, name, rtype)
            assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer, (name, rtype)
        soa = await ask(server, "cluster.local", "SOA")
        assert soa.answer and soa.answer[0].rdtype == dns.rdatatype.SOA

        await harness_client.delete(resources.SERVICES, "web", "default")
        deadline = time.monotonic() + 5
        while (await ask(server, "web.default.svc.cluster.local")).rcode() != dns.rcode.NXDOMAIN:
            assert time.monotonic() < deadline, "a deleted Service must stop resolving"
            await asyncio.sleep(0.02)


async def test_headless_service_answers_ready_endpoints_and_hostnames(harness: ApiHarness,
                                                                       harness_client: ApiClient) -> None:
    """Headless: the ready endpoint addresses (not the unready one), hostname.subdomain names
    from the endpoint's hostname or its Pod's spec, dashed-address names, SRV per endpoint."""
    await harness_client.create(resources.SERVICES, service("db", cluster_ip="None"))
    await pod_with_ip(harness_client, "db-0", "10.42.0.11", hostname="db-0", subdomain="db")
    await harness_client.create(resources.ENDPOINTSLICES, endpoint_slice("db-abc", "db", [
        {"addresses": ["10.42.0.10"], "conditions": {"ready": True}, "hostname": "primary"},
        {"addresses": ["10.42.0.11"], "conditions": {"ready": True},
         "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-0"}},
        {"addresses": ["10.42.0.12"]},  # ready unset: ready
        {"addresses": ["10.42.0.13"], "conditions": {"ready": False}},
    ]))
    async with cluster_dns(harness_client, upstreams=[]) as server:
        await eventually(server, "db.default.svc.cluster.local", ["10.42.0.10", "10.42.0.11", "10.42.0.12"])
        assert addresses(await ask(server, "primary.db.default.svc.cluster.local")) == ["10.42.0.10"]
        assert addresses(await ask(server, "db-0.db.default.svc.cluster.local")) == ["10.42.0.11"]
        assert addresses(await ask(server, "10-42-0-12.db.default.svc.cluster.local")) == ["10.42.0.12"]
        unready = await ask(server, "10-42-0-13.db.default.svc.cluster.local")
        assert unready.rcode() == dns.rcode.NXDOMAIN, "an unready endpoint has no name"

        srv = await ask(server, "_http._tcp.db.default.svc.cluster.local", "SRV")
        targets = sorted(r.to_text() for rrset in srv.answer for r in rrset)
        assert targets == ["0 33 8080 10-42-0-12.db.default.svc.cluster.local.",
                           "0 33 8080 db-0.db.default.svc.cluster.local.",
                           "0 33 8080 primary.db.default.svc.cluster.local."]
        glue = sorted(r.to_text() for rrset in srv.additional if rrset.rdtype == dns.rdatatype.A for r in rrset)
        assert glue == ["10.42.0.10", "10.42.0.11", "10.42.0.12"]

        await harness_client.patch(resources.ENDPOINTSLICES, "db-abc", {"endpoints": [
            {"addresses": ["10.42.0.10"], "conditions": {"ready": False}, "hostname": "primary"}]}, "default")
        empty = await eventually(server, "db.default.svc.cluster.local", [])
        assert empty.rcode() == dns.rcode.NOERROR, "a headless Service without ready endpoints exists"


async def test_srv_for_named_ports_and_external_name(harness: ApiHarness, harness_client: ApiClient) -> None:
    await harness_client.create(resources.SERVICES, service("api", cluster_ip="10.43.7.7", ports=[
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]))
    await harness_client.create(resources.SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "www.example.org"}})
    async with cluster_dns(harness_client, upstreams=[]) as server:
        await eventually(server, "api.default.svc.cluster.local", ["10.43.7.7"])
        srv = await ask(server, "_https._tcp.api.default.svc.cluster.local", "SRV")
        assert [r.to_text() for rrset in srv.answer for r in rrset] == ["0 100 443 api.default.svc.cluster.local."]
        assert [r.to_text() for rrset in srv.additional for r in rrset] == ["10.43.7.7"]
        udp = await ask(server, "_dns._udp.api.default.svc.cluster.local", "SRV")
        assert [r.to_text() for rrset in udp.answer for r in rrset] == ["0 100 53 api.default.svc.cluster.local."]
        wrong = await ask(server, "_dns._tcp.api.default.svc.cluster.local", "SRV")
        assert wrong.rcode() == dns.rcode.NXDOMAIN, "the dns port is UDP, not TCP"
        every = await ask(server, "api.default.svc.cluster.local", "SRV")
        assert sorted(r.to_text() for rrset in every.answer for r in rrset) == [
            "0 100 443 api.default.svc.cluster.local.", "0 100 53 api.default.svc.cluster.local."]

        cname = await ask(server, "ext.default.svc.cluster.local")
        assert [r.to_text() for rrset in cname.answer for r in rrset] == ["www.example.org."]


async def test_pod_records_are_verified(harness: ApiHarness, harness_client: ApiClient) -> None:
    """``1-2-3-4.ns.pod.cluster.local`` answers only when a Pod of ``ns`` has that IP."""
    await harness.create_namespace("team")
    await pod_with_ip(harness_client, "p", "10.42.1.9", namespace="team")
    async with cluster_dns(harness_client, upstreams=[]) as server:
        await eventually(server, "10-42-1-9.team.pod.cluster.local", ["10.42.1.9"])
        assert (await ask(server, "10-42-1-9.default.pod.cluster.local")).rcode() == dns.rcode.NXDOMAIN
        assert (await ask(server, "10-42-1-8.team.pod.cluster.local")).rcode() == dns.rcode.NXDOMAIN
        assert (await ask(server, "not-an-ip.team.pod.cluster.local")).rcode() == dns.rcode.NXDOMAIN


async def test_other_names_are_forwarded_to_the_upstream(harness: ApiHarness, harness_client: ApiClient) -> None:
    """Outside the cluster domain: the upstream's answer, over UDP and TCP; a dead upstream is
    skipped for the next one; no upstream at all: NXDOMAIN at once; dead ones only: SERVFAIL."""
    async with upstream_server() as upstream:
        dead = ("127.0.0.1", 9)  # discard port: nothing answers DNS there
        async with cluster_dns(harness_client, upstreams=[dead, upstream], upstream_timeout=0.3) as server:
            for tcp in (False, True):
                reply = await ask(server, "www.ext.svc.upstream.test", tcp=tcp)
                assert addresses(reply) == ["192.0.2.7"], tcp
            missing = await ask(server, "nope.ext.svc.upstream.test")
            assert missing.rcode() == dns.rcode.NXDOMAIN, "the upstream's NXDOMAIN is relayed"
    async with cluster_dns(harness_client, upstreams=[]) as server:
        began = time.monotonic()
        reply = await ask(server, "www.example.org")
        assert reply.rcode() == dns.rcode.NXDOMAIN and time.monotonic() - began < 0.5
    async with cluster_dns(harness_client, upstreams=[("127.0.0.1", 9)], upstream_timeout=0.2) as server:
        reply = await ask(server, "www.example.org")
        assert reply.rcode() == dns.rcode.SERVFAIL


async def test_malformed_and_truncated(harness: ApiHarness, harness_client: ApiClient) -> None:
    """Garbage with a header gets FORMERR; a UDP answer too large for 512 bytes is truncated
    (TC) and complete over TCP."""
    endpoints = [{"addresses": [f"10.42.3.{i}"]} for i in range(1, 61)]
    await harness_client.create(resources.SERVICES, service("big", cluster_ip="None"))
    await harness_client.create(resources.ENDPOINTSLICES, endpoint_slice("big-1", "big", endpoints))
    async with cluster_dns(harness_client, upstreams=[]) as server:
        assert server.bound is not None
        loop = asyncio.get_running_loop()
        reply_future: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                reply_future.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=server.bound)
        try:
            transport.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff")
            raw = await asyncio.wait_for(reply_future, 3)
        finally:
            transport.close()
        assert raw[:2] == b"\x12\x34" and raw[3] & 0xF == dns.rcode.FORMERR

        deadline = time.monotonic() + 5
        while True:
            query = dns.message.make_query("big.default.svc.cluster.local", "A", use_edns=False)
            small = await dns.asyncquery.udp(query, server.bound[0], port=server.bound[1], timeout=3,
                                             ignore_trailing=True)
            if small.flags & dns.flags.TC:
                break
            assert time.monotonic() < deadline, "60 addresses do not fit 512 bytes"
            await asyncio.sleep(0.02)
        assert not small.answer
        full = await ask(server, "big.default.svc.cluster.local", tcp=True)
        assert len(addresses(full)) == 60


async def test_not_ready_before_the_informers_sync(harness_client: ApiClient) -> None:
    """Before the caches are synced an in-domain question is SERVFAIL, never a false NXDOMAIN."""
    component = ClusterDns(harness_client, DnsConfig(listen="127.0.0.1:0", add_address=False, upstreams=[]))
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    wire, forward = component.server.local_answer(query.to_wire(), 512)
    assert not forward and wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL


def test_node_upstreams_and_config(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# node\nsearch example.org\nnameserver 10.43.0.10\nnameserver 192.0.2.53 # office\n"
                      "nameserver 198.51.100.1\nnameserver 192.0.2.53\noptions ndots:1\n")
    assert node_upstreams(resolv, {"10.43.0.10"}) == [("192.0.2.53", 53), ("198.51.100.1", 53)]
    assert node_upstreams(tmp_path / "missing", ()) == []
    assert parse_listen("10.43.0.10:53") == ("10.43.0.10", 53)
    assert parse_listen("[::1]:5353") == ("::1", 5353)
    for bad in ("10.43.0.10", ":53", "host:x", "h:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_listen(bad)
    svc = kube_dns_service()
    assert svc["spec"]["clusterIP"] == "10.43.0.10" and "selector" not in svc["spec"]
    assert svc["metadata"]["labels"]["shoal.dev/served-by"] == "node-dns"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
