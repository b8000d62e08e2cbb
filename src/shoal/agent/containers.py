"""The runtime side of one pod: what exists (:class:`RuntimePod`) and starting one container.

Everything the agent creates carries labels (:data:`LABEL_POD_UID` ...) so that the runtime
alone tells which pod, container and attempt a runtime object is — this is what makes an agent
restart adopt containers instead of duplicating them, and keeps ``restartCount`` counting
(it is the ``shoal.container.attempt`` of the newest container).  ``shoal.container.hash`` is
a hash of the container's spec: a running container whose hash no longer matches (the image
was changed) is restarted.

:meth:`ContainerStarter.start` performs kubelet's ``startContainer`` steps for one attempt:
image (per ``imagePullPolicy``, with its own backoff and the events Pulling / Pulled /
Failed / BackOff), environment (with the Service variables) and mounts (with the pod's
resolv.conf on /etc/resolv.conf, :mod:`shoal.agent.resolvconf`), ``create_container`` (event Created), and
``start_container`` (event Started).  It returns ``None`` on success, else the
:class:`~shoal.agent.status.Waiting` reason to report (``ErrImagePull``, ``ImagePullBackOff``,
``ErrImageNeverPull``, ``CreateContainerConfigError``, ``CreateContainerError``,
``RunContainerError``).  Runtime failures are never swallowed: each one becomes a Warning event
and a waiting reason, and the caller retries with backoff.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from shoal.agent import envs
from shoal.agent.backoff import Backoff
from shoal.agent.resolvconf import PodDns
from shoal.agent.runtime import driver as rt
from shoal.agent.status import Waiting
from shoal.agent.volumes import HostVolume
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj
from shoal.kube.quantity import parse_quantity
from shoal.kube.times import go_duration

__all__ = ["LABEL_ATTEMPT", "LABEL_CONTAINER", "LABEL_HASH", "LABEL_POD_NAME", "LABEL_POD_NAMESPACE",
           "LABEL_POD_UID", "ContainerStarter", "RuntimePod", "attempt_of", "container_hash", "observe",
           "resources_of", "security_of"]

#: record(pod, container name ("" for the pod), event type, reason, message)
Recorder = Callable[[Obj, str, str, str, str], Awaitable[None]]

LABEL_POD_UID = "shoal.pod.uid"
LABEL_POD_NAME = "shoal.pod.name"
LABEL_POD_NAMESPACE = "shoal.pod.namespace"
LABEL_CONTAINER = "shoal.container.name"
LABEL_ATTEMPT = "shoal.container.attempt"
LABEL_HASH = "shoal.container.hash"
LABEL_KIND = "shoal.container.kind"  # "init" or "app"


def attempt_of(container: rt.ContainerStatus) -> int:
    try:
        return int(container.labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def container_hash(container: Obj) -> str:
    return hashlib.sha256(orjson.dumps(container, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass(slots=True)
class RuntimePod:
    """The sandboxes and containers of one pod uid, as the runtime reports them."""

    uid: str
    sandboxes: list[rt.SandboxStatus] = field(default_factory=list)
    containers: list[rt.ContainerStatus] = field(default_factory=list)

    def sandbox(self) -> rt.SandboxStatus | None:
        """The newest ready sandbox."""
        ready = [s for s in self.sandboxes if s.ready]
        return max(ready, key=lambda s: s.created_at.timestamp() if s.created_at else 0.0) if ready else None

    def attempts(self, name: str) -> list[rt.ContainerStatus]:
        """Containers for spec container ``name``, newest attempt first."""
        found = [c for c in self.containers if c.labels.get(LABEL_CONTAINER, c.name) == name]
        return sorted(found, key=lambda c: (attempt_of(c), c.created_at.timestamp() if c.created_at else 0.0),
                      reverse=True)

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not self.containers


async def observe(driver: rt.RuntimeDriver, uid: str,
                  sandboxes: list[rt.SandboxStatus] | None = None) -> RuntimePod:
    """The runtime state of pod ``uid`` (two or more driver calls); with ``sandboxes`` (the
    pod's, as just seen) only their containers are listed again."""
    found = RuntimePod(uid)
    for sandbox in await driver.list_sandboxes(uid) if sandboxes is None else sandboxes:
        if sandbox.pod_uid == uid or sandbox.labels.get(LABEL_POD_UID) == uid:
            found.sandboxes.append(sandbox)
            found.containers += await driver.list_containers(sandbox.id)
    return found


def resources_of(container: Obj) -> rt.Resources:
    spec = container.get("resources") or {}

    def amount(part: str, name: str, scale: int) -> int:
        value = (spec.get(part) or {}).get(name)
        return 0 if value is None else math.ceil(parse_quantity(value) * scale)

    return rt.Resources(cpu_limit_millis=amount("limits", "cpu", 1000),
                        cpu_request_millis=amount("requests", "cpu", 1000),
                        memory_limit_bytes=amount("limits", "memory", 1),
                        memory_request_bytes=amount("requests", "memory", 1))


def security_of(pod: Obj, container: Obj) -> rt.Security:
    merged = {**((pod.get("spec") or {}).get("securityContext") or {}), **(container.get("securityContext") or {})}
    caps = merged.get("capabilities") or {}
    return rt.Security(run_as_user=merged.get("runAsUser"), run_as_group=merged.get("runAsGroup"),
                       read_only_root_filesystem=bool(merged.get("readOnlyRootFilesystem")),
                       privileged=bool(merged.get("privileged")),
                       capabilities_add=tuple(caps.get("add") or ()),
                       capabilities_drop=tuple(caps.get("drop") or ()))


class ContainerStarter:
    def __init__(self, driver: rt.RuntimeDriver, clock: Clock, record: Recorder, *, node_ip: str,
                 image_backoff: Backoff, allocatable: Callable[[], dict[str, str]],
                 dns: PodDns | None = None) -> None:
        self.driver = driver
        #: Writes each pod's resolv.conf, mounted on every container's /etc/resolv.conf.
        self.dns = dns
        self.clock = clock
        self.record = record
        self.node_ip = node_ip
        self.image_backoff = image_backoff
        self.allocatable = allocatable
        self._pull_errors: dict[str, str] = {}

    async def start(self, pod: Obj, container: Obj, *, kind: str, attempt: int, sandbox: rt.SandboxStatus,
                    volumes: dict[str, HostVolume], sources: envs.SourceCache) -> Waiting | None:
        """Create and start attempt ``attempt`` of ``container``; ``None`` or why it could not."""
        name = str(container.get("name"))
        waiting = await self.ensure_image(pod, container)
        if waiting is not None:
            return waiting
        try:
            env = await envs.resolve_env(pod, container, sources, node_ip=self.node_ip, pod_ip=sandbox.ip,
                                         allocatable=self.allocatable())
            mounts = self._mounts(container, volumes)
            resolv = self.dns.mount(pod, container) if self.dns is not None else None
        except (envs.EnvError, OSError) as exc:
            await self.record(pod, name, "Warning", "Failed", f"Error: {exc}")
            return Waiting("CreateContainerConfigError", str(exc))
        command, args = envs.expand_command(container, env)
        meta = pod.get("metadata") or {}
        labels = {LABEL_POD_UID: str(meta.get("uid")), LABEL_POD_NAME: str(meta.get("name")),
                  LABEL_POD_NAMESPACE: str(meta.get("namespace")), LABEL_CONTAINER: name,
                  LABEL_ATTEMPT: str(attempt), LABEL_HASH: container_hash(container), LABEL_KIND: kind}
        try:
            spec = rt.ContainerSpec(name=name, image=str(container.get("image")), command=command, args=args,
                                    env=env, working_dir=str(container.get("workingDir") or ""),
                                    mounts=mounts if resolv is None else (*mounts, resolv),
                                    resources=resources_of(container), security=security_of(pod, container),
                                    labels=labels, stdin=bool(container.get("stdin")),
                                    tty=bool(container.get("tty")))
        except ValueError as exc:
            await self.record(pod, name, "Warning", "Failed", f"Error: {exc}")
            return Waiting("CreateContainerConfigError", str(exc))
        try:
            container_id = await self.driver.create_container(sandbox.id, spec)
        except rt.RuntimeDriverError as exc:
            await self.record(pod, name, "Warning", "Failed", f"Error: {exc}")
            return Waiting("CreateContainerError", str(exc))
        await self.record(pod, name, "Normal", "Created", f"Created container: {name}")
        try:
            await self.driver.start_container(container_id)
        except rt.RuntimeDriverError as exc:
            await self.record(pod, name, "Warning", "Failed", f"Error: {exc}")
            await self.driver.remove_container(container_id)
            return Waiting("RunContainerError", str(exc))
        await self.record(pod, name, "Normal", "Started", f"Started container {name}")
        return None

    def _mounts(self, container: Obj, volumes: dict[str, HostVolume]) -> tuple[rt.Mount, ...]:
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(str(mount.get("name")))
            if volume is None:
                raise envs.EnvError(f'cannot find volume "{mount.get("name")}" to mount into container '
                                    f'"{container.get("name")}"')
            host = Path(volume.path)
            sub = str(mount.get("subPath") or "")
            if sub:
                if sub.startswith("/") or ".." in Path(sub).parts:
                    raise envs.EnvError(f"invalid subPath {sub!r}")
                host = host / sub
                if not host.exists() and not volume.read_only:
                    host.mkdir(parents=True, exist_ok=True)
            mounts.append(rt.Mount(str(host), str(mount.get("mountPath")),
                                   read_only=bool(mount.get("readOnly")) or volume.read_only))
        return tuple(mounts)

    async def ensure_image(self, pod: Obj, container: Obj) -> Waiting | None:
        """kubelet's ``EnsureImageExists``: events, pull backoff, waiting reasons."""
        name, image = str(container.get("name")), str(container.get("image"))
        policy = str(container.get("imagePullPolicy") or "IfNotPresent")
        if policy != "Always":
            try:
                await self.driver.ensure_image(image, "Never")
            except rt.ImageNotPresentError:
                if policy == "Never":
                    message = f'Container image "{image}" is not present with pull policy of Never'
                    await self.record(pod, name, "Warning", "ErrImageNeverPull", message)
                    return Waiting("ErrImageNeverPull", message)
            except rt.RuntimeDriverError as exc:
                await self.record(pod, name, "Warning", "Failed", f'Failed to inspect image "{image}": {exc}')
                return Waiting("ImageInspectError", str(exc))
            else:
                await self.record(pod, name, "Normal", "Pulled",
                                  f'Container image "{image}" already present on machine')
                return None
        key = f"{(pod.get('metadata') or {}).get('uid')}/{image}"
        if self.image_backoff.remaining_since_update(key) > 0 and key in self._pull_errors:
            await self.record(pod, name, "Normal", "BackOff", f'Back-off pulling image "{image}"')
            return Waiting("ImagePullBackOff",
                           f'Back-off pulling image "{image}": ErrImagePull: {self._pull_errors[key]}')
        await self.record(pod, name, "Normal", "Pulling", f'Pulling image "{image}"')
        began = self.clock.now()
        try:
            await self.driver.ensure_image(image, policy)
        except rt.RuntimeDriverError as exc:
            self._pull_errors[key] = str(exc)
            self.image_backoff.next(key)
            await self.record(pod, name, "Warning", "Failed", f'Failed to pull image "{image}": {exc}')
            await self.record(pod, name, "Warning", "Failed", "Error: ErrImagePull")
            return Waiting("ErrImagePull", str(exc))
        took = go_duration(self.clock.now() - began)
        self._pull_errors.pop(key, None)
        self.image_backoff.reset(key)
        await self.record(pod, name, "Normal", "Pulled",
                          f'Successfully pulled image "{image}" in {took} ({took} including waiting)')
        return None

    def pull_retry_in(self, pod: Obj, image: str) -> float:
        """Seconds until an image that failed to pull may be tried again (0: now)."""
        return self.image_backoff.remaining_since_update(f"{(pod.get('metadata') or {}).get('uid')}/{image}")

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._pull_errors if k.startswith(f"{uid}/")]:
            del self._pull_errors[key]
        self.image_backoff.reset_prefix(f"{uid}/")
