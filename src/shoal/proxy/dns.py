"""Cluster DNS, the node component: every node answers DNS for the cluster domain.

:class:`ClusterDns` runs informers on Services, EndpointSlices (indexed by their
``kubernetes.io/service-name`` label) and Pods (indexed by IP), answers from their caches
(:mod:`shoal.proxy.dns_records`) over UDP and TCP (:mod:`shoal.proxy.dns_server`) on the
ClusterIP of the ``kube-system/kube-dns`` Service, :data:`CLUSTER_DNS_IP` port 53 — the
``nameserver`` of every pod's resolv.conf (:mod:`shoal.agent.resolvconf`) — and forwards names
outside the domain to the node's own resolvers (:func:`node_upstreams`).

Contract and invariants
-----------------------
* The kube-dns Service itself (:func:`kube_dns_service`: ClusterIP :data:`CLUSTER_DNS_IP`,
  ports ``dns`` 53/UDP and ``dns-tcp`` 53/TCP, no selector, label
  ``shoal.dev/served-by: node-dns`` so the HAProxy service proxy leaves it to this component) is
  created by ``shoal server`` at start, with the bootstrap namespaces.
* The listen address is :attr:`DnsConfig.listen` (tests: ``127.0.0.1:<free port>``).  When it
  is not local, it is added to ``lo`` as a /32 (:mod:`shoal.proxy.dns_netns`) and removed at
  stop if this component added it.  With :attr:`DnsConfig.netns` the sockets live in that
  network namespace.
* A failure to bind (port 53 taken, address refused) does not end the node: it is logged as an
  error and retried every :data:`BIND_RETRY` seconds, while the rest of the node runs.
* Until every informer has synced, names in the domain get SERVFAIL, never a wrong NXDOMAIN.
* Upstreams are read once, at start, from :attr:`DnsConfig.resolv_conf`, leaving out this
  server's own address and the cluster DNS addresses (no forwarding loop).  None: names
  outside the domain get NXDOMAIN at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.client import resources
from shoal.client.informer import Informer, InformerFactory, wait_for_sync
from shoal.client.rest import ApiClient
from shoal.client.systemservices import CLUSTER_DNS_IP, SERVED_BY_LABEL, kube_dns_service
from shoal.kube.objects import Obj, slice_service_key
from shoal.proxy import dns_netns
from shoal.proxy.dns_records import ClusterRecords
from shoal.proxy.dns_server import DnsServer, Upstream

__all__ = ["BIND_RETRY", "CLUSTER_DNS_IP", "SERVED_BY_LABEL", "ClusterDns", "DnsConfig", "InformerCaches",
           "kube_dns_service", "node_upstreams", "parse_listen"]

log = logging.getLogger(__name__)

#: Seconds between two attempts to bind the listen address.
BIND_RETRY = 5.0


def parse_listen(listen: str) -> tuple[str, int]:
    """``10.43.0.10:53``, ``[::1]:53`` -> (host, port); raises ValueError."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"DNS listen address {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, kw_only=True)
class DnsConfig:
    """What one node's cluster DNS needs."""

    #: ``HOST:PORT`` to serve on.
    listen: str = f"{CLUSTER_DNS_IP}:53"
    domain: str = "cluster.local"
    #: The node's resolver configuration: where names outside the domain are forwarded.
    resolv_conf: Path = Path("/etc/resolv.conf")
    #: Forward to these instead of reading ``resolv_conf`` (tests: a resolver on 127.0.0.1).
    upstreams: Sequence[Upstream] | None = None
    #: Addresses that are this cluster's DNS (never used as upstreams).
    cluster_dns: tuple[str, ...] = (CLUSTER_DNS_IP,)
    #: The network namespace to serve in (the node's, when its agent runs outside it).
    netns: str | None = None
    #: Add the listen address to ``lo`` when it is not local.
    add_address: bool = True
    bind_retry: float = BIND_RETRY
    upstream_timeout: float = field(default=2.0)

    def __post_init__(self) -> None:
        parse_listen(self.listen)
        if not self.domain.strip("."):
            raise ValueError("DNS domain must not be empty")


def node_upstreams(resolv_conf: Path, exclude: Iterable[str]) -> list[Upstream]:
    """The ``nameserver`` lines of ``resolv_conf`` (port 53), without ``exclude``; a missing
    file has none."""
    skip = set(exclude)
    try:
        text = resolv_conf.read_text()
    except FileNotFoundError:
        return []
    found: list[Upstream] = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver" and parts[1] not in skip:
            upstream = (parts[1].split("%", 1)[0], 53)
            if upstream not in found:
                found.append(upstream)
    return found


def _pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = {str(entry.get("ip")) for entry in status.get("podIPs") or [] if entry.get("ip")}
    if status.get("podIP"):
        ips.add(str(status["podIP"]))
    return sorted(ips)


class InformerCaches:
    """:class:`~shoal.proxy.dns_records.Caches` over three informers."""

    def __init__(self, services: Informer, slices: Informer, pods: Informer) -> None:
        self.services, self.endpoint_slices, self.pods = services, slices, pods
        slices.add_index("service", slice_service_key)
        pods.add_index("ip", _pod_ips)
        services.add_index("namespace", lambda svc: [str((svc.get("metadata") or {}).get("namespace"))])

    def service(self, namespace: str, name: str) -> Obj | None:
        return self.services.get(f"{namespace}/{name}")

    def has_services(self, namespace: str) -> bool:
        return bool(self.services.by_index("namespace", namespace))

    def slices(self, namespace: str, service: str) -> list[Obj]:
        return self.endpoint_slices.by_index("service", f"{namespace}/{service}")

    def pods_with_ip(self, ip: str) -> list[Obj]:
        return self.pods.by_index("ip", ip)

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self.pods.get(f"{namespace}/{name}")

    def synced(self) -> bool:
        return self.services.has_synced and self.endpoint_slices.has_synced and self.pods.has_synced


class ClusterDns:
    """The cluster DNS of one node (see the module docstring)."""

    def __init__(self, client: ApiClient, config: DnsConfig) -> None:
        self.config = config
        self.host, self.port = parse_listen(config.listen)
        self.informers = InformerFactory(client)
        self.caches = InformerCaches(self.informers.informer(resources.SERVICES),
                                     self.informers.informer(resources.ENDPOINTSLICES),
                                     self.informers.informer(resources.PODS))
        upstreams = config.upstreams
        if upstreams is None:
            upstreams = node_upstreams(config.resolv_conf, {*config.cluster_dns, self.host})
        self.server = DnsServer(ClusterRecords(self.caches, config.domain), upstreams,
                                ready=self.caches.synced, timeout=config.upstream_timeout)
        #: The address actually served (the port is known once bound; 0 asks for any).
        self.bound: tuple[str, int] | None = None
        #: Set once the server answers on its sockets.
        self.serving = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        ending = asyncio.Event()  # the informers' own stop: set when this run ends, however
        informers = asyncio.create_task(self.informers.run(ending), name="dns-informers")
        bound: dns_netns.Bound | None = None
        try:
            bound = await self._bind(stop)
            if bound is not None:
                await self.server.serve_udp(bound.udp)
                await self.server.serve_tcp(bound.tcp)
                self.bound = (self.host, int(bound.udp.getsockname()[1]))
                self.serving.set()
                log.info("cluster DNS for %s on %s:%d (upstreams: %s)", self.config.domain, *self.bound,
                         ", ".join(f"{h}:{p}" for h, p in self.server.upstreams) or "none")
                await wait_for_sync([self.caches.services, self.caches.endpoint_slices, self.caches.pods], stop)
            await stop.wait()
        finally:
            await self.server.close()
            if bound is not None:
                bound.udp.close()
                bound.tcp.close()
                if bound.added_address:
                    await asyncio.to_thread(dns_netns.remove_address, self.host, self.config.netns)
            ending.set()
            await informers

    async def _bind(self, stop: asyncio.Event) -> dns_netns.Bound | None:
        """Bind the sockets, retrying every ``bind_retry`` seconds; None when stopped first."""
        while not stop.is_set():
            try:
                return await asyncio.to_thread(dns_netns.bind_sockets, self.host, self.port,
                                               netns=self.config.netns, add_address=self.config.add_address)
            except OSError as exc:
                log.error("cluster DNS cannot listen on %s:%d (retrying in %.0f s): %s", self.host, self.port,
                          self.config.bind_retry, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.bind_retry)
        return None
