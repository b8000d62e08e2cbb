"""The cluster's DNS records, answered straight from informer caches (CoreDNS' kubernetes plugin).

:class:`ClusterRecords` maps a question (name, type) under the cluster domain (``cluster.local``)
to a :class:`Lookup`: an rcode, answer records and additional records.  It keeps no table of
its own: every question reads the Service, EndpointSlice and Pod caches (:class:`Caches`), so an
answer is as current as the informers and there is nothing to invalidate.

Names (``D`` is the cluster domain; every label is compared lower-cased):

* ``svc.ns.svc.D``: a Service with a ClusterIP -> A ClusterIP; a headless Service (clusterIP
  ``None``) -> A for each *ready* endpoint address of its EndpointSlices (label
  ``kubernetes.io/service-name``; ``conditions.ready`` unset counts as ready, as in Kubernetes);
  an ExternalName Service -> CNAME ``spec.externalName``.  SRV on this name: one per port.
* ``_port._proto.svc.ns.svc.D``: SRV for the named port (``_http._tcp``): for a ClusterIP
  Service one record to ``svc.ns.svc.D`` with the Service port; for a headless Service one per
  ready endpoint, to ``host.svc.ns.svc.D`` with the endpoint port; targets' A records go in
  the additional section.
* ``host.svc.ns.svc.D`` (headless only): the ready endpoint whose ``hostname`` is ``host`` (or,
  without one, whose Pod has ``spec.hostname: host`` and ``spec.subdomain: svc``), or whose
  address written with dashes is ``host`` (``10-42-0-5``).
* ``a-b-c-d.ns.pod.D``: A ``a.b.c.d`` when a Pod of namespace ``ns`` has that IP (CoreDNS'
  ``pods verified``).
* ``D``, ``svc.D``, ``pod.D``, ``ns.svc.D`` (a namespace with a Service), ``ns.pod.D`` and the
  names above exist: a question of another type gets NOERROR with no answer (NODATA), so that a
  resolver asking A and AAAA together gets its A.  Every other name in the domain: NXDOMAIN.

The SOA of the domain (:meth:`ClusterRecords.soa`) goes in the authority section of negative
answers.  All records have :data:`TTL` seconds.  Invariant: only :data:`~Caches` objects are
read, never changed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from shoal.kube.objects import Obj

__all__ = ["NOERROR", "NXDOMAIN", "TTL", "Caches", "ClusterRecords", "Lookup", "Record",
           "is_ready_endpoint"]

NOERROR = 0
NXDOMAIN = 3
#: Seconds every answer may be cached (CoreDNS' kubernetes plugin: 5).
TTL = 5


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: ``value`` is an address (A/AAAA), a name (CNAME) or, for SRV,
    ``"priority weight port target"``."""

    name: str
    rtype: str
    value: str
    ttl: int = TTL


@dataclass(slots=True)
class Lookup:
    rcode: int = NOERROR
    answer: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)


class Caches(Protocol):
    """Read-only views of the informers' caches (the objects are never modified)."""

    def service(self, namespace: str, name: str) -> Obj | None: ...

    def has_services(self, namespace: str) -> bool: ...

    def slices(self, namespace: str, service: str) -> list[Obj]: ...

    def pods_with_ip(self, ip: str) -> list[Obj]: ...

    def pod(self, namespace: str, name: str) -> Obj | None: ...


def is_ready_endpoint(endpoint: Obj) -> bool:
    """Kubernetes: ``ready`` unset is ready (EndpointSlice API)."""
    return (endpoint.get("conditions") or {}).get("ready") is not False


def _dashed(address: str) -> str:
    return address.replace(".", "-").replace(":", "-")


def _undash(label: str) -> str | None:
    """``10-42-0-5`` -> ``10.42.0.5``; ``None`` if that is not an IPv4 address."""
    try:
        return str(ipaddress.IPv4Address(label.replace("-", ".")))
    except ValueError:
        return None


def _rtype_of(address: str) -> str:
    return "AAAA" if ":" in address else "A"


class ClusterRecords:
    """Answers for the cluster domain (see the module docstring)."""

    def __init__(self, caches: Caches, domain: str = "cluster.local") -> None:
        self.caches = caches
        self.domain = domain.strip(".").lower()
        self._suffix = "." + self.domain

    def in_domain(self, name: str) -> bool:
        """Whether ``name`` (with or without the final dot) is the cluster domain or under it."""
        name = name.rstrip(".").lower()
        return name == self.domain or name.endswith(self._suffix)

    def soa(self) -> Record:
        return Record(self.domain, "SOA",
                      f"ns.dns.{self.domain} hostmaster.{self.domain} 1 7200 1800 86400 {TTL}")

    def lookup(self, name: str, rtype: str) -> Lookup:
        """The answer to ``rtype`` questions about ``name`` (which must be :meth:`in_domain`)."""
        name = name.rstrip(".").lower()
        if not self.in_domain(name):
            raise ValueError(f"{name} is not under {self.domain}")
        relative = name[:-len(self.domain)].rstrip(".")
        labels = relative.split(".") if relative else []
        found = self._records(labels)
        if found is None:
            return Lookup(NXDOMAIN)
        answer, additional = found
        if rtype == "SOA" and not labels:
            return Lookup(answer=[self.soa()])
        wanted = [r for r in answer if r.rtype == rtype or r.rtype == "CNAME" or rtype == "ANY"]
        return Lookup(answer=wanted, additional=additional if wanted else [])

    # -- names ------------------------------------------------------------------------------

    def _records(self, labels: list[str]) -> tuple[list[Record], list[Record]] | None:
        """Every record of the name (by type), plus additional ones; ``None``: no such name."""
        if not labels or labels in (["svc"], ["pod"]):
            return [], []
        zone = labels[-1]
        if zone == "pod":
            return self._pod(labels[:-1])
        if zone != "svc":
            return None
        rest = labels[:-1]
        if len(rest) == 1:
            return ([], []) if self.caches.has_services(rest[0]) else None
        if len(rest) == 2:
            return self._service(rest[1], rest[0])
        if len(rest) == 3:
            return self._endpoint(rest[2], rest[1], rest[0])
        if len(rest) == 4 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv(rest[3], rest[2], rest[0][1:], rest[1][1:])
        return None

    def _fqdn(self, *labels: str) -> str:
        return ".".join((*labels, self.domain))

    def _pod(self, labels: list[str]) -> tuple[list[Record], list[Record]] | None:
        if len(labels) == 1:
            return [], []  # ns.pod.D: any namespace name
        if len(labels) != 2:
            return None
        address = _undash(labels[0])
        if address is None:
            return None
        namespace = labels[1]
        if any((p.get("metadata") or {}).get("namespace") == namespace for p in self.caches.pods_with_ip(address)):
            return [Record(self._fqdn(labels[0], namespace, "pod"), "A", address)], []
        return None

    def _service(self, namespace: str, name: str) -> tuple[list[Record], list[Record]] | None:
        service = self.caches.service(namespace, name)
        if service is None:
            return None
        spec = service.get("spec") or {}
        fqdn = self._fqdn(name, namespace, "svc")
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").rstrip(".")
            return ([Record(fqdn, "CNAME", target)] if target else []), []
        records: list[Record] = []
        additional: list[Record] = []
        for port in spec.get("ports") or []:
            if port.get("name"):
                srv, extra = self._srv_records(service, namespace, name, port)
                records += [Record(fqdn, "SRV", r.value) for r in srv]  # owned by the question's name
                additional += [r for r in extra if r not in additional]
        return [*self._addresses(service, namespace, name, fqdn), *records], additional

    def _addresses(self, service: Obj, namespace: str, name: str, fqdn: str) -> list[Record]:
        cluster_ip = str((service.get("spec") or {}).get("clusterIP") or "")
        if cluster_ip and cluster_ip != "None":
            return [Record(fqdn, _rtype_of(cluster_ip), cluster_ip)]
        seen: dict[str, Record] = {}
        for _, address in self._ready(namespace, name):
            seen.setdefault(address, Record(fqdn, _rtype_of(address), address))
        return [*seen.values()]

    def _ready(self, namespace: str, service: str) -> Iterable[tuple[Obj, str]]:
        """(endpoint, address) of every ready endpoint of the Service's slices."""
        for endpoint_slice in self.caches.slices(namespace, service):
            for endpoint in endpoint_slice.get("endpoints") or []:
                if is_ready_endpoint(endpoint):
                    for address in endpoint.get("addresses") or []:
                        yield endpoint, str(address)

    def _host_label(self, endpoint: Obj, address: str, service: str) -> str:
        """The endpoint's name under the Service: its hostname, its Pod's hostname (when the
        Pod's subdomain is the Service), else its address with dashes."""
        hostname = str(endpoint.get("hostname") or "")
        if hostname:
            return hostname.lower()
        ref = endpoint.get("targetRef") or {}
        if ref.get("kind") == "Pod":
            pod = self.caches.pod(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
            spec = (pod or {}).get("spec") or {}
            if spec.get("hostname") and spec.get("subdomain") == service:
                return str(spec["hostname"]).lower()
        return _dashed(address)

    def _endpoint(self, namespace: str, service: str, host: str) -> tuple[list[Record], list[Record]] | None:
        svc = self.caches.service(namespace, service)
        if svc is None or (svc.get("spec") or {}).get("clusterIP") not in ("None", None, ""):
            return None
        fqdn = self._fqdn(host, service, namespace, "svc")
        records = {address: Record(fqdn, _rtype_of(address), address)
                   for endpoint, address in self._ready(namespace, service)
                   if self._host_label(endpoint, address, service) == host}
        return ([*records.values()], []) if records else None

    def _srv(self, namespace: str, name: str, port_name: str,
             protocol: str) -> tuple[list[Record], list[Record]] | None:
        service = self.caches.service(namespace, name)
        if service is None:
            return None
        for port in (service.get("spec") or {}).get("ports") or []:
            if str(port.get("name") or "").lower() == port_name and \
                    str(port.get("protocol") or "TCP").lower() == protocol:
                return self._srv_records(service, namespace, name, port)
        return None

    def _srv_records(self, service: Obj, namespace: str, name: str, port: Obj) -> tuple[list[Record], list[Record]]:
        """SRV records (owner ``_port._proto.svc...``) for one named Service port."""
        port_name, protocol = str(port.get("name")).lower(), str(port.get("protocol") or "TCP").lower()
        owner = self._fqdn(f"_{port_name}", f"_{protocol}", name, namespace, "svc")
        fqdn = self._fqdn(name, namespace, "svc")
        cluster_ip = str((service.get("spec") or {}).get("clusterIP") or "")
        if cluster_ip and cluster_ip != "None":
            return ([Record(owner, "SRV", f"0 100 {port.get('port')} {fqdn}")],
                    [Record(fqdn, _rtype_of(cluster_ip), cluster_ip)])
        targets: dict[tuple[str, int], Record] = {}
        for endpoint_slice in self.caches.slices(namespace, name):
            number = _slice_port(endpoint_slice, port_name, protocol)
            if number is None:
                continue
            for endpoint in endpoint_slice.get("endpoints") or []:
                if not is_ready_endpoint(endpoint):
                    continue
                for address in endpoint.get("addresses") or []:
                    host = self._fqdn(self._host_label(endpoint, str(address), name), name, namespace, "svc")
                    targets.setdefault((host, number), Record(host, _rtype_of(str(address)), str(address)))
        weight = max(1, 100 // len(targets)) if targets else 0
        return ([Record(owner, "SRV", f"0 {weight} {number} {host}") for host, number in targets],
                [*targets.values()])


def _slice_port(endpoint_slice: Obj, name: str, protocol: str) -> int | None:
    for port in endpoint_slice.get("ports") or []:
        if str(port.get("name") or "").lower() == name and str(port.get("protocol") or "TCP").lower() == protocol:
            number = port.get("port")
            return int(number) if isinstance(number, int) else None
    return None

