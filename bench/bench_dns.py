"""Cluster DNS benchmark: query latency of the node's DNS server, on 127.0.0.1.

Run: ``.venv/bin/python bench/bench_dns.py [--services 1000] [--queries 5000] [--concurrency 1]``.

The in-process API harness (real API server, SQLite) holds ``--services`` ClusterIP Services
and as many headless Services with an EndpointSlice of 3 ready endpoints each; the cluster DNS
(:class:`shoal.proxy.dns.ClusterDns`) listens on ``127.0.0.1:<free port>`` fed by its informers.
A client in the same process (one UDP socket per worker, ``--concurrency`` workers) then sends
``--queries`` queries of each kind and times each one from send to answer:

* A of a ClusterIP Service (``svc-N.bench.svc.cluster.local``);
* A of a headless Service (3 addresses);
* SRV of a named port (``_http._tcp.svc-N...``);
* NXDOMAIN (a name in the domain that does not exist, what ``ndots:5`` search-path probing
  produces for every outside name);
* A over TCP (one connection per query).

Printed per kind: queries, p50 / p99 / max in microseconds, and queries/s.  Every loop is
bounded by ``--queries`` and every wait by a timeout; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shoal.client import resources
from shoal.proxy.dns import ClusterDns, DnsConfig
from tests.support.api_harness import ApiHarness

TIMEOUT = 5.0


async def populate(harness: ApiHarness, services: int) -> None:
    client = await harness.client()
    await harness.create_namespace("bench")
    semaphore = asyncio.Semaphore(16)

    async def one(index: int) -> None:
        async with semaphore:
            await client.create(resources.SERVICES, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{index}", "namespace": "bench"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
            await client.create(resources.SERVICES, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"hl-{index}", "namespace": "bench"},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
            base = index * 3
            await client.create(resources.ENDPOINTSLICES, {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": f"hl-{index}-x", "namespace": "bench",
                             "labels": {"kubernetes.io/service-name": f"hl-{index}"}},
                "endpoints": [{"addresses": [f"10.42.{(base + i) // 250}.{(base + i) % 250 + 1}"],
                               "conditions": {"ready": True}} for i in range(3)],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})

    await asyncio.gather(*(one(i) for i in range(services)))


def udp_query(sock: socket.socket, wire: bytes) -> float:
    began = time.perf_counter()
    sock.send(wire)
    reply = sock.recv(65535)
    took = time.perf_counter() - began
    if reply[:2] != wire[:2]:
        raise RuntimeError("answer to another query")
    return took


def tcp_query(address: tuple[str, int], wire: bytes) -> float:
    began = time.perf_counter()
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        size = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))[0]
        sock.recv(size, socket.MSG_WAITALL)
    return time.perf_counter() - began


def run_kind(address: tuple[str, int], names: list[tuple[str, str]], queries: int, concurrency: int,
             *, tcp: bool = False) -> list[float]:
    """Latencies of ``queries`` queries over ``concurrency`` client threads (blocking sockets,
    so the client's own event loop adds nothing to the figures)."""
    import concurrent.futures

    def worker(count: int, seed: int) -> list[float]:
        rng = random.Random(seed)
        out: list[float] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        try:
            for _ in range(count):
                name, rtype = rng.choice(names)
                wire = dns.message.make_query(name, rtype).to_wire()
                out.append(tcp_query(address, wire) if tcp else udp_query(sock, wire))
        finally:
            sock.close()
        return out

    share = [queries // concurrency + (1 if i < queries % concurrency else 0) for i in range(concurrency)]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(worker, share, range(concurrency)))
    return [t for part in results for t in part]


def report(kind: str, latencies: list[float], wall: float) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6
    print(f"{kind:<28} {len(ordered):>7} {p50:>9.0f} {p99:>9.0f} {ordered[-1] * 1e6:>9.0f} "
          f"{len(ordered) / wall:>10.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        async with ApiHarness(Path(tmp) / "api") as harness:
            began = time.perf_counter()
            await populate(harness, args.services)
            print(f"{args.services} ClusterIP + {args.services} headless Services (3 endpoints each) "
                  f"created in {time.perf_counter() - began:.1f} s")
            component = ClusterDns(await harness.client(), DnsConfig(listen="127.0.0.1:0", add_address=False,
                                                                     upstreams=[]))
            stop = asyncio.Event()
            task = asyncio.create_task(component.run(stop))
            try:
                await asyncio.wait_for(component.serving.wait(), TIMEOUT)
                deadline = time.monotonic() + 60
                while not component.caches.synced() or len(component.caches.services.list()) < 2 * args.services:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the DNS informers did not sync")
                    await asyncio.sleep(0.05)
                assert component.bound is not None
                address = component.bound
                n = args.services
                kinds = {
                    "A ClusterIP (UDP)": [(f"svc-{i}.bench.svc.cluster.local", "A") for i in range(n)],
                    "A headless, 3 IPs (UDP)": [(f"hl-{i}.bench.svc.cluster.local", "A") for i in range(n)],
                    "SRV named port (UDP)": [(f"_http._tcp.svc-{i}.bench.svc.cluster.local", "SRV")
                                             for i in range(n)],
                    "NXDOMAIN (UDP)": [(f"missing-{i}.bench.svc.cluster.local", "A") for i in range(n)],
                    "A ClusterIP (TCP)": [(f"svc-{i}.bench.svc.cluster.local", "A") for i in range(n)],
                }
                print(f"{'query':<28} {'queries':>7} {'p50 us':>9} {'p99 us':>9} {'max us':>9} {'queries/s':>10}"
                      f"   (concurrency {args.concurrency})")
                for kind, names in kinds.items():
                    wall_began = time.perf_counter()
                    latencies = await asyncio.to_thread(run_kind, address, names, args.queries, args.concurrency,
                                                        tcp="TCP" in kind)
                    report(kind, latencies, time.perf_counter() - wall_began)
            finally:
                stop.set()
                await asyncio.wait_for(task, TIMEOUT)


if __name__ == "__main__":
    asyncio.run(main())
