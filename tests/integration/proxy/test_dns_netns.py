"""Cluster DNS on 10.43.0.10:53 inside a network namespace the test creates (never the host's lo).

The component adds the listen address to ``lo`` of its namespace as a /32 (pyroute2) when it is
not local, idempotently, serves there, and removes the address it added when it stops.  The
test asks from a socket made inside the same namespace (the query never leaves it).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.proxy import dns_netns
from shoal.proxy.dns import CLUSTER_DNS_IP, ClusterDns, DnsConfig
from tests.support.api_harness import ApiHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"shoal-dns-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def lo_addresses(netns: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-4", "addr", "show", "dev", "lo"], check=True,
                          capture_output=True, text=True).stdout


def ask_in(netns: str, name: str) -> dns.message.Message:
    def query() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(dns.message.make_query(name, "A").to_wire(), (CLUSTER_DNS_IP, 53))
            return sock.recv(4096)

    return dns.message.from_wire(dns_netns.in_netns(netns, query))


def test_address_is_added_once_and_sockets_bind_in_the_netns(netns: str) -> None:
    assert f"{CLUSTER_DNS_IP}/32" not in lo_addresses(netns)
    first = dns_netns.bind_sockets(CLUSTER_DNS_IP, 53, netns=netns)
    try:
        assert first.added_address
        assert f"inet {CLUSTER_DNS_IP}/32" in lo_addresses(netns)
        first.udp.close()
        first.tcp.close()
        again = dns_netns.bind_sockets(CLUSTER_DNS_IP, 53, netns=netns)
        again.udp.close()
        again.tcp.close()
        assert not again.added_address, "already there: nothing added, nothing to remove later"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError):
            probe.bind((CLUSTER_DNS_IP, 0))  # the host has no such address: it stayed in the netns
    finally:
        dns_netns.remove_address(CLUSTER_DNS_IP, netns)
        dns_netns.remove_address(CLUSTER_DNS_IP, netns)  # twice: gone already is fine
    assert CLUSTER_DNS_IP not in lo_addresses(netns)


async def test_cluster_dns_serves_its_clusterip_in_the_netns(netns: str, tmp_path: Path) -> None:
    async with ApiHarness(tmp_path / "api") as harness:
        client: ApiClient = await harness.client()
        await client.create(resources.SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.9.9", "ports": [{"port": 80}]}})
        component = ClusterDns(client, DnsConfig(netns=netns, upstreams=[]))
        stop = asyncio.Event()
        task = asyncio.create_task(component.run(stop))
        try:
            await asyncio.wait_for(component.serving.wait(), 10)
            assert f"inet {CLUSTER_DNS_IP}/32" in lo_addresses(netns)
            deadline = time.monotonic() + 5
            while True:
                reply = await asyncio.to_thread(ask_in, netns, "web.default.svc.cluster.local")
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    break
                assert time.monotonic() < deadline, reply.to_text()
                await asyncio.sleep(0.05)
            assert [r.to_text() for rrset in reply.answer for r in rrset] == ["10.43.9.9"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        assert CLUSTER_DNS_IP not in lo_addresses(netns), "the address it added is removed at stop"
