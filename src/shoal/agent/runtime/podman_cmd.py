"""Running the ``podman`` CLI: global flags, the network namespace, errors and ulimits.

Every podman invocation of the podman driver goes through :class:`PodmanCli`, which

* always passes ``--runtime runc`` (crun refuses this machine's cgroup v1 "hybrid" layout)
  and, when configured, ``--root``/``--runroot`` (per-node storage);
* runs podman through ``nsenter --net=/run/netns/NAME`` when a network namespace is set
  (``ip netns exec`` would remount /sys and hide the cgroup mounts from podman);
* turns a non-zero exit into a typed error carrying podman's own message:
  :class:`~shoal.agent.runtime.driver.NotFoundError` for "no such ..." messages, else
  :class:`PodmanError`.

Ulimits: podman's default nofile/nproc (1048576) exceed what this process may set (no
CAP_SYS_RESOURCE here), and podman itself lowers its own nproc limit to
``/proc/sys/kernel/pid_max`` at start-up.  :func:`safe_ulimits` therefore returns the
largest values that runc can actually apply, and the driver passes them explicitly.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shoal.agent.runtime.driver import NotFoundError, RuntimeDriverError
from shoal.kube.files import atomic_write

#: podman's own default for nofile/nproc; we never ask for more.
_PODMAN_DEFAULT_LIMIT = 1048576

_NOT_FOUND_MARKERS = (
    "no such container",
    "no such pod",
    "no such object",
    "no such image",
    "no such network",
    "no container with name or id",
    "no pod with name or id",
    "image not known",
    "network not found",
    "unable to find network",
)


class PodmanError(RuntimeDriverError):
    """podman exited non-zero; ``message`` is podman's stderr, ``argv`` the command."""

    def __init__(self, argv: Sequence[str], returncode: int, message: str) -> None:
        super().__init__(message or f"podman exited with {returncode}")
        self.argv = tuple(argv)
        self.returncode = returncode
        self.message = message


class PodmanNotFoundError(NotFoundError):
    """podman reported that the object does not exist."""


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def clean_message(stderr: bytes) -> str:
    """podman's error text without the ``Error: `` prefix and log noise, on one line."""
    lines = []
    for raw in stderr.decode(errors="replace").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith('time="') and "level=warning" in line:
            continue
        lines.append(line.removeprefix("Error: "))
    return "; ".join(lines)


def is_not_found(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _NOT_FOUND_MARKERS)


def safe_ulimits() -> dict[str, int]:
    """nofile/nproc values runc can apply on this machine (see the module docstring)."""
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)
    nofile = _cap(nofile_hard, _PODMAN_DEFAULT_LIMIT)
    nproc = _cap(nproc_hard, _PODMAN_DEFAULT_LIMIT)
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text().strip())
    except (OSError, ValueError):
        pid_max = nproc
    return {"nofile": nofile, "nproc": min(nproc, pid_max)}


def _cap(value: int, ceiling: int) -> int:
    return ceiling if value == resource.RLIM_INFINITY or value > ceiling else value


def write_containers_conf(ulimits: Mapping[str, int]) -> Path:
    """A containers.conf that only sets default ulimits (for the infra container)."""
    values = ", ".join(f'"{k}={v}:{v}"' for k, v in sorted(ulimits.items()))
    content = f"[containers]\ndefault_ulimits = [{values}]\n"
    path = Path(tempfile.gettempdir()) / f"shoal-containers-{hashlib.sha256(content.encode()).hexdigest()[:12]}.conf"
    if not path.exists() or path.read_text() != content:
        atomic_write(path, content, 0o644, fsync=False)
    return path


def ulimit_args(limits: Mapping[str, int]) -> list[str]:
    out: list[str] = []
    for name, value in sorted(limits.items()):
        out += ["--ulimit", f"{name}={value}:{value}"]
    return out


class PodmanCli:
    """Builds and runs podman command lines for one node's podman storage."""

    def __init__(self, podman: str = "podman", *, root: str | None = None, runroot: str | None = None,
                 netns: str | None = None) -> None:
        self.podman = podman
        self.root = root
        self.runroot = runroot
        self.netns = netns

    def global_args(self) -> list[str]:
        args = ["--runtime", "runc"]
        if self.root:
            args += ["--root", self.root]
        if self.runroot:
            args += ["--runroot", self.runroot]
        return args

    def argv(self, *args: str) -> list[str]:
        base = [self.podman, *self.global_args(), *args]
        if self.netns:
            return ["nsenter", f"--net=/run/netns/{self.netns}", *base]
        return base

    async def run(self, *args: str, check: bool = True, input: bytes | None = None,
                  time_limit: float | None = None, env: Mapping[str, str] | None = None) -> Completed:
        """Run podman to completion; raises :class:`PodmanError` on failure when ``check``."""
        argv = self.argv(*args)
        full_env = None if env is None else {**os.environ, **env}
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(input), time_limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PodmanError(argv, -1, f"podman {args[0] if args else ''} timed out after {time_limit}s") from None
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        assert proc.returncode is not None
        result = Completed(proc.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise self.error(argv, result)
        return result

    def error(self, argv: Sequence[str], result: Completed) -> RuntimeDriverError:
        message = clean_message(result.stderr)
        if is_not_found(message):
            return PodmanNotFoundError(message)
        return PodmanError(argv, result.returncode, message)

    async def json(self, *args: str, time_limit: float | None = None) -> Any:
        """Run a command whose stdout is JSON (``--format json``) and decode it."""
        result = await self.run(*args, time_limit=time_limit)
        text = result.stdout.strip()
        if not text:
            return None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise PodmanError(self.argv(*args), 0, f"unparsable podman output: {text[:200]!r}") from exc
