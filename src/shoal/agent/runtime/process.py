"""The process runtime driver: containers are plain host processes.  UNSAFE: NO ISOLATION.

For machines without podman and for hollow nodes in scale tests.  A sandbox is a directory
under ``state_dir`` and its IP is 127.0.0.1 (every pod shares the host network).  A container
is its command + args run by a small supervisor (:mod:`.process_supervisor`) in a session of
its own, so it outlives agent restarts; the supervisor records the start, the CRI-format log and
the exit code in the container's directory (:mod:`.process_state`), so a new
:class:`ProcessDriver` on the same ``state_dir`` finds running and exited containers again and
never starts a duplicate.

What a container spec means here, and the documented limitations:

* image: not used, except the demo image (``localhost/shoal-demo:*``): with no ``command`` and
  no ``args`` it runs ``busybox httpd`` on ``127.0.0.1:${PORT:-8080}`` serving the pod's
  hostname (the same Deployment works on both drivers; two such pods on one node collide on
  the port).  With ``args`` only, the args are the command (the demo image has no entrypoint).
  Any other image needs an explicit ``command``, else :class:`InvalidSpecError`.
  ``ensure_image`` succeeds for every image and policy, returning a name-derived pseudo ID.
* env: only the spec's env plus PATH, HOME and HOSTNAME — the agent's environment is not
  inherited.  ``working_dir`` must exist (default: the container's state directory).
* memory limit: ``RLIMIT_AS`` (address space) on the command — allocations beyond it fail
  with ENOMEM instead of an OOM kill, so reason ``OOMKilled`` is never reported.  CPU
  limits/requests, mounts, read-only root, capabilities and ``privileged`` are ignored
  (there is nothing to isolate); ``runAsUser``/``runAsGroup`` apply when the agent is root.
* stdin of the container is /dev/null; ``tty`` is ignored for the container itself.
* no UTS namespace: ``hostname`` inside a container prints the host's name; ``HOSTNAME`` is
  set to the pod's hostname, and the demo server serves the pod's hostname from a file.
* stop: SIGTERM to the command's process group, then SIGKILL after the grace period; any
  leftover process of the group is killed when the main process has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.agent.runtime import labels as labels_
from shoal.agent.runtime.crilog import read_log
from shoal.agent.runtime.demo_image import DEMO_REPOSITORY, busybox_path, is_demo_image
from shoal.agent.runtime.driver import (
    ContainerSpec,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    ExecSession,
    InvalidSpecError,
    RuntimeDriver,
    RuntimeDriverError,
    SandboxSpec,
    SandboxStatus,
    State,
)
from shoal.agent.runtime.execsession import ExecTimeoutError, SubprocessExecSession, run_to_completion
from shoal.agent.runtime.process_state import ContainerRecord, StateDir, new_id, read_json, write_json
from shoal.agent.runtime.process_stats import group_members, group_usage
from shoal.kube.times import format_nano, parse_time

log = logging.getLogger(__name__)

SUPERVISOR = Path(__file__).with_name("process_supervisor.py")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_START_TIMEOUT = 10.0
_POLL = 0.02
_warned = False

_DEMO_SCRIPT = """{busybox} httpd -f -p "127.0.0.1:${{PORT:-8080}}" -h {www} &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
"""


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("process runtime driver in use: containers run as plain host processes WITHOUT any "
                    "isolation (no namespaces, no cgroup limits); use it only for trusted workloads")


class ProcessDriver:
    """UNSAFE RuntimeDriver running containers as host processes; see the module docstring."""

    name = "process"
    isolated = False
    needs_pod_cidr = False

    def __init__(self, state_dir: Path) -> None:
        self.state = StateDir(Path(state_dir))
        _warn_once()

    async def close(self) -> None:
        """Nothing to release: supervised processes outlive the driver by design."""

    async def version(self) -> str:
        return f"process 1 (python {platform.python_version()})"

    async def configure_network(self, cidr: str) -> None:
        """Nothing to set up: every pod shares the host network (its IP is 127.0.0.1)."""

    async def ensure_image(self, image: str, policy: str) -> str:
        """Images are not used by this driver: always succeeds with a name-derived pseudo ID
        (the demo image's tags share one ID, as they do on podman)."""
        name = DEMO_REPOSITORY if is_demo_image(image) else image
        return "sha256:" + hashlib.sha256(name.encode()).hexdigest()

    # -- sandboxes ----------------------------------------------------------------------------

    async def create_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        for existing in self.state.all_sandboxes():
            if existing["pod_uid"] == spec.pod_uid and not existing.get("stopped"):
                return _sandbox_status(existing)
        sandbox_id = new_id()
        directory = self.state.sandbox_dir(sandbox_id)
        directory.mkdir(parents=True)
        data = {
            "id": sandbox_id, "pod_uid": spec.pod_uid, "name": spec.name, "namespace": spec.namespace,
            "hostname": spec.hostname, "labels": {**spec.labels, labels_.MANAGED: "true"},
            "created_at": format_nano(),
        }
        write_json(directory / "sandbox.json", data)
        return _sandbox_status(data)

    async def stop_sandbox(self, sandbox_id: str, grace_seconds: float) -> None:
        """Stop the sandbox's running containers and mark it stopped (there is no network to
        release: every pod shares 127.0.0.1)."""
        data = self.state.sandbox(sandbox_id)
        running = [r for r in self.state.all_containers()
                   if r.sandbox_id == sandbox_id and r.status().state is State.RUNNING]
        await asyncio.gather(*(self.stop_container(r.id, grace_seconds) for r in running))
        if not data.get("stopped"):
            write_json(self.state.sandbox_dir(sandbox_id) / "sandbox.json", {**data, "stopped": True})

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Kill and remove the sandbox's containers, then the sandbox (idempotent)."""
        for record in self.state.all_containers():
            if record.sandbox_id == sandbox_id:
                await self.remove_container(record.id)
        self.state.remove_tree(self.state.sandbox_dir(sandbox_id))

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[SandboxStatus]:
        found = [_sandbox_status(data) for data in self.state.all_sandboxes()]
        return found if pod_uid is None else [s for s in found if s.pod_uid == pod_uid]

    # -- containers ---------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        sandbox = self.state.sandbox(sandbox_id)
        container_id = new_id()
        directory = self.state.container_dir(container_id)
        launch = self._launch(sandbox, spec, directory)
        directory.mkdir(parents=True)
        write_json(directory / "launch.json", launch)
        write_json(directory / "container.json", {
            "id": container_id, "sandbox_id": sandbox_id, "name": spec.name, "image": spec.image,
            "image_id": await self.ensure_image(spec.image, "IfNotPresent"),
            "labels": {**spec.labels, labels_.MANAGED: "true", labels_.CONTAINER_NAME: spec.name},
            "created_at": format_nano(),
        })
        return container_id

    def _launch(self, sandbox: dict[str, Any], spec: ContainerSpec, directory: Path) -> dict[str, Any]:
        demo = False
        if spec.command:
            argv = [*spec.command, *spec.args]
        elif is_demo_image(spec.image) and spec.args:
            argv = list(spec.args)
        elif is_demo_image(spec.image):
            script = _DEMO_SCRIPT.format(busybox=shlex.quote(busybox_path()),
                                         www=shlex.quote(str(directory / "www")))
            argv = [busybox_path(), "sh", "-c", script]
            demo = True
        else:
            raise InvalidSpecError(f"container {spec.name!r}: the process driver cannot run image "
                                   f"{spec.image!r} without an explicit command")
        cwd = spec.working_dir or str(directory)
        if spec.working_dir and not Path(spec.working_dir).is_dir():
            raise InvalidSpecError(f"container {spec.name!r}: workingDir {spec.working_dir} does not exist")
        uid, gid = spec.security.run_as_user, spec.security.run_as_group
        if (uid is not None or gid is not None) and os.geteuid() != 0:
            if uid not in (None, os.geteuid()) or gid not in (None, os.getegid()):
                raise InvalidSpecError("runAsUser/runAsGroup need the agent to run as root")
            uid = gid = None
        env = {"PATH": DEFAULT_PATH, "HOME": "/", "HOSTNAME": str(sandbox["hostname"]), **spec.env}
        return {"argv": argv, "env": env, "cwd": cwd, "uid": uid, "gid": gid,
                "address_space_bytes": spec.resources.memory_limit_bytes,
                "hostname": sandbox["hostname"], "demo": demo}

    async def start_container(self, container_id: str) -> None:
        record = self.state.container(container_id)
        try:  # exactly one start per container, even with concurrent callers
            (record.directory / "start.claimed").open("x").close()
        except FileExistsError:
            raise RuntimeDriverError(f"container {container_id} was already started") from None
        launch = read_json(record.directory / "launch.json") or {}
        if launch.get("demo"):
            www = record.directory / "www"
            www.mkdir(exist_ok=True)
            (www / "index.html").write_text(f"{launch.get('hostname', '')}\n")
        with (record.directory / "supervisor.err").open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", str(SUPERVISOR), str(record.directory),
                stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
            await proc.wait()  # the supervisor forks and its first process exits at once
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            record = self.state.container(container_id)
            if record.exited is not None and record.exited.get("start_error"):
                raise RuntimeDriverError(f"container {container_id} failed to start: {record.exited['start_error']}")
            if record.started is not None or record.exited is not None:
                return
            if time.monotonic() > deadline:
                detail = (record.directory / "supervisor.err").read_text(errors="replace")[-2000:]
                raise RuntimeDriverError(f"container {container_id}: supervisor did not start: {detail}")
            await asyncio.sleep(_POLL)

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        record = self.state.container(container_id)
        if record.state() is not State.RUNNING or record.started is None:
            return
        pgid = int(record.started["pgid"])
        if record.child_alive():
            _killpg(pgid, signal.SIGTERM)
        if not await self._wait_ended(container_id, grace_seconds):
            if self.state.container(container_id).child_alive():
                _killpg(pgid, signal.SIGKILL)
            await self._wait_ended(container_id, 10.0)
        self._kill_leftovers(record)

    async def _wait_ended(self, container_id: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if self.state.container(container_id).state() is State.EXITED:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL)

    def _kill_leftovers(self, record: ContainerRecord) -> None:
        if record.started is None:
            return
        for pid in group_members(int(record.started["pgid"]), int(record.started.get("sid", -1))):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def remove_container(self, container_id: str) -> None:
        """Remove the container, killing it if it still runs (idempotent)."""
        try:
            record = self.state.container(container_id)
        except RuntimeDriverError:
            return
        if record.state() is State.RUNNING:
            await self.stop_container(container_id, 0)
        self.state.remove_tree(record.directory)

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [r.status() for r in self.state.all_containers() if sandbox_id is None or r.sandbox_id == sandbox_id]

    async def inspect_container(self, container_id: str) -> ContainerStatus:
        return self.state.container(container_id).status()

    # -- logs, exec, stats --------------------------------------------------------------------

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                   timestamps: bool = False, since: datetime | None = None) -> AsyncIterator[bytes]:
        record = self.state.container(container_id)

        async def still_running() -> bool:
            try:
                return self.state.container(container_id).state() is not State.EXITED
            except RuntimeDriverError:
                return False

        async for line in read_log(record.log_path, follow=follow, tail=tail, timestamps=timestamps,
                                   since=since, still_running=still_running):
            yield line

    def _exec_context(self, container_id: str) -> dict[str, Any]:
        record = self.state.container(container_id)
        if record.state() is not State.RUNNING:
            raise RuntimeDriverError(f"container {container_id} is not running")
        return read_json(record.directory / "launch.json") or {}

    async def exec(self, container_id: str, command: list[str], timeout: float) -> ExecResult:  # noqa: ASYNC109
        launch = self._exec_context(container_id)
        try:
            code, stdout, stderr = await run_to_completion(command, timeout, env=launch["env"], cwd=launch["cwd"])
        except ExecTimeoutError:  # a TimeoutError, hence an OSError: not a start failure
            raise
        except OSError as exc:  # like a shell: 127 command not found, 126 not executable
            return ExecResult(exit_code=127 if isinstance(exc, FileNotFoundError) else 126,
                              stdout=b"", stderr=f"exec failed: {exc}\n".encode())
        return ExecResult(exit_code=code, stdout=stdout, stderr=stderr)

    async def exec_stream(self, container_id: str, command: list[str], *, stdin: bool,
                          tty: bool) -> ExecSession:
        launch = self._exec_context(container_id)
        try:
            return await SubprocessExecSession.start(command, stdin=stdin, tty=tty, env=launch["env"],
                                                     cwd=launch["cwd"])
        except OSError as exc:
            raise RuntimeDriverError(f"exec {command!r} in {container_id}: {exc}") from exc

    async def stats(self, container_id: str) -> ContainerStats:
        record = self.state.container(container_id)
        if record.state() is not State.RUNNING or record.started is None:
            raise RuntimeDriverError(f"container {container_id} is not running")
        cpu_ns, rss = await asyncio.to_thread(
            group_usage, int(record.started["pgid"]), int(record.started.get("sid", -1)))
        return ContainerStats(cpu_usage_ns=cpu_ns, memory_working_set_bytes=rss, timestamp=datetime.now(UTC))

    # -- housekeeping -------------------------------------------------------------------------

    async def purge(self) -> None:
        """Kill and remove every container and sandbox in ``state_dir`` (tests, node teardown)."""
        for record in self.state.all_containers():
            await self.remove_container(record.id)
        for sandbox in await self.list_sandboxes():
            await self.remove_sandbox(sandbox.id)


def _sandbox_status(data: dict[str, Any]) -> SandboxStatus:
    ready = not data.get("stopped")
    return SandboxStatus(id=str(data["id"]), pod_uid=str(data["pod_uid"]), ip="127.0.0.1" if ready else "",
                         ready=ready,
                         labels=dict(data.get("labels") or {}), created_at=parse_time(data.get("created_at")))


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


__all__ = ["ProcessDriver"]


if TYPE_CHECKING:
    _check: RuntimeDriver = ProcessDriver(Path("/nonexistent"))
