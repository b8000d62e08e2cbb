"""The RuntimeDriver protocol: what the node agent needs from a container runtime.

Drivers: ``podman`` (a Kubernetes pod is a podman pod whose infra container holds the
network namespace; containers join it) and ``process`` (plain processes, no isolation —
flagged unsafe).  Both pass the shared conformance suite in ``tests/integration/runtime``.

Contract and invariants
-----------------------
* Everything a driver creates carries the labels it was given (``shoal.pod.uid``,
  ``shoal.pod.name``, ``shoal.pod.namespace``, ``shoal.container.name``,
  ``shoal.container.attempt``) and is found again by ``list_sandboxes``/``list_containers``
  after the agent restarts: an agent restart never duplicates a running container.
* ``create_sandbox`` returns the pod IP (podman: from the node's bridge network, whose subnet
  is the node's podCIDR; process: 127.0.0.1).
* The pod network is a driver operation: a driver with ``needs_pod_cidr`` gets the node's
  podCIDR through ``configure_network`` before any pod is made (the agent waits for
  ``spec.podCIDR``; the Node is not Ready until then).  ``configure_network`` is idempotent for
  the same CIDR; podman makes the bridge network on it (another CIDR than the one it has is a
  :class:`RuntimeDriverError`); process has no pod network and does nothing.
* ``create_container`` only creates; ``start_container`` starts.  A container that exits is
  kept (status ``exited`` with exit code, ``reason`` "OOMKilled" when the kernel killed it for
  its memory limit, else "Completed"/"Error") until ``remove_container``.
* ``stop_container`` sends SIGTERM, waits ``grace_seconds``, then SIGKILL.
* ``stop_sandbox`` ends a pod that has finished: its containers stop (kept for logs) and its
  IP is released; a stopped sandbox is not ready (the agent removes it before making a new one).
* ``ensure_image`` honours the policy: ``Never`` fails with :class:`ImageNotPresentError` if the
  image is missing, ``IfNotPresent`` pulls only when missing, ``Always`` always pulls; a pull
  that fails raises :class:`ImagePullError` (the agent reports ErrImagePull/ImagePullBackOff).
* Errors are typed (:class:`RuntimeDriverError` subclasses); ``recoverable`` says whether
  retrying the same call later may succeed.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class RuntimeDriverError(Exception):
    recoverable: bool = True


class NotFoundError(RuntimeDriverError):
    recoverable = False


class ImagePullError(RuntimeDriverError):
    """The image could not be pulled (registry unreachable, no such image)."""


class ImageNotPresentError(RuntimeDriverError):
    """imagePullPolicy Never and the image is not on the node."""


class InvalidSpecError(RuntimeDriverError):
    """The spec cannot be run by this driver (e.g. privileged not allowed)."""

    recoverable = False


@dataclass(frozen=True, slots=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class PortMapping:
    container_port: int
    protocol: str = "TCP"
    host_port: int = 0
    host_ip: str = ""


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_limit_millis: int = 0  # 0 = unlimited
    cpu_request_millis: int = 0
    memory_limit_bytes: int = 0  # 0 = unlimited
    memory_request_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Security:
    run_as_user: int | None = None
    run_as_group: int | None = None
    read_only_root_filesystem: bool = False
    privileged: bool = False
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    pod_uid: str
    namespace: str
    name: str
    hostname: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[PortMapping, ...] = ()
    dns_servers: tuple[str, ...] = ()
    dns_searches: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...] = ()  # Kubernetes "command" (replaces the entrypoint)
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    resources: Resources = Resources()
    security: Security = Security()
    labels: dict[str, str] = field(default_factory=dict)
    stdin: bool = False
    tty: bool = False


class State(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    id: str
    pod_uid: str
    ip: str
    ready: bool
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    state: State
    image: str
    image_id: str = ""
    exit_code: int | None = None
    reason: str = ""  # "OOMKilled", "Error", "Completed" for exited containers
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerStats:
    cpu_usage_ns: int
    memory_working_set_bytes: int
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ExecSession(Protocol):
    """An interactive exec: write stdin, read output streams, wait for the exit code."""

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, data) pairs: stream 1 = stdout, 2 = stderr; ends when the process exits."""
        ...

    async def resize(self, width: int, height: int) -> None: ...

    async def wait(self) -> int: ...

    async def kill(self) -> None: ...


class RuntimeDriver(Protocol):
    """A container runtime as the agent sees it; see the module docstring for the contract."""

    name: str
    #: True for drivers that isolate containers (podman); False for ``process``.
    isolated: bool
    #: True when the driver has no pod network yet and must get the node's podCIDR through
    #: :meth:`configure_network` before any pod starts (podman built without a subnet).
    needs_pod_cidr: bool

    async def version(self) -> str: ...

    async def configure_network(self, cidr: str) -> None:
        """Set up the pod network on ``cidr`` (the node's podCIDR); idempotent for one CIDR.
        podman: the node's bridge network with that subnet (then the warm pool fills); process:
        nothing (pods share the host's network).  RuntimeDriverError when it cannot be done."""
        ...

    async def close(self) -> None:
        """Release the driver's own resources (clients, background tasks); pods and containers stay."""
        ...

    async def ensure_image(self, image: str, policy: str) -> str:
        """Make ``image`` available per imagePullPolicy; returns its image ID."""
        ...

    async def create_sandbox(self, spec: SandboxSpec) -> SandboxStatus: ...

    async def stop_sandbox(self, sandbox_id: str, grace_seconds: float) -> None:
        """Stop the sandbox (kubelet's StopPodSandbox, for a pod that has ended): containers still
        running get ``grace_seconds`` after SIGTERM, then the network goes and the pod IP is
        released.  The containers stay, exited, with their logs; ``list_sandboxes`` reports the
        sandbox not ready.  Idempotent; NotFoundError if there is no such sandbox."""
        ...

    async def remove_sandbox(self, sandbox_id: str) -> None: ...

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[SandboxStatus]:
        """Every sandbox of this node, or only pod ``pod_uid``'s (cheaper: the agent's per-pod sync)."""
        ...

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, grace_seconds: float) -> None: ...

    async def remove_container(self, container_id: str) -> None: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    async def inspect_container(self, container_id: str) -> ContainerStatus: ...

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: datetime | None = None) -> AsyncIterator[bytes]:
        """The container's output (stdout and stderr interleaved), line by line."""
        ...

    async def exec(self, container_id: str, command: list[str], timeout: float) -> ExecResult:  # noqa: ASYNC109
        """Run a command to completion (used by exec probes)."""
        ...

    async def exec_stream(self, container_id: str, command: list[str], *, stdin: bool,
                          tty: bool) -> ExecSession:
        """Start an interactive command (``kubectl exec``)."""
        ...

    async def stats(self, container_id: str) -> ContainerStats: ...
