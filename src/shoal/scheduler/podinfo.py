"""What the scheduler needs to know about one pod, computed once per pod version.

:class:`PodInfo` wraps a pod dict (read-only: it is the informer's cached object) with the
numbers every scheduling cycle would otherwise recompute: the resource requests, the
"non-zero" requests used for scoring, the controller owner's uid, the host ports, and the
priority.

Resource arithmetic follows Kubernetes' ``resource.PodRequests``:

* a container's request for a resource defaults to its limit when only the limit is given
  (the API server's defaulting; done again here for objects that skipped it);
* regular containers add up; restartable init containers ("sidecars",
  ``restartPolicy: Always``) add to them, since they keep running;
* an ordinary init container runs alone (next to the sidecars started before it), so the pod
  needs ``max(sum(containers) + sum(sidecars), max_i(init_i + sidecars before i))``;
* ``spec.overhead`` is added last.

CPU is counted in millicores, memory in bytes, both rounded up.  For scoring, a container
that requests no cpu counts as 100m and one that requests no memory as 200 MiB
(``DefaultMilliCPURequest`` / ``DefaultMemoryRequest``), so pods without requests still
spread.  A quantity that does not parse raises :class:`InvalidPodError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from shoal.kube import quantity
from shoal.kube.objects import Obj

__all__ = [
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "HostPort",
    "InvalidPodError",
    "PodInfo",
    "controller_uid",
    "is_terminal",
    "pod_key",
]

DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

#: (protocol, hostIP, hostPort); hostIP "" means every address.
HostPort = tuple[str, str, int]


class InvalidPodError(ValueError):
    """A pod whose resources cannot be interpreted (the API server should have refused it)."""


def pod_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def is_terminal(pod: Obj) -> bool:
    """Succeeded or Failed: the pod no longer holds node resources."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def controller_uid(pod: Obj) -> str:
    """The uid of the ownerReference with ``controller: true``, or ``""``."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


@dataclass(slots=True)
class _Requests:
    cpu: int = 0
    memory: int = 0

    def add(self, other: _Requests) -> None:
        self.cpu += other.cpu
        self.memory += other.memory

    def max_with(self, other: _Requests) -> None:
        self.cpu = max(self.cpu, other.cpu)
        self.memory = max(self.memory, other.memory)


def _quantity(value: Any, where: str) -> Fraction:
    try:
        return quantity.parse_quantity(value)
    except ValueError as exc:
        raise InvalidPodError(f"{where}: {exc}") from exc


def _container_requests(container: Obj, non_zero: bool) -> _Requests:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    name = container.get("name", "?")
    cpu = requests.get("cpu", limits.get("cpu"))
    memory = requests.get("memory", limits.get("memory"))
    result = _Requests(
        math.ceil(_quantity(cpu, f"container {name} cpu") * 1000) if cpu is not None else 0,
        math.ceil(_quantity(memory, f"container {name} memory")) if memory is not None else 0,
    )
    if non_zero:
        result.cpu = result.cpu or DEFAULT_MILLI_CPU_REQUEST
        result.memory = result.memory or DEFAULT_MEMORY_REQUEST
    return result


def _dicts(value: Any) -> list[Obj]:
    return [item for item in value or () if isinstance(item, dict)]


def pod_requests(spec: Obj, *, non_zero: bool = False) -> tuple[int, int]:
    """``(millicores, bytes)`` the pod needs on a node (see the module docstring)."""
    total = _Requests()
    for container in _dicts(spec.get("containers")):
        total.add(_container_requests(container, non_zero))
    sidecars = _Requests()
    peak = _Requests()
    for container in _dicts(spec.get("initContainers")):
        requests = _container_requests(container, non_zero)
        if container.get("restartPolicy") == "Always":
            sidecars.add(requests)
            running = _Requests(sidecars.cpu, sidecars.memory)
        else:
            running = _Requests(sidecars.cpu + requests.cpu, sidecars.memory + requests.memory)
        peak.max_with(running)
    total.add(sidecars)
    total.max_with(peak)
    overhead = spec.get("overhead") or {}
    if "cpu" in overhead:
        total.cpu += math.ceil(_quantity(overhead["cpu"], "overhead cpu") * 1000)
    if "memory" in overhead:
        total.memory += math.ceil(_quantity(overhead["memory"], "overhead memory"))
    return total.cpu, total.memory


def host_ports(spec: Obj) -> tuple[HostPort, ...]:
    """Every ``hostPort`` the pod's containers (and sidecars) ask for."""
    found: list[HostPort] = []
    containers: Iterable[Obj] = [*_dicts(spec.get("containers")), *(
        c for c in _dicts(spec.get("initContainers")) if c.get("restartPolicy") == "Always")]
    for container in containers:
        for port in _dicts(container.get("ports")):
            number = port.get("hostPort")
            if isinstance(number, int) and number > 0:
                found.append((str(port.get("protocol") or "TCP"), str(port.get("hostIP") or ""), number))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod version, pre-digested.  ``pod`` is shared with the informer: never mutate it."""

    key: str
    pod: Obj
    uid: str
    cpu: int
    memory: int
    nz_cpu: int
    nz_memory: int
    owner_uid: str
    ports: tuple[HostPort, ...]
    priority: int

    @classmethod
    def of(cls, pod: Obj) -> PodInfo:
        spec = pod.get("spec") or {}
        cpu, memory = pod_requests(spec)
        nz_cpu, nz_memory = pod_requests(spec, non_zero=True)
        priority = spec.get("priority")
        return cls(
            key=pod_key(pod), pod=pod, uid=str((pod.get("metadata") or {}).get("uid") or ""),
            cpu=cpu, memory=memory, nz_cpu=nz_cpu, nz_memory=nz_memory,
            owner_uid=controller_uid(pod), ports=host_ports(spec),
            priority=priority if isinstance(priority, int) else 0,
        )

    @property
    def spec(self) -> Obj:
        spec = self.pod.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def namespace(self) -> str:
        return self.key.partition("/")[0]

    @property
    def name(self) -> str:
        return self.key.partition("/")[2]
