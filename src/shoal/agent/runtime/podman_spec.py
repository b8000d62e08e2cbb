"""Pure translations for the podman driver: specs → podman argv, ``podman inspect`` → status.

Nothing here runs a process, so these functions are unit-tested directly.

Mapping (Kubernetes → podman):

* Pod → ``podman pod create --name shoal_<ns>_<name>_<uid8>`` on the node's bridge network,
  ``--hostname``, ``--dns``/``--dns-search``, ``-p`` for hostPorts, infra command
  :data:`~shoal.agent.runtime.demo_image.PAUSE_COMMAND` from the demo image.
* ``command`` → ``--entrypoint`` (JSON array form, so arguments with spaces survive);
  ``args`` → the trailing command arguments.  With ``command`` set, the image CMD is dropped
  (podman's behaviour when ``--entrypoint`` is given, matching Kubernetes).
* memory limit → ``--memory`` and an equal ``--memory-swap`` (no swap, so the OOM killer
  fires at the limit); memory request → ``--memory-reservation``; cpu limit → ``--cpus``;
  cpu request → ``--cpu-shares`` (kubelet's formula: millis × 1024 / 1000, at least 2).
* securityContext → ``--user uid[:gid]``, ``--read-only``, ``--cap-add/--cap-drop``;
  ``privileged`` → ``--privileged`` only when the driver allows it (else InvalidSpecError).
* Always: explicit ``--ulimit`` nofile/nproc, ``--log-driver k8s-file`` (the driver reads the
  log file itself), ``--pull never`` (pulls happen only in ``ensure_image``).

Container names are ``<pod name>_<container>_<attempt>`` so a retry after an agent crash hits
"name in use" instead of silently duplicating a container.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from shoal.agent.runtime import labels as labels_
from shoal.agent.runtime.crilog import parse_time
from shoal.agent.runtime.demo_image import PAUSE_COMMAND, is_demo_image
from shoal.agent.runtime.driver import (
    ContainerSpec,
    ContainerStatus,
    InvalidSpecError,
    SandboxSpec,
    State,
)

MANAGED_LABEL = labels_.MANAGED
POD_UID_LABEL = labels_.POD_UID
POD_NAME_LABEL = labels_.POD_NAME
POD_NAMESPACE_LABEL = labels_.POD_NAMESPACE
CONTAINER_NAME_LABEL = labels_.CONTAINER_NAME
ATTEMPT_LABEL = labels_.CONTAINER_ATTEMPT
#: Default stop timeout baked into each container (``podman stop`` without ``-t``).
DEFAULT_STOP_TIMEOUT = 30

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


def label_args(labels: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in sorted(labels.items()):
        out += ["--label", f"{key}={value}"]
    return out


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


def sandbox_create_args(spec: SandboxSpec, *, name: str, network: str, infra_image: str,
                        labels: Mapping[str, str]) -> list[str]:
    args = [
        "pod", "create",
        "--name", name,
        "--network", network,
        "--hostname", spec.hostname[:63],
        "--infra-image", infra_image,
        "--infra-command", PAUSE_COMMAND,
        "--infra-name", f"{name}-infra",
        "--exit-policy", "continue",
    ]
    for server in spec.dns_servers:
        args += ["--dns", server]
    for search in spec.dns_searches:
        args += ["--dns-search", search]
    for port in spec.ports:
        if port.host_port:
            host = f"{port.host_ip}:" if port.host_ip else ""
            args += ["-p", f"{host}{port.host_port}:{port.container_port}/{port.protocol.lower()}"]
    return args + label_args(labels)


def container_create_args(spec: ContainerSpec, *, pod_id: str, name: str, labels: Mapping[str, str],
                          ulimits: Mapping[str, int], allow_privileged: bool) -> list[str]:
    """``podman create`` arguments; raises InvalidSpecError for specs podman must not run."""
    args = [
        "create",
        "--pod", pod_id,
        "--name", name,
        "--pull", "never",
        "--log-driver", "k8s-file",
        "--stop-timeout", str(DEFAULT_STOP_TIMEOUT),
    ]
    for limit_name, value in sorted(ulimits.items()):
        args += ["--ulimit", f"{limit_name}={value}:{value}"]
    args += label_args(labels)
    for key, env_value in spec.env.items():
        if not key or "=" in key:
            raise InvalidSpecError(f"invalid environment variable name {key!r}")
        args += ["--env", f"{key}={env_value}"]
    if spec.working_dir:
        args += ["--workdir", spec.working_dir]
    for mount in spec.mounts:
        if ":" in mount.host_path or ":" in mount.container_path:
            raise InvalidSpecError(f"mount paths must not contain ':' ({mount.host_path} → {mount.container_path})")
        args += ["--volume", f"{mount.host_path}:{mount.container_path}{':ro' if mount.read_only else ''}"]
    args += _resource_args(spec)
    args += _security_args(spec, allow_privileged)
    if spec.stdin:
        args.append("--interactive")
    if spec.tty:
        args.append("--tty")
    if spec.command:
        args += ["--entrypoint", json.dumps(list(spec.command))]
    args.append(spec.image)
    args += list(spec.args)
    return args


def _resource_args(spec: ContainerSpec) -> list[str]:
    res = spec.resources
    args: list[str] = []
    if res.memory_limit_bytes:
        args += ["--memory", str(res.memory_limit_bytes), "--memory-swap", str(res.memory_limit_bytes)]
    if res.memory_request_bytes and (not res.memory_limit_bytes or res.memory_request_bytes <= res.memory_limit_bytes):
        args += ["--memory-reservation", str(res.memory_request_bytes)]
    if res.cpu_limit_millis:
        args += ["--cpus", f"{res.cpu_limit_millis / 1000:.3f}"]
    if res.cpu_request_millis:
        args += ["--cpu-shares", str(max(2, math.floor(res.cpu_request_millis * 1024 / 1000)))]
    return args


def _security_args(spec: ContainerSpec, allow_privileged: bool) -> list[str]:
    sec = spec.security
    args: list[str] = []
    if sec.privileged:
        if not allow_privileged:
            raise InvalidSpecError(f"container {spec.name!r}: privileged containers are not allowed on this node")
        args.append("--privileged")
    if sec.run_as_user is not None or sec.run_as_group is not None:
        user = str(sec.run_as_user if sec.run_as_user is not None else 0)
        if sec.run_as_group is not None:
            user += f":{sec.run_as_group}"
        args += ["--user", user]
    if sec.read_only_root_filesystem:
        args.append("--read-only")
    for cap in sec.capabilities_add:
        args += ["--cap-add", cap]
    for cap in sec.capabilities_drop:
        args += ["--cap-drop", cap]
    return args


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
