"""A pod's /etc/resolv.conf, as the kubelet writes it (``pkg/kubelet/network/dns``).

:func:`pod_resolv_conf` computes the file for a pod from its ``dnsPolicy`` and ``dnsConfig``,
the node's cluster DNS settings (kubelet's ``--cluster-dns`` / ``--cluster-domain``, here
``AgentConfig.cluster_dns`` / ``cluster_domain``) and the node's own resolv.conf:

* ``ClusterFirst`` (the default) and ``ClusterFirstWithHostNet``: ``nameserver`` the cluster
  DNS, ``search <ns>.svc.<domain> svc.<domain> <domain>`` followed by the node's search
  domains, ``options ndots:5``.  A ``ClusterFirst`` pod with ``hostNetwork`` gets ``Default``
  instead, as does any cluster-first pod on a node without cluster DNS (kubelet warns then).
* ``Default``: the node's nameservers, search domains and options.
* ``None``: nothing but ``dnsConfig``.
* ``dnsConfig`` is merged last: its nameservers and searches are appended (duplicates dropped),
  its options replace same-named ones or are appended; at most 3 nameservers and 32 search
  domains are kept (kubelet's limits).

:class:`PodDns` writes the file to ``<data_dir>/pods/<uid>/resolv.conf`` (atomically, only when
it changed) and gives the bind mount every container of the pod gets on /etc/resolv.conf,
read-only: the sandbox needs no DNS options, so a warm podman pod made before the pod's
namespace was known serves any pod.  A container that mounts something on /etc/resolv.conf
itself keeps its own.  The process runtime has no mount namespace: its containers see the
node's /etc/resolv.conf, and the file is only written (documented limitation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.agent.runtime import driver as rt
from shoal.kube.files import atomic_write
from shoal.kube.objects import Obj

__all__ = ["MAX_NAMESERVERS", "MAX_SEARCHES", "RESOLV_CONF", "PodDns", "Resolver", "parse_resolv_conf",
           "pod_resolv_conf"]

RESOLV_CONF = "/etc/resolv.conf"
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


@dataclass(frozen=True, slots=True)
class Resolver:
    """The three parts of a resolv.conf; ``options`` as written (``ndots:5``, ``rotate``)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())

    def render(self) -> str:
        lines = [f"nameserver {server}" for server in self.nameservers[:MAX_NAMESERVERS]]
        if self.searches:
            lines.append("search " + " ".join(self.searches[:MAX_SEARCHES]))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


def parse_resolv_conf(text: str) -> Resolver:
    """The node's resolv.conf; the last ``search``/``domain`` line wins, as in glibc."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(parts) < 2:
            continue
        if parts[0] == "nameserver":
            servers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            searches = [s.rstrip(".") for s in parts[1:]]
        elif parts[0] == "options":
            options += parts[1:]
    return Resolver(tuple(servers), tuple(searches), tuple(options))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


def _merge_options(base: Iterable[str], extra: Iterable[Any]) -> tuple[str, ...]:
    merged: dict[str, str] = {}
    for option in base:
        name, sep, value = option.partition(":")
        merged[name] = f"{name}:{value}" if sep else name
    for option in extra:
        if not isinstance(option, dict):
            continue
        name = str(option.get("name") or "")
        if name:
            given = option.get("value")
            merged[name] = f"{name}:{given}" if given is not None else name
    return tuple(merged.values())


def pod_resolv_conf(pod: Obj, *, cluster_dns: Iterable[str], cluster_domain: str, host: Resolver) -> Resolver:
    """The resolver configuration of ``pod`` (see the module docstring)."""
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    policy = str(spec.get("dnsPolicy") or "ClusterFirst")
    host_network = spec.get("hostNetwork") is True
    servers = tuple(cluster_dns)
    base: Resolver
    if policy == "None":
        base = Resolver()
    elif policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network):
        if servers:
            domain = cluster_domain.strip(".")
            base = Resolver(servers, _unique((f"{namespace}.svc.{domain}", f"svc.{domain}", domain,
                                              *host.searches)), ("ndots:5",))
        else:
            base = host
    else:  # Default, or ClusterFirst with hostNetwork
        base = host
    config = spec.get("dnsConfig") or {}
    return Resolver(
        _unique((*base.nameservers, *(str(s) for s in config.get("nameservers") or ()))),
        _unique((*base.searches, *(str(s).rstrip(".") for s in config.get("searches") or ()))),
        _merge_options(base.options, config.get("options") or ()))


class PodDns:
    """Writes pods' resolv.conf files and gives their bind mounts (see the module docstring)."""

    def __init__(self, pods_root: Path, *, cluster_dns: Iterable[str], cluster_domain: str,
                 node_resolv_conf: Path = Path(RESOLV_CONF)) -> None:
        self.pods_root = pods_root
        self.cluster_dns = tuple(cluster_dns)
        self.cluster_domain = cluster_domain
        self.node_resolv_conf = node_resolv_conf

    def host(self) -> Resolver:
        try:
            return parse_resolv_conf(self.node_resolv_conf.read_text())
        except FileNotFoundError:
            return Resolver()

    def content(self, pod: Obj) -> str:
        return pod_resolv_conf(pod, cluster_dns=self.cluster_dns, cluster_domain=self.cluster_domain,
                               host=self.host()).render()

    def mount(self, pod: Obj, container: Obj) -> rt.Mount | None:
        """Write the pod's file and return its mount for ``container`` (``None`` when the
        container mounts its own /etc/resolv.conf)."""
        if any(str(m.get("mountPath") or "").rstrip("/") == RESOLV_CONF for m in container.get("volumeMounts") or []):
            return None
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if not uid:
            raise ValueError("pod has no uid")
        path = self.pods_root / uid / "resolv.conf"
        content = self.content(pod).encode()
        if not path.is_file() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, content, 0o644, fsync=False)
        return rt.Mount(str(path), RESOLV_CONF, read_only=True)
