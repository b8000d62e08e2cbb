"""The podman runtime driver: a Kubernetes pod is a podman pod on the node's bridge network.

The pod's infra container (``/bin/pause`` from the offline demo image) holds the network,
IPC and UTS namespaces; the pod IP is the infra container's address on the node network
(subnet = the node's podCIDR).  Containers join the pod.  Pods and containers are made through
podman's REST API (:mod:`.podman_api`, a ``podman system service`` per node), not by forking
the CLI per step; with a ``state_dir`` the driver keeps ``warm_sandboxes`` started pods ready
and hands them to new pods (:mod:`.podman_warm`), which takes the infra start off a pod's
start-up path.
Everything carries ``shoal.managed=true`` plus the driver's scope ``labels`` and the labels it
was given, and ``list_*`` finds objects by those labels, so an agent restart recovers its pods
and containers instead of duplicating them.  See :mod:`.podman_spec` for the spec mapping.

podman 4.3.1 quirks found on this machine, and what the driver does about each:

1. crun refuses the cgroup v1 "hybrid" layout → every call passes ``--runtime runc``.
2. Default ulimits (nofile/nproc 1048576) are refused (no CAP_SYS_RESOURCE), and podman
   lowers its own nproc limit to ``kernel.pid_max`` → explicit ``--ulimit`` values that fit
   (:func:`.podman_cmd.safe_ulimits`).  ``pod create`` has no ``--ulimit`` flag, so the infra
   container gets them through a generated ``containers.conf`` (``CONTAINERS_CONF``, which
   replaces the system file for that one call).
3. No pause image can be pulled → the demo image doubles as infra image, with
   ``--infra-command /bin/pause`` (a plain path: 4.3 does not accept the JSON form there).
4. ``State.OOMKilled`` is never set (conmon's OOM file is not read back by 4.3) and the
   container's cgroup is removed at exit → the driver looks for the kernel's memory-cgroup
   OOM kill of ``libpod-<id>`` in ``/dev/kmsg`` when a container with a memory limit exited
   with 137 (:mod:`.cgroups`).
5. ``podman logs --timestamps`` loses newlines between some records → logs are read from
   the k8s-file log directly (:mod:`.crilog`).
6. ``podman pull`` retries a refused connection three times, one second apart (no
   ``--retry`` flag in 4.3) → an unreachable registry fails after about 3 s.
7. Short names (``nginx``) do not resolve (no unqualified-search registries) → images are
   qualified like Kubernetes does (``docker.io/library/nginx``) before use.
8. ``podman stats --format json`` prints human-formatted strings → stats come from the
   container's cgroup files.
9. ``podman exec`` exits 125 for its own errors (container not running, ...) → 125 with an
   ``Error:`` message raises; any other code is the command's.  A timed-out exec kills the
   ``podman exec`` client only; the command may run on inside the container.
10. For a container that exits within milliseconds, ``FinishedAt`` can precede ``StartedAt``
    (podman stamps the start after runc returns) → the finish time is clamped to the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shoal.agent.runtime import podman_spec as spec_
from shoal.agent.runtime.cgroups import cgroup_usage, container_oom_killed
from shoal.agent.runtime.crilog import read_log
from shoal.agent.runtime.demo_image import DEMO_IMAGE, DEMO_IMAGE_V2, ensure_demo_image, is_demo_image
from shoal.agent.runtime.driver import (
    ContainerSpec,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    ExecSession,
    ImageNotPresentError,
    ImagePullError,
    InvalidSpecError,
    NotFoundError,
    RuntimeDriver,
    RuntimeDriverError,
    State,
)
from shoal.agent.runtime.execsession import SubprocessExecSession, run_to_completion
from shoal.agent.runtime.podman_api import PodmanApi, PodmanService
from shoal.agent.runtime.podman_cmd import (
    Completed,
    PodmanCli,
    PodmanError,
    PodmanNotFoundError,
    clean_message,
    safe_ulimits,
    write_containers_conf,
)
from shoal.agent.runtime.podman_pods import PodInfo, PodmanSandboxes
from shoal.agent.runtime.podman_warm import WARM, ClaimStore, WarmPool

#: Exit code of a SIGKILLed main process (the OOM killer sends SIGKILL).
_SIGKILL_EXIT = 137


def _fingerprint(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """What changes in a ``containers/json`` entry when the container's inspect changes."""
    return (entry.get("State"), entry.get("StartedAt"), entry.get("ExitedAt"), entry.get("ExitCode"),
            entry.get("Restarts"))


class PodmanDriver(PodmanSandboxes):
    """RuntimeDriver on podman (see the module docstring).  Call :meth:`close` when done."""

    name = "podman"
    isolated = True

    def __init__(self, network: str, subnet: str, gateway: str | None = None, podman: str = "podman",
                 root: str | None = None, runroot: str | None = None, allow_privileged: bool = False,
                 netns: str | None = None, *, labels: Mapping[str, str] | None = None,
                 pull_timeout: float = 300.0, state_dir: str | os.PathLike[str] | None = None,
                 warm_sandboxes: int = 0) -> None:
        self.network = network
        self.subnet = subnet
        #: Built without a subnet: the node's podCIDR comes through :meth:`configure_network`.
        self.needs_pod_cidr = not subnet
        self.gateway = gateway
        self.allow_privileged = allow_privileged
        self.scope_labels = dict(labels or {})
        self.pull_timeout = pull_timeout
        self.cli = PodmanCli(podman, root=root, runroot=runroot, netns=netns)
        self.ulimits = safe_ulimits()
        self._conf_path = write_containers_conf(self.ulimits)
        self.api = PodmanApi(PodmanService.shared(self.cli, {"CONTAINERS_CONF": str(self._conf_path)}))
        self.claims = ClaimStore(Path(state_dir)) if state_dir is not None else None
        self.pool = WarmPool(warm_sandboxes if self.claims is not None else 0, create=self._new_warm_pod,
                             adopt=self._adopt_warm_pods, remove=self.remove_sandbox)
        self._setup_lock = asyncio.Lock()
        self._network_ready = False
        self._demo_checked = False
        self._oom: dict[str, bool] = {}
        self._ips: dict[str, str] = {}  # sandbox id -> infra IP, while the infra runs
        self._pods: dict[str, PodInfo] = {}
        #: container id -> (list-entry fingerprint at inspect time, inspect result)
        self._inspected: dict[str, tuple[tuple[Any, ...] | None, dict[str, Any]]] = {}

    async def close(self) -> None:
        """Stop refilling warm pods and close the API client (pods and containers stay)."""
        await self.pool.close()
        await self.api.close()

    # -- node setup -------------------------------------------------------------------------

    async def version(self) -> str:
        info = await self.api.call("GET", "/version")
        return f"podman {info['Version']}"

    async def configure_network(self, cidr: str) -> None:
        """Take ``cidr`` (the node's podCIDR) as the subnet and :meth:`ensure_network`; a driver that
        already has another subnet raises RuntimeDriverError (a podCIDR never changes)."""
        if self.subnet and self.subnet != cidr:
            raise RuntimeDriverError(f"network {self.network} is configured on {self.subnet}, not {cidr}")
        self.subnet = cidr
        await self.ensure_network()

    async def ensure_network(self) -> None:
        """Create the node's bridge network (subnet = podCIDR) unless it exists with that subnet;
        then start filling the warm pool."""
        if self._network_ready:
            return
        async with self._setup_lock:
            if not await self._network_matches():
                args = ["network", "create", "--driver", "bridge", "--subnet", self.subnet,
                        "--label", f"{spec_.MANAGED_LABEL}=true"]
                if self.gateway:
                    args += ["--gateway", self.gateway]
                result = await self.cli.run(*args, self.network, check=False)
                if result.returncode != 0 and not await self._network_matches():
                    raise self.cli.error(self.cli.argv(*args), result)
            self._network_ready = True
        self.pool.kick()

    async def _network_matches(self) -> bool:
        result = await self.cli.run("network", "inspect", "--format", "json", self.network, check=False)
        if result.returncode != 0:
            return False
        subnets = [s.get("subnet") for s in (orjson.loads(result.stdout)[0].get("subnets") or [])]
        if self.subnet not in subnets:
            raise RuntimeDriverError(f"network {self.network} exists with subnets {subnets}, want {self.subnet}")
        return True

    async def remove_network(self) -> None:
        """Remove the node network if it exists (fails while pods use it)."""
        with contextlib.suppress(PodmanNotFoundError):
            await self.cli.run("network", "rm", self.network)
        self._network_ready = False

    # -- images -------------------------------------------------------------------------------

    async def ensure_image(self, image: str, policy: str) -> str:
        if policy not in ("Always", "IfNotPresent", "Never"):
            raise InvalidSpecError(f"unknown imagePullPolicy {policy!r}")
        ref = spec_.qualify_image(image)
        if is_demo_image(ref):  # built on the node, never pulled
            found = await self._image_id(ref) if self._demo_checked else None
            if found is None:
                await ensure_demo_image(cli=self.cli)
                self._demo_checked = True
                found = await self._image_id(ref)
            if found is None:
                raise ImageNotPresentError(f"{image!r}: the demo image is tagged {DEMO_IMAGE} and {DEMO_IMAGE_V2}")
            return found
        present = await self._image_id(ref)
        if policy == "Never":
            if present is None:
                raise ImageNotPresentError(f"image {image!r} is not present and imagePullPolicy is Never")
            return present
        if policy == "IfNotPresent" and present is not None:
            return present
        try:
            result = await self.cli.run("pull", "--quiet", ref, check=False, time_limit=self.pull_timeout)
        except PodmanError as exc:  # timed out
            raise ImagePullError(f"pulling {image!r}: {exc}") from exc
        if result.returncode != 0:
            raise ImagePullError(f"pulling {image!r}: {clean_message(result.stderr)}")
        pulled = await self._image_id(ref)
        if pulled is None:
            raise ImagePullError(f"image {image!r} missing after pull")
        return pulled

    async def _image_id(self, ref: str) -> str | None:
        try:
            found = await self.api.call("GET", f"/images/{ref}/json")
        except PodmanNotFoundError:
            return None
        return f"sha256:{found['Id']}"

    async def _infra_image(self) -> str:
        await self.ensure_image(DEMO_IMAGE, "Never")
        return DEMO_IMAGE

    # -- containers ---------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        info = await self._pod_info(sandbox_id)
        name = spec_.container_name(info.name, spec)
        body = spec_.container_create_body(
            dataclasses.replace(spec, image=spec_.qualify_image(spec.image)), pod_id=sandbox_id, name=name,
            labels=spec_.container_labels(spec, self.scope_labels), ulimits=self.ulimits,
            allow_privileged=self.allow_privileged, hostname=info.hostname, hosts_file=info.hosts_file)
        try:
            return str((await self.api.call("POST", "/containers/create", body=body))["Id"])
        except PodmanNotFoundError as exc:
            raise NotFoundError(f"sandbox {sandbox_id}: {exc}") from exc
        except PodmanError as exc:
            # Same pod, container and attempt created before (agent crashed before it learnt
            # the ID): that container is the answer, not a duplicate.
            existing = await self._inspect_many([name]) if "in use" in exc.message else []
            if existing and existing[0].get("Pod") == sandbox_id:
                return str(existing[0]["Id"])
            raise

    async def start_container(self, container_id: str) -> None:
        await self.api.call("POST", f"/containers/{container_id}/start")

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        grace = max(0, math.ceil(grace_seconds))
        await self.api.call("POST", f"/containers/{container_id}/stop", params={"timeout": grace},
                            time_limit=grace + 60)

    async def remove_container(self, container_id: str) -> None:
        """Remove the container, killing it if it still runs (idempotent)."""
        with contextlib.suppress(PodmanNotFoundError):
            await self.api.call("DELETE", f"/containers/{container_id}",
                                params={"force": True, "timeout": 0, "ignore": True})
        self._oom.pop(container_id, None)
        self._inspected.pop(container_id, None)

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        """One API list; a container is inspected again only when its list entry changed since
        its last inspect (state, start/exit times, exit code), so relists of a steady node cost
        one call."""
        filters: dict[str, list[str]] = {"label": self._label_filters()}
        if sandbox_id is not None:
            filters["pod"] = [sandbox_id]
        listed = await self.api.call("GET", "/containers/json", params={"all": True, "filters": filters}) or []
        entries = {str(c["Id"]): _fingerprint(c) for c in listed if not c.get("IsInfra")}
        stale = [cid for cid, mark in entries.items() if self._inspected.get(cid, (None,))[0] != mark]
        for found in await self._inspect_many(stale):
            self._inspected[str(found["Id"])] = (entries.get(str(found["Id"])), found)
        if sandbox_id is None:
            for gone in set(self._inspected) - set(entries):
                del self._inspected[gone]
        current = [self._inspected[cid][1] for cid in entries if cid in self._inspected]
        return [await self._to_status(c) for c in current
                if not c.get("IsInfra") and self._in_scope((c.get("Config") or {}).get("Labels") or {})]

    async def inspect_container(self, container_id: str) -> ContainerStatus:
        return await self._to_status(await self._inspect(container_id))

    async def _inspect(self, container_id: str) -> dict[str, Any]:
        found = await self._inspect_many([container_id])
        if not found:
            raise NotFoundError(f"container {container_id} not found")
        return found[0]

    async def _to_status(self, inspect: Mapping[str, Any]) -> ContainerStatus:
        cid = str(inspect["Id"])
        oom = False
        state = inspect.get("State") or {}
        if (spec_.container_state(inspect) is State.EXITED and state.get("ExitCode") == _SIGKILL_EXIT
                and spec_.memory_limit(inspect) > 0):
            if cid not in self._oom:
                self._oom[cid] = await asyncio.to_thread(container_oom_killed, cid)
            oom = self._oom[cid]
        return spec_.parse_container(inspect, oom_killed=oom)

    # -- logs, exec, stats --------------------------------------------------------------------

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                   timestamps: bool = False, since: datetime | None = None) -> AsyncIterator[bytes]:
        inspect = await self._inspect(container_id)
        log_config = (inspect.get("HostConfig") or {}).get("LogConfig") or {}
        if log_config.get("Type") not in ("k8s-file", None) or not log_config.get("Path"):
            raise RuntimeDriverError(f"container {container_id} does not log to a k8s-file log")

        async def still_running() -> bool:
            try:
                return spec_.container_state(await self._inspect(container_id)) is State.RUNNING
            except NotFoundError:
                return False

        async for line in read_log(Path(log_config["Path"]), follow=follow, tail=tail, timestamps=timestamps,
                                   since=since, still_running=still_running):
            yield line

    async def exec(self, container_id: str, command: list[str], timeout: float) -> ExecResult:  # noqa: ASYNC109
        argv = self.cli.argv("exec", container_id, *command)
        code, stdout, stderr = await run_to_completion(argv, timeout)
        if code == 125 and stderr.startswith(b"Error: "):
            raise self.cli.error(argv, Completed(code, stdout, stderr))
        return ExecResult(exit_code=code, stdout=stdout, stderr=stderr)

    async def exec_stream(self, container_id: str, command: list[str], *, stdin: bool,
                          tty: bool) -> ExecSession:
        inspect = await self._inspect(container_id)
        if spec_.container_state(inspect) is not State.RUNNING:
            raise RuntimeDriverError(f"container {container_id} is not running")
        flags = (["--interactive"] if stdin else []) + (["--tty"] if tty else [])
        return await SubprocessExecSession.start(self.cli.argv("exec", *flags, container_id, *command),
                                                 stdin=stdin, tty=tty)

    async def stats(self, container_id: str) -> ContainerStats:
        inspect = await self._inspect(container_id)
        pid = int((inspect.get("State") or {}).get("Pid") or 0)
        if spec_.container_state(inspect) is not State.RUNNING or pid <= 0:
            raise RuntimeDriverError(f"container {container_id} is not running")
        try:
            usage = await asyncio.to_thread(cgroup_usage, pid)
        except OSError as exc:
            raise RuntimeDriverError(f"reading cgroup of container {container_id}: {exc}") from exc
        return ContainerStats(cpu_usage_ns=usage.cpu_usage_ns,
                              memory_working_set_bytes=usage.memory_working_set_bytes,
                              timestamp=datetime.now(UTC))

    # -- housekeeping -------------------------------------------------------------------------

    async def purge(self) -> None:
        """Remove every pod (warm ones too) and container of this driver's scope (tests, node
        teardown); stops refilling the warm pool."""
        await self.pool.close()
        for pod in await self._list_pods() + await self._list_pods(WARM):
            await self.remove_sandbox(str(pod["Id"]))
        for container in await self.list_containers():
            await self.remove_container(container.id)



__all__ = ["PodmanDriver", "PodmanError"]


if TYPE_CHECKING:
    _check: RuntimeDriver = PodmanDriver("net", "10.0.0.0/24")
