"""Pure translations for the podman driver: specs → libpod API bodies, inspect → status.

Nothing here does I/O, so these functions are unit-tested directly.

Mapping (Kubernetes → libpod ``SpecGenerator``/``PodSpecGenerator``):

* Pod → ``pods/create`` named ``shoal_<ns>_<name>_<uid8>`` on the node's bridge network, with
  ``hostname``, ``dns_server``/``dns_search``, ``portmappings`` for hostPorts and the infra
  command :data:`~shoal.agent.runtime.demo_image.PAUSE_COMMAND` from the demo image.  A warm
  pod (see :mod:`.podman_warm`) shares no UTS namespace: its containers get their own, named
  after the claiming pod, and the agent-written /etc/hosts.
* ``command`` → ``entrypoint`` (the image CMD is then dropped, as Kubernetes does);
  ``args`` → ``command`` (kept after the image's entrypoint when ``command`` is unset).
* memory limit → ``memory.limit`` and an equal ``memory.swap`` (no swap, so the OOM killer
  fires at the limit); memory request → ``memory.reservation``; cpu limit → CFS quota over a
  100 ms period; cpu request → ``cpu.shares`` (kubelet's formula: millis × 1024 / 1000, ≥ 2).
* securityContext → ``user`` uid[:gid], ``read_only_filesystem``, ``cap_add``/``cap_drop``;
  ``privileged`` only when the driver allows it (else InvalidSpecError).
* Always: explicit nofile/nproc ``r_limits``, the ``k8s-file`` log driver (the driver reads
  the log file itself); the API never pulls (pulls happen only in ``ensure_image``).

Container names are ``<pod name>_<container>_<attempt>`` so a retry after an agent crash hits
"name in use" instead of silently duplicating a container.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shoal.agent.runtime import labels as labels_
from shoal.agent.runtime.demo_image import PAUSE_COMMAND, is_demo_image
from shoal.agent.runtime.driver import (
    ContainerSpec,
    ContainerStatus,
    InvalidSpecError,
    SandboxSpec,
    State,
)
from shoal.kube.times import parse_time

MANAGED_LABEL = labels_.MANAGED
POD_UID_LABEL = labels_.POD_UID
POD_NAME_LABEL = labels_.POD_NAME
POD_NAMESPACE_LABEL = labels_.POD_NAMESPACE
CONTAINER_NAME_LABEL = labels_.CONTAINER_NAME
ATTEMPT_LABEL = labels_.CONTAINER_ATTEMPT
#: Default stop timeout baked into each container (``podman stop`` without ``-t``).
DEFAULT_STOP_TIMEOUT = 30
#: CFS period for cpu limits (what ``podman --cpus`` uses).
CPU_PERIOD = 100_000

_STATE_MAP = {
    "created": State.CREATED,
    "configured": State.CREATED,
    "initialized": State.CREATED,
    "running": State.RUNNING,
    "paused": State.RUNNING,
    "stopping": State.RUNNING,
    "exited": State.EXITED,
    "stopped": State.EXITED,
}


def pod_name(spec: SandboxSpec) -> str:
    return f"shoal_{spec.namespace}_{spec.name}_{spec.pod_uid.replace('-', '')[:8]}"


def container_name(pod: str, spec: ContainerSpec) -> str:
    attempt = spec.labels.get(ATTEMPT_LABEL, "0")
    return f"{pod}_{spec.name}_{attempt}"


def sandbox_labels(spec: SandboxSpec, scope: Mapping[str, str]) -> dict[str, str]:
    return {
        **spec.labels,
        **scope,
        MANAGED_LABEL: "true",
        POD_UID_LABEL: spec.pod_uid,
        POD_NAME_LABEL: spec.name,
        POD_NAMESPACE_LABEL: spec.namespace,
    }


def container_labels(spec: ContainerSpec, scope: Mapping[str, str]) -> dict[str, str]:
    return {**spec.labels, **scope, MANAGED_LABEL: "true", CONTAINER_NAME_LABEL: spec.name}


def sandbox_create_body(spec: SandboxSpec | None, *, name: str, network: str, infra_image: str,
                        labels: Mapping[str, str]) -> dict[str, Any]:
    """The libpod ``pods/create`` body (PodSpecGenerator).

    ``spec`` None builds a *warm* pod (:mod:`.podman_warm`): not yet any pod's, so it shares
    only the cgroup, IPC and network namespaces — each container gets the UTS namespace and
    hostname of the pod that later claims it."""
    body: dict[str, Any] = {
        "name": name,
        "labels": dict(labels),
        "infra_image": infra_image,
        "infra_command": [PAUSE_COMMAND],
        "infra_name": f"{name}-infra",
        "netns": {"nsmode": "bridge"},
        "Networks": {network: {}},
        "exit_policy": "continue",
    }
    if spec is None:
        body["shared_namespaces"] = ["cgroup", "ipc", "net"]
        return body
    body["hostname"] = spec.hostname[:63]
    if spec.dns_servers:
        body["dns_server"] = list(spec.dns_servers)
    if spec.dns_searches:
        body["dns_search"] = list(spec.dns_searches)
    body["portmappings"] = [
        {"container_port": p.container_port, "host_port": p.host_port, "host_ip": p.host_ip,
         "protocol": p.protocol.lower()}
        for p in spec.ports if p.host_port]
    return body


def container_create_body(spec: ContainerSpec, *, pod_id: str, name: str, labels: Mapping[str, str],
                          ulimits: Mapping[str, int], allow_privileged: bool, hostname: str = "",
                          hosts_file: str = "") -> dict[str, Any]:
    """The libpod ``containers/create`` body (SpecGenerator); raises InvalidSpecError for specs
    podman must not run.  ``hostname`` gives the container its own UTS namespace with that name
    and ``hosts_file`` is bind-mounted on /etc/hosts (both for containers of warm pods)."""
    for key in spec.env:
        if not key or "=" in key:
            raise InvalidSpecError(f"invalid environment variable name {key!r}")
    mounts = [{"destination": m.container_path, "source": m.host_path, "type": "bind",
               "options": ["rbind", "ro" if m.read_only else "rw"]} for m in spec.mounts]
    if hosts_file and not any(m.container_path == "/etc/hosts" for m in spec.mounts):
        mounts.append({"destination": "/etc/hosts", "source": hosts_file, "type": "bind", "options": ["rbind", "ro"]})
    body: dict[str, Any] = {
        "name": name,
        "pod": pod_id,
        "image": spec.image,
        "labels": dict(labels),
        "env": dict(spec.env),
        "log_configuration": {"driver": "k8s-file"},
        "stop_timeout": DEFAULT_STOP_TIMEOUT,
        "r_limits": [{"type": k, "hard": v, "soft": v} for k, v in sorted(ulimits.items())],
        "mounts": mounts,
        "stdin": spec.stdin,
        "terminal": spec.tty,
    }
    if hostname:
        body["hostname"] = hostname[:63]
        body["utsns"] = {"nsmode": "private"}
    if spec.working_dir:
        body["work_dir"] = spec.working_dir
    if spec.command:
        body["entrypoint"] = list(spec.command)
    if spec.args:
        body["command"] = list(spec.args)
    limits = _resource_limits(spec)
    if limits:
        body["resource_limits"] = limits
    body.update(_security(spec, allow_privileged))
    return body


def _resource_limits(spec: ContainerSpec) -> dict[str, Any]:
    res = spec.resources
    memory: dict[str, int] = {}
    cpu: dict[str, int] = {}
    if res.memory_limit_bytes:
        memory["limit"] = memory["swap"] = res.memory_limit_bytes  # no swap: OOM-killed at the limit
    if res.memory_request_bytes and (not res.memory_limit_bytes or res.memory_request_bytes <= res.memory_limit_bytes):
        memory["reservation"] = res.memory_request_bytes
    if res.cpu_limit_millis:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = res.cpu_limit_millis * CPU_PERIOD // 1000
    if res.cpu_request_millis:
        cpu["shares"] = max(2, math.floor(res.cpu_request_millis * 1024 / 1000))
    return {key: value for key, value in (("memory", memory), ("cpu", cpu)) if value}


def _security(spec: ContainerSpec, allow_privileged: bool) -> dict[str, Any]:
    sec = spec.security
    out: dict[str, Any] = {}
    if sec.privileged:
        if not allow_privileged:
            raise InvalidSpecError(f"container {spec.name!r}: privileged containers are not allowed on this node")
        out["privileged"] = True
    if sec.run_as_user is not None or sec.run_as_group is not None:
        user = str(sec.run_as_user if sec.run_as_user is not None else 0)
        if sec.run_as_group is not None:
            user += f":{sec.run_as_group}"
        out["user"] = user
    if sec.read_only_root_filesystem:
        out["read_only_filesystem"] = True
    if sec.capabilities_add:
        out["cap_add"] = list(sec.capabilities_add)
    if sec.capabilities_drop:
        out["cap_drop"] = list(sec.capabilities_drop)
    return out


def container_state(inspect: Mapping[str, Any]) -> State:
    status = str((inspect.get("State") or {}).get("Status", "")).lower()
    return _STATE_MAP.get(status, State.UNKNOWN)


def parse_container(inspect: Mapping[str, Any], *, oom_killed: bool = False) -> ContainerStatus:
    """A :class:`ContainerStatus` from one ``podman container inspect`` entry.

    ``oom_killed`` is the driver's own OOM finding (podman 4.3 never sets State.OOMKilled).
    """
    state_info = inspect.get("State") or {}
    config = inspect.get("Config") or {}
    labels = dict(config.get("Labels") or {})
    state = container_state(inspect)
    exit_code: int | None = None
    reason = ""
    if state is State.EXITED:
        exit_code = int(state_info.get("ExitCode", 0))
        if (state_info.get("OOMKilled") or oom_killed) and exit_code != 0:
            reason = "OOMKilled"
        else:
            reason = "Completed" if exit_code == 0 else "Error"
    image_id = str(inspect.get("Image", ""))
    started = parse_time(state_info.get("StartedAt"))
    finished = parse_time(state_info.get("FinishedAt")) if state is State.EXITED else None
    if started is not None and finished is not None and finished < started:
        finished = started  # podman stamps StartedAt after runc returns: short runs "end" first
    return ContainerStatus(
        id=str(inspect["Id"]),
        sandbox_id=str(inspect.get("Pod", "")),
        name=labels.get(CONTAINER_NAME_LABEL, str(inspect.get("Name", ""))),
        state=state,
        image=str(inspect.get("ImageName") or config.get("Image") or ""),
        image_id=f"sha256:{image_id}" if image_id and not image_id.startswith("sha256:") else image_id,
        exit_code=exit_code,
        reason=reason,
        created_at=parse_time(inspect.get("Created")),
        started_at=started,
        finished_at=finished,
        labels=labels,
    )


def network_ip(inspect: Mapping[str, Any], network: str) -> str:
    """The container's IPv4 address on ``network`` ('' when it has none, e.g. not running)."""
    networks = ((inspect.get("NetworkSettings") or {}).get("Networks")) or {}
    entry = networks.get(network) or {}
    return str(entry.get("IPAddress") or "")


def memory_limit(inspect: Mapping[str, Any]) -> int:
    return int((inspect.get("HostConfig") or {}).get("Memory") or 0)


def normalize_image(image: str) -> str:
    """Fully qualify a Kubernetes image reference the way the kubelet/containerd do.

    ``nginx`` → ``docker.io/library/nginx``, ``user/app:1`` → ``docker.io/user/app:1``;
    references whose first component names a registry (has ``.`` or ``:`` or is
    ``localhost``) are kept.  podman itself would refuse short names here (no
    unqualified-search registries configured).
    """
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return image
    if not sep:
        return f"docker.io/library/{image}"
    return f"docker.io/{image}"


def qualify_image(image: str) -> str:
    """The reference podman should use: demo images under ``localhost/``, others normalized."""
    if is_demo_image(image):
        return image if image.startswith("localhost/") else f"localhost/{image}"
    return normalize_image(image)
