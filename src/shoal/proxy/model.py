"""What one node's service proxy must serve: Services and EndpointSlices in, listeners out.

:func:`service_model` is a pure function of one Service, its EndpointSlices and the node: it
returns the HAProxy frontends (what to listen on) and backends (where to send) for that
Service, plus the warnings for what it will not carry.  The proxy (:mod:`shoal.proxy.proxy`)
calls it for each changed Service and diffs the result against what HAProxy runs.

Contract and invariants
-----------------------
1. A Service is served when it has a ClusterIP (not ``None``, not ExternalName) and is not
   served by the node itself (label :data:`SERVED_BY_LABEL` = ``node-dns``: cluster DNS).
2. One backend per Service port and *scope*: ``cluster`` (every endpoint) and, when a traffic
   policy says ``Local``, ``local`` (the endpoints on this node only): ``internalTrafficPolicy``
   for the ClusterIP listener, ``externalTrafficPolicy`` for the NodePort listener.
3. Endpoints come from the Service's EndpointSlices (label ``kubernetes.io/service-name``), the
   slice port with the Service port's name and protocol.  An endpoint is ``ready`` (new
   requests) when its ``ready`` condition holds, ``drain`` (finishes what it has, gets nothing
   new) when it is terminating but still serving, and absent otherwise.  When a backend has no
   ready endpoint, its serving terminating ones take requests (Kubernetes' terminating
   fallback), so a last replica being replaced never answers 503 while it still serves.
4. Layer-7 (``http``) when the port's ``appProtocol`` is ``http`` or its name is ``http`` or
   starts with ``http-``; otherwise TCP.  ``sessionAffinity: ClientIP`` sticks a client
   address to an endpoint for ``timeoutSeconds``.
5. UDP ports are carried by nftables DNAT (:mod:`shoal.proxy.udp`), not HAProxy: a
   :class:`UdpRule` per port, from its ClusterIPs (and NodePort on the node's addresses other
   than loopback) to the ready endpoints.  SCTP ports are listed in ``warnings`` (the proxy
   records an Event), never silently dropped.
6. The backend set (names, modes, affinity) and the frontends are the *structure*: changing it
   needs an HAProxy reload.  Endpoints alone change through the runtime API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shoal.client.systemservices import SERVED_BY_LABEL
from shoal.kube.objects import Obj

__all__ = ["SERVED_BY_LABEL", "Backend", "Endpoint", "Frontend", "ServiceModel",
           "UdpRule", "http_port", "service_model"]


READY, DRAIN = "ready", "drain"


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    ip: str
    port: int
    #: :data:`READY` or :data:`DRAIN`.
    state: str = READY


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    mode: str
    #: Seconds a client address sticks to its endpoint (``sessionAffinity: ClientIP``), or 0.
    affinity_seconds: int = 0
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def structure(self) -> tuple[str, str, int]:
        return self.name, self.mode, self.affinity_seconds


@dataclass(frozen=True, slots=True)
class Frontend:
    name: str
    mode: str
    binds: tuple[tuple[str, int], ...]
    backend: str


@dataclass(frozen=True, slots=True)
class UdpRule:
    """Datagrams to any of ``binds`` go to one of ``endpoints`` (ready ones), chosen at random
    per flow; no endpoint: none is written, and the kernel answers port-unreachable."""

    name: str
    binds: tuple[tuple[str, int], ...]
    endpoints: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ServiceModel:
    frontends: tuple[Frontend, ...] = ()
    backends: tuple[Backend, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)
    udp: tuple[UdpRule, ...] = ()

    @property
    def structure(self) -> tuple[object, ...]:
        return self.frontends, tuple(b.structure for b in self.backends)

    @property
    def addresses(self) -> frozenset[str]:
        """The ClusterIPs (and externalIPs) this Service's listeners bind."""
        return frozenset([*(addr for f in self.frontends if f.name.startswith("ci.") for addr, _ in f.binds),
                          *(addr for r in self.udp if r.name.startswith("ci.") for addr, _ in r.binds)])


def http_port(port: Mapping[str, object]) -> bool:
    name = str(port.get("name") or "")
    return port.get("appProtocol") == "http" or name == "http" or name.startswith("http-")


def _key(port: Mapping[str, object]) -> str:
    return str(port.get("name") or port.get("port"))


def _endpoints(slices: Iterable[Obj], port: Mapping[str, object], node: str | None) -> tuple[Endpoint, ...]:
    """The endpoints of ``port`` in ``slices`` (those on ``node`` only, unless it is None)."""
    name, protocol = port.get("name") or "", port.get("protocol") or "TCP"
    ready: set[Endpoint] = set()
    draining: set[Endpoint] = set()
    for piece in slices:
        if piece.get("addressType", "IPv4") != "IPv4":
            continue
        number = next((p.get("port") for p in piece.get("ports") or []
                       if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == protocol), None)
        if not isinstance(number, int):
            continue
        for endpoint in piece.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses or (node is not None and endpoint.get("nodeName") != node):
                continue
            conditions = endpoint.get("conditions") or {}
            is_ready = conditions.get("ready") is not False
            serving = conditions.get("serving", is_ready) is not False
            if is_ready and not conditions.get("terminating"):
                ready.add(Endpoint(str(addresses[0]), number, READY))
            elif serving:
                draining.add(Endpoint(str(addresses[0]), number, DRAIN))
    if not ready:  # the terminating fallback (invariant 3)
        return tuple(sorted(Endpoint(e.ip, e.port, READY) for e in draining))
    ready_addrs = {(e.ip, e.port) for e in ready}
    return tuple(sorted(ready | {e for e in draining if (e.ip, e.port) not in ready_addrs}))


def served(service: Obj) -> bool:
    spec = service.get("spec") or {}
    labels = (service.get("metadata") or {}).get("labels") or {}
    cluster_ip = spec.get("clusterIP")
    return (spec.get("type") != "ExternalName" and bool(cluster_ip) and cluster_ip != "None"
            and labels.get(SERVED_BY_LABEL) != "node-dns")


def service_model(service: Obj, slices: Iterable[Obj], *, node_name: str,
                  node_addresses: Iterable[str]) -> ServiceModel:
    """The listeners and backends of ``service`` on node ``node_name`` (invariants 1-6)."""
    if not served(service):
        return ServiceModel()
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    prefix = f"{meta.get('namespace')}.{meta.get('name')}"
    slices = list(slices)
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ":" not in ip]
    ips += [ip for ip in spec.get("externalIPs") or [] if ":" not in ip and ip not in ips]
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = int(config.get("timeoutSeconds") or 10800)
    frontends: list[Frontend] = []
    backends: dict[str, Backend] = {}
    warnings: list[str] = []
    udp: list[UdpRule] = []

    def backend(port: Mapping[str, object], local: bool, mode: str) -> str:
        name = f"{prefix}.{_key(port)}" + (".local" if local else "")
        if name not in backends:
            backends[name] = Backend(name, mode, affinity, _endpoints(slices, port, node_name if local else None))
        return name

    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        if protocol == "UDP":
            udp += _udp_rules(prefix, ips, port, slices, spec, node_name, node_addresses)
            continue
        if protocol != "TCP":
            warnings.append(f"port {_key(port)} is {protocol}: the service proxy carries TCP and UDP only")
            continue
        mode = "http" if http_port(port) else "tcp"
        number = int(port.get("port") or 0)
        internal = backend(port, spec.get("internalTrafficPolicy") == "Local", mode)
        frontends.append(Frontend(f"ci.{prefix}.{_key(port)}", mode, tuple((ip, number) for ip in ips), internal))
        node_port = port.get("nodePort")
        if isinstance(node_port, int) and node_port and spec.get("type") in ("NodePort", "LoadBalancer"):
            external = backend(port, spec.get("externalTrafficPolicy") == "Local", mode)
            binds = tuple((addr, node_port) for addr in dict.fromkeys(node_addresses))
            frontends.append(Frontend(f"np.{prefix}.{_key(port)}", mode, binds, external))
    return ServiceModel(tuple(frontends), tuple(backends.values()), tuple(warnings), tuple(udp))


def _udp_rules(prefix: str, ips: list[str], port: Mapping[str, object], slices: list[Obj], spec: Obj,
               node_name: str, node_addresses: Iterable[str]) -> list[UdpRule]:
    def targets(local: bool) -> tuple[tuple[str, int], ...]:
        return tuple((e.ip, e.port) for e in _endpoints(slices, port, node_name if local else None)
                     if e.state == READY)

    number = int(str(port.get("port") or 0))
    rules = [UdpRule(f"ci.{prefix}.{_key(port)}", tuple((ip, number) for ip in ips),
                     targets(spec.get("internalTrafficPolicy") == "Local"))]
    node_port = port.get("nodePort")
    if isinstance(node_port, int) and node_port and spec.get("type") in ("NodePort", "LoadBalancer"):
        # Not on loopback: DNAT from 127.0.0.1 to a pod would need route_localnet.
        binds = tuple((a, node_port) for a in dict.fromkeys(node_addresses) if not a.startswith("127."))
        if binds:
            rules.append(UdpRule(f"np.{prefix}.{_key(port)}", binds,
                                 targets(spec.get("externalTrafficPolicy") == "Local")))
    return rules
