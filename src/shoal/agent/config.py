"""The node agent's configuration: one frozen value for everything that shapes an agent run.

:class:`AgentConfig` groups what :func:`shoal.agent.agent.run_agent`, :class:`~shoal.agent.agent.NodeAgent`
and the runtime driver factory (:func:`shoal.agent.runtime.make_driver`) need to know about the
node: its name, state directory and address, the kubelet API port, the runtime and its podman
options, the Lease and status timings, the restart back-offs and loop intervals, and the cluster
CA.  What belongs to one run only stays a separate argument of those functions: the API client,
the ``stop`` event, the driver object, an ``on_start`` hook and an injected clock.

Contract and invariants
-----------------------
* A config is immutable (a frozen dataclass; ``labels`` is a read-only mapping): build a changed
  copy with :func:`dataclasses.replace` (``run_agent`` does so once the kubelet API has bound an
  ephemeral port).
* Every config is valid once built: :class:`AgentConfigError` (a ``ValueError``) names the first
  field that is not — an empty node name, an unknown runtime, a port outside 0-65535, a
  non-positive duration or interval, a negative warm-pool size, ``backoff_initial`` above
  ``backoff_max``.
* ``runtime`` ``""`` means "podman when installed, else the UNSAFE process runtime"; the factory
  resolves it (and logs the warning) when it builds the driver.
* This module imports nothing from the agent's other modules, so the top-level wiring
  (``shoal.components``, ``shoal.cli``) can build a config without importing the agent itself.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DRIVER_KINDS", "WARM_SANDBOXES", "AgentConfig", "AgentConfigError"]

#: The runtime drivers :func:`shoal.agent.runtime.make_driver` builds.
DRIVER_KINDS = ("podman", "process")
#: Started pods the podman driver keeps ready for new pods (see runtime/podman_warm.py).
WARM_SANDBOXES = 3


class AgentConfigError(ValueError):
    """A field of :class:`AgentConfig` has a value the agent cannot run with."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"agent config: {field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Everything that shapes one node agent; see the module docstring for the invariants."""

    #: The Node's name (``shoal`` callers default it to the host name).
    node_name: str
    #: The agent's state: volumes, runtime state (``process-runtime/``, ``podman/``), ``tls/``.
    data_dir: Path
    #: The address the API server and the pods reach this node at (InternalIP, pod env).
    node_ip: str = "127.0.0.1"
    #: The kubelet API port (logs, exec); 0 = any free port.  Served only with ``ca_pem``.
    kubelet_port: int = 10250
    #: Label the Node ``node-role.kubernetes.io/control-plane`` (the agent of ``shoal server``).
    control_plane: bool = False
    #: Extra Node labels.
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: ``podman``, ``process`` (UNSAFE: no isolation) or ``""`` (podman when installed).
    runtime: str = ""
    #: podman only: the binary, its storage root and runroot, the network namespace it runs in
    #: (entered with nsenter) and the node's bridge network (default ``shoal-<node_name>``).
    podman_binary: str = "podman"
    podman_root: str | None = None
    podman_runroot: str | None = None
    netns: str | None = None
    podman_network: str | None = None
    #: podman only: started pods kept ready for new pods.
    warm_sandboxes: int = WARM_SANDBOXES
    #: Seconds of the node Lease (Kubernetes: 40) and between Node status writes.
    lease_duration: int = 10
    status_interval: float = 10.0
    #: CrashLoopBackOff and image-pull back-off: first delay and cap, in seconds.
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    #: Seconds between runtime relists (kubelet's PLEG) and between full pod resyncs.
    relist_interval: float = 1.0
    resync_interval: float = 30.0
    #: The cluster CA (PEM): with it the agent serves its kubelet API to CA-signed clients.
    ca_pem: bytes | None = None
    #: Pods' DNS (kubelet's --cluster-dns / --cluster-domain): the nameservers of cluster-first
    #: pods, and the domain of their search path; ``cluster_dns`` empty: pods get the node's.
    cluster_dns: tuple[str, ...] = ("10.43.0.10",)
    cluster_domain: str = "cluster.local"
    #: The node's resolver configuration (dnsPolicy Default, and cluster DNS's upstreams).
    resolv_conf: Path = Path("/etc/resolv.conf")
    #: ``HOST:PORT`` the node's cluster DNS serves on; ``None``: the first ``cluster_dns``, port 53.
    dns_listen: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", types.MappingProxyType(dict(self.labels)))
        if not self.node_name:
            raise AgentConfigError("node_name", "must not be empty")
        if self.runtime not in ("", *DRIVER_KINDS):
            raise AgentConfigError("runtime", f"unknown runtime driver {self.runtime!r} "
                                              f"(expected one of {', '.join(DRIVER_KINDS)})")
        if not 0 <= self.kubelet_port <= 65535:
            raise AgentConfigError("kubelet_port", f"{self.kubelet_port} is not a port (0-65535)")
        if not self.cluster_domain.strip("."):
            raise AgentConfigError("cluster_domain", "must not be empty")
        if self.warm_sandboxes < 0:
            raise AgentConfigError("warm_sandboxes", f"{self.warm_sandboxes} is negative")
        for name in ("lease_duration", "status_interval", "backoff_initial", "backoff_max",
                     "relist_interval", "resync_interval"):
            if not getattr(self, name) > 0:
                raise AgentConfigError(name, f"{getattr(self, name)} must be positive")
        if self.backoff_initial > self.backoff_max:
            raise AgentConfigError("backoff_initial", f"{self.backoff_initial} exceeds backoff_max "
                                                      f"{self.backoff_max}")
