"""Node registration and status (kubelet ``registerWithAPIServer`` and ``updateNodeStatus``).

:meth:`NodeManager.register` creates the Node ``node_name`` (or, when it exists, reconciles its
labels) with the labels kubelet sets (``kubernetes.io/hostname``, ``kubernetes.io/os``,
``kubernetes.io/arch`` and their ``beta.`` twins, ``node-role.kubernetes.io/control-plane`` when
asked) and a full status.  :meth:`NodeManager.run` then writes ``nodes/status`` (a merge patch)
every ``status_interval`` seconds and at once when something changed (network readiness):

* ``capacity``: cpu = ``os.cpu_count()``, memory = MemTotal of /proc/meminfo in Ki, pods 110,
  ephemeral-storage = the size of the data dir's file system; ``allocatable``: the same minus
  kubelet's default hard eviction thresholds (100 Mi memory, 10 % storage);
* ``addresses`` (InternalIP, Hostname), ``daemonEndpoints.kubeletEndpoint.Port``, ``nodeInfo``
  (kernel, OS image from /etc/os-release, machine and boot IDs, ``containerRuntimeVersion`` as
  ``<driver>://<version>``, ``kubeletVersion`` :data:`KUBELET_VERSION`);
* conditions MemoryPressure/DiskPressure/PIDPressure False and Ready — True ("kubelet is
  posting ready status") unless the pod network is required and not configured yet.  Each
  write bumps ``lastHeartbeatTime``; ``lastTransitionTime`` changes only when the status flips
  (and survives an agent restart: it is taken over from the existing Node).

``spec.podCIDR`` is assigned by the control plane; :meth:`NodeManager.wait_pod_cidr` polls for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from shoal.agent.runtime.driver import RuntimeDriver
from shoal.client import resources
from shoal.client.errors import AlreadyExistsError, ApiClientError, NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube.clock import Clock, race_sleep
from shoal.kube.objects import Obj
from shoal.kube.times import format_time

__all__ = ["KUBELET_VERSION", "NodeManager", "host_facts", "runtime_version"]

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0-shoal"
NETWORK_NOT_READY = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                     "message:Network plugin returns error: cni plugin not initialized")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
_PRESSURE = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return "Linux"


def _mem_total_ki() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def runtime_version(driver: str, version: str) -> str:
    """``<driver>://<version>`` as kubelet reports it ("podman 4.3.1" -> "podman://4.3.1")."""
    if "://" in version:
        return version
    words = version.removeprefix(f"{driver} ").split()
    return f"{driver}://{words[0] if words else 'unknown'}"


def host_facts(data_dir: str | os.PathLike[str]) -> Obj:
    """Capacity, allocatable and nodeInfo of this machine (without the runtime version)."""
    memory_ki = _mem_total_ki()
    disk = shutil.disk_usage(data_dir)
    capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_ki}Ki", "pods": "110",
                "ephemeral-storage": f"{disk.total // 1024}Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    allocatable = {**capacity, "memory": f"{max(memory_ki - 100 * 1024, 0)}Ki",
                   "ephemeral-storage": str(disk.total * 9 // 10)}
    machine_id = _read("/etc/machine-id")
    info = {"architecture": _ARCH.get(platform.machine(), platform.machine()),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "kubeProxyVersion": "", "kubeletVersion": KUBELET_VERSION, "machineID": machine_id,
            "operatingSystem": "linux", "osImage": _os_image(),
            "systemUUID": _read("/sys/class/dmi/id/product_uuid") or machine_id}
    return {"capacity": capacity, "allocatable": allocatable, "nodeInfo": info}


class NodeManager:
    def __init__(self, client: ApiClient, driver: RuntimeDriver, *, node_name: str, node_ip: str,
                 kubelet_port: int, data_dir: str | os.PathLike[str], clock: Clock, status_interval: float = 10.0,
                 control_plane: bool = False, labels: dict[str, str] | None = None,
                 network_required: bool = False) -> None:
        self.client = client
        self.driver = driver
        self.node_name = node_name
        self.node_ip = node_ip
        self.kubelet_port = kubelet_port
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.status_interval = status_interval
        self.control_plane = control_plane
        self.extra_labels = dict(labels or {})
        self.network_ready = not network_required
        self.node_uid = ""
        self.pod_cidr = ""
        self._facts: Obj = {}
        self._transitions: dict[str, tuple[str, str]] = {}  # type -> (status, lastTransitionTime)
        self._changed = asyncio.Event()
        #: Status writes that failed (each was logged and retried).
        self.failures = 0

    @property
    def allocatable(self) -> dict[str, str]:
        return dict(self._facts.get("allocatable") or {})

    def labels(self) -> dict[str, str]:
        arch = _ARCH.get(platform.machine(), platform.machine())
        labels = {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}
        if self.control_plane:
            labels["node-role.kubernetes.io/control-plane"] = ""
        return {**labels, **self.extra_labels}

    def set_network_ready(self, ready: bool) -> None:
        if ready != self.network_ready:
            self.network_ready = ready
            self._changed.set()

    async def refresh_facts(self) -> None:
        """Re-read the machine facts and the runtime version (done on registration)."""
        facts = await asyncio.to_thread(host_facts, self.data_dir)
        facts["nodeInfo"]["containerRuntimeVersion"] = runtime_version(self.driver.name, await self.driver.version())
        self._facts = facts

    def status(self) -> Obj:
        """The Node status to write now."""
        now = format_time(self.clock.now())
        wanted = [(kind, "False", reason, message) for kind, reason, message in _PRESSURE]
        if self.network_ready:
            wanted.append(("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
        else:
            wanted.append(("Ready", "False", "KubeletNotReady", NETWORK_NOT_READY))
        conditions = []
        for kind, status, reason, message in wanted:
            before = self._transitions.get(kind)
            transition = before[1] if before is not None and before[0] == status else now
            self._transitions[kind] = (status, transition)
            conditions.append({"type": kind, "status": status, "lastHeartbeatTime": now,
                               "lastTransitionTime": transition, "reason": reason, "message": message})
        return {"capacity": self._facts["capacity"], "allocatable": self._facts["allocatable"],
                "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": self.node_ip},
                              {"type": "Hostname", "address": self.node_name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                "nodeInfo": self._facts["nodeInfo"]}

    def _observe(self, node: Obj) -> None:
        self.node_uid = str((node.get("metadata") or {}).get("uid") or self.node_uid)
        self.pod_cidr = str((node.get("spec") or {}).get("podCIDR") or self.pod_cidr)

    async def register(self, stop: asyncio.Event) -> bool:
        """Create or reconcile the Node, retrying until it worked (True) or ``stop`` (False)."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self._register_once()
                return True
            except ApiClientError as exc:
                self.failures += 1
                log.warning("node %s: registration failed (%s); retrying in %.1fs", self.node_name, exc, delay)
            await race_sleep(self.clock, delay, stop.wait())
            delay = min(delay * 2, 10.0)
        return False

    async def _register_once(self) -> None:
        await self.refresh_facts()
        meta = {"name": self.node_name, "labels": self.labels(),
                "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true",
                                "node.alpha.kubernetes.io/ttl": "0"}}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": {}, "status": self.status()}
        try:
            created = await self.client.create(resources.NODES, node)
            log.info("node %s registered", self.node_name)
        except AlreadyExistsError:
            existing = await self.client.get(resources.NODES, self.node_name)
            for cond in (existing.get("status") or {}).get("conditions") or []:
                if cond.get("type") and cond.get("lastTransitionTime"):
                    self._transitions[str(cond["type"])] = (str(cond.get("status")), str(cond["lastTransitionTime"]))
            created = await self.client.patch(resources.NODES, self.node_name, {"metadata": {"labels": self.labels()}})
            log.info("node %s already registered; labels reconciled", self.node_name)
        self._observe(created)
        self._observe(await self.client.patch(resources.NODES, self.node_name, {"status": self.status()},
                                              subresource="status"))

    async def write_status(self) -> None:
        node = await self.client.patch(resources.NODES, self.node_name, {"status": self.status()},
                                       subresource="status")
        self._observe(node)

    async def run(self, stop: asyncio.Event) -> None:
        """Write the status every ``status_interval`` and on change, until ``stop``."""
        delay = self.status_interval
        while not stop.is_set():
            await race_sleep(self.clock, delay, _first(stop.wait(), self._changed.wait()))
            if stop.is_set():
                return
            self._changed.clear()
            try:
                try:
                    await self.write_status()
                except NotFoundError:
                    log.warning("node %s was deleted; registering it again", self.node_name)
                    await self._register_once()
                delay = self.status_interval
            except ApiClientError as exc:
                self.failures += 1
                delay = min(self.status_interval, 1.0)
                log.warning("node %s: status update failed (%s); retrying in %.1fs", self.node_name, exc, delay)

    async def wait_pod_cidr(self, stop: asyncio.Event, poll: float = 1.0) -> str:
        """``spec.podCIDR`` once the control plane assigned it ("" if ``stop`` came first)."""
        while not self.pod_cidr and not stop.is_set():
            try:
                self._observe(await self.client.get(resources.NODES, self.node_name))
            except ApiClientError as exc:
                log.warning("node %s: reading spec.podCIDR failed: %s", self.node_name, exc)
            if not self.pod_cidr:
                await race_sleep(self.clock, poll, stop.wait())
        return self.pod_cidr


async def _first(*awaitables: Any) -> None:
    """Return when the first of ``awaitables`` finishes (the others are cancelled)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
