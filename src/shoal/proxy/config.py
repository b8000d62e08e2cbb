"""The service proxy's configuration: one frozen value, built by ``shoal.components`` from the
node's :class:`~shoal.agent.config.AgentConfig` (this module imports nothing of the proxy, so
the wiring can build it without loading HAProxy support).

Invariants: ``node_name`` is not empty; ``node_addresses`` (where NodePorts listen; the
all-in-one adds ``127.0.0.1``) is not empty and has no duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProxyConfig"]


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    #: The node this proxy serves (``externalTrafficPolicy: Local`` keeps its endpoints).
    node_name: str
    #: HAProxy's files: configuration, pid file, master CLI and runtime API sockets.
    run_dir: Path
    #: The addresses NodePorts listen on.
    node_addresses: tuple[str, ...] = ("127.0.0.1",)
    haproxy_binary: str = "haproxy"
    #: The node's network namespace (``shoal up`` nodes): HAProxy and the addresses live there.
    netns: str | None = None
    #: Put ClusterIPs on the loopback interface (off only where something else routes them).
    manage_addresses: bool = True
    #: ``HOST:PORT`` of the Prometheus ``/metrics`` endpoint (kube-proxy's default port);
    #: ``""`` serves none, port 0 takes any free port.
    metrics_address: str = "127.0.0.1:10249"

    def __post_init__(self) -> None:
        if not self.node_name:
            raise ValueError("proxy config: node_name: must not be empty")
        if not self.node_addresses:
            raise ValueError("proxy config: node_addresses: must not be empty")
        object.__setattr__(self, "node_addresses", tuple(dict.fromkeys(self.node_addresses)))
