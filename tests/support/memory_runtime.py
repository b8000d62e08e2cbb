"""An in-memory container runtime for agent tests: the RuntimeDriver contract, with time and exits
under the test's control.

:class:`MemoryRuntime` keeps sandboxes and containers in dicts.  Nothing runs: a started
container stays ``running`` until the test calls :meth:`MemoryRuntime.exit` (with the exit code
it wants, at the injected clock's time), which is what makes restart rules and CrashLoopBackOff
testable to the second without processes or sleeps.  It follows the driver contract of
:mod:`shoal.agent.runtime.driver` that the pod sync relies on: labels kept and listed again,
``create`` only creates, ``start`` starts, exited containers stay until removed, a stopped
sandbox is not ready and stops its containers, unknown ids raise ``NotFoundError``.
Logs, exec and stats are not supported (``RuntimeDriverError``).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

from shoal.agent.runtime import driver as rt
from shoal.kube.clock import Clock

__all__ = ["MemoryRuntime"]


class MemoryRuntime:
    #: No pod network: pods share the host's, as with the process driver.
    needs_pod_cidr = False

    name = "memory"
    isolated = False

    def __init__(self, clock: Clock, pod_ip: str = "10.42.0.7") -> None:
        self.clock = clock
        self.pod_ip = pod_ip
        self.sandboxes: dict[str, rt.SandboxStatus] = {}
        self.containers: dict[str, rt.ContainerStatus] = {}
        self.specs: dict[str, rt.ContainerSpec] = {}
        self.started: list[str] = []  # container ids, in start order
        self._ids = itertools.count(1)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    # -- what tests use ----------------------------------------------------------------------

    def exit(self, container_id: str, code: int, reason: str = "") -> None:
        """The container's process ends now with ``code``."""
        found = self._container(container_id)
        assert found.state is rt.State.RUNNING, f"{container_id} is {found.state}"
        self.containers[container_id] = replace(
            found, state=rt.State.EXITED, exit_code=code, finished_at=self._now(),
            reason=reason or ("Completed" if code == 0 else "Error"))

    def attempts(self, name: str) -> list[rt.ContainerStatus]:
        """The containers made for spec container ``name``, oldest first."""
        return sorted((c for c in self.containers.values() if c.labels.get("shoal.container.name") == name),
                      key=lambda c: int(c.labels.get("shoal.container.attempt", "0")))

    def running(self, name: str) -> rt.ContainerStatus:
        [found] = [c for c in self.attempts(name) if c.state is rt.State.RUNNING]
        return found

    # -- the driver ----------------------------------------------------------------------------

    async def version(self) -> str:
        return "memory 1"

    async def configure_network(self, cidr: str) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ensure_image(self, image: str, policy: str) -> str:
        return f"sha256:{abs(hash(image)):064x}"[:71]

    async def create_sandbox(self, spec: rt.SandboxSpec) -> rt.SandboxStatus:
        sandbox = rt.SandboxStatus(f"sb{next(self._ids)}", spec.pod_uid, self.pod_ip, True, dict(spec.labels),
                                   created_at=self._now())
        self.sandboxes[sandbox.id] = sandbox
        return sandbox

    async def stop_sandbox(self, sandbox_id: str, grace_seconds: float) -> None:
        sandbox = self._sandbox(sandbox_id)
        for container in [c for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            if container.state is rt.State.RUNNING:
                self.exit(container.id, 143)
        self.sandboxes[sandbox_id] = replace(sandbox, ready=False, ip="")

    async def remove_sandbox(self, sandbox_id: str) -> None:
        self._sandbox(sandbox_id)
        for container_id in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            await self.remove_container(container_id)
        del self.sandboxes[sandbox_id]

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[rt.SandboxStatus]:
        return [s for s in self.sandboxes.values() if pod_uid is None or s.pod_uid == pod_uid]

    async def create_container(self, sandbox_id: str, spec: rt.ContainerSpec) -> str:
        self._sandbox(sandbox_id)
        container_id = f"c{next(self._ids)}"
        self.containers[container_id] = rt.ContainerStatus(
            container_id, sandbox_id, spec.name, rt.State.CREATED, spec.image,
            image_id=await self.ensure_image(spec.image, "IfNotPresent"), created_at=self._now(),
            labels=dict(spec.labels))
        self.specs[container_id] = spec
        return container_id

    async def start_container(self, container_id: str) -> None:
        found = self._container(container_id)
        if found.state is not rt.State.CREATED:
            raise rt.RuntimeDriverError(f"container {container_id} was already started")
        self.containers[container_id] = replace(found, state=rt.State.RUNNING, started_at=self._now())
        self.started.append(container_id)

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        if self._container(container_id).state is rt.State.RUNNING:
            self.exit(container_id, 143)

    async def remove_container(self, container_id: str) -> None:
        self.containers.pop(container_id, None)
        self.specs.pop(container_id, None)

    async def list_containers(self, sandbox_id: str | None = None) -> list[rt.ContainerStatus]:
        return [c for c in self.containers.values() if sandbox_id is None or c.sandbox_id == sandbox_id]

    async def inspect_container(self, container_id: str) -> rt.ContainerStatus:
        return self._container(container_id)

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: datetime | None = None) -> AsyncIterator[bytes]:
        raise rt.RuntimeDriverError("the memory runtime keeps no logs")

    async def exec(self, container_id: str, command: list[str], timeout: float) -> rt.ExecResult:  # noqa: ASYNC109
        raise rt.RuntimeDriverError("the memory runtime cannot exec")

    async def exec_stream(self, container_id: str, command: list[str], *, stdin: bool,
                          tty: bool) -> rt.ExecSession:
        raise rt.RuntimeDriverError("the memory runtime cannot exec")

    async def stats(self, container_id: str) -> rt.ContainerStats:
        raise rt.RuntimeDriverError("the memory runtime has no stats")

    def _sandbox(self, sandbox_id: str) -> rt.SandboxStatus:
        found = self.sandboxes.get(sandbox_id)
        if found is None:
            raise rt.NotFoundError(f"no sandbox {sandbox_id}")
        return found

    def _container(self, container_id: str) -> rt.ContainerStatus:
        found = self.containers.get(container_id)
        if found is None:
            raise rt.NotFoundError(f"no container {container_id}")
        return found
