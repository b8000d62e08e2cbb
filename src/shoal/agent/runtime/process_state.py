"""On-disk state of the process driver (everything a restarted agent needs).

Layout under ``state_dir``::

    sandboxes/<sandbox id>/sandbox.json     pod uid, name, namespace, hostname, labels, created_at
    containers/<container id>/container.json  sandbox id, name, image, labels, created_at
    containers/<container id>/launch.json     argv, env, cwd, uid/gid, address-space limit
    containers/<container id>/start.claimed   created (O_EXCL) by the one start_container call
    containers/<container id>/started.json    written by the supervisor once the command runs
    containers/<container id>/exit.json       written by the supervisor when the command ended
    containers/<container id>/log             CRI-format log (see :mod:`.crilog`)

Invariants: a container's state is derived only from these files and /proc — ``created``
until ``started.json`` or ``exit.json`` exists, ``exited`` once ``exit.json`` exists, else
``running`` while the supervisor (or, if it died, the command itself) is alive, verified
by PID *and* /proc start time so a reused PID is never mistaken for the container.  JSON files
are written atomically.  IDs are random 32-hex strings.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.agent.runtime.driver import ContainerStatus, NotFoundError, State
from shoal.kube.files import atomic_write_json
from shoal.kube.times import parse_time

#: Exit code reported when the supervisor vanished without recording how the command ended.
LOST_EXIT_CODE = 255


def new_id() -> str:
    return secrets.token_hex(16)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Driver state is rebuilt from the runtime on restart: atomic, but without fsync."""
    atomic_write_json(path, data, 0o644, fsync=False)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


def proc_alive(pid: int, start_ticks: int) -> bool:
    """True when ``pid`` is a live (non-zombie) process started at ``start_ticks``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] not in ("Z", "X") and int(fields[19]) == start_ticks


@dataclass(slots=True)
class ContainerRecord:
    """One container directory, read at a point in time."""

    id: str
    directory: Path
    meta: dict[str, Any]
    started: dict[str, Any] | None = None
    exited: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def sandbox_id(self) -> str:
        return str(self.meta["sandbox_id"])

    @property
    def log_path(self) -> Path:
        return self.directory / "log"

    def state(self) -> State:
        if self.exited is not None:
            return State.EXITED
        if self.started is None:
            return State.CREATED
        if self.supervisor_alive() or self.child_alive():
            return State.RUNNING
        return State.EXITED

    def supervisor_alive(self) -> bool:
        assert self.started is not None
        return proc_alive(int(self.started["supervisor_pid"]), int(self.started["supervisor_start"]))

    def child_alive(self) -> bool:
        return self.started is not None and proc_alive(int(self.started["pid"]), int(self.started["child_start"]))

    def status(self) -> ContainerStatus:
        state = self.state()
        exit_code: int | None = None
        reason = ""
        finished = None
        if state is State.EXITED:
            exit_code = int(self.exited["exit_code"]) if self.exited else LOST_EXIT_CODE
            reason = "Completed" if exit_code == 0 else "Error"
            finished = parse_time(self.exited.get("finished_at")) if self.exited else None
        return ContainerStatus(
            id=self.id,
            sandbox_id=self.sandbox_id,
            name=str(self.meta["name"]),
            state=state,
            image=str(self.meta.get("image", "")),
            image_id=str(self.meta.get("image_id", "")),
            exit_code=exit_code,
            reason=reason,
            created_at=parse_time(self.meta.get("created_at")),
            started_at=parse_time(self.started.get("started_at")) if self.started else None,
            finished_at=finished,
            labels=dict(self.meta.get("labels") or {}),
        )


class StateDir:
    """Reads and writes the layout described in the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sandboxes = root / "sandboxes"
        self.containers = root / "containers"
        self.sandboxes.mkdir(parents=True, exist_ok=True)
        self.containers.mkdir(parents=True, exist_ok=True)

    def sandbox_dir(self, sandbox_id: str) -> Path:
        return self.sandboxes / _safe(sandbox_id)

    def container_dir(self, container_id: str) -> Path:
        return self.containers / _safe(container_id)

    def sandbox(self, sandbox_id: str) -> dict[str, Any]:
        data = read_json(self.sandbox_dir(sandbox_id) / "sandbox.json")
        if data is None:
            raise NotFoundError(f"sandbox {sandbox_id} not found")
        return data

    def all_sandboxes(self) -> list[dict[str, Any]]:
        out = []
        for directory in sorted(self.sandboxes.iterdir()):
            data = read_json(directory / "sandbox.json")
            if data is not None:
                out.append(data)
        return out

    def container(self, container_id: str) -> ContainerRecord:
        directory = self.container_dir(container_id)
        meta = read_json(directory / "container.json")
        if meta is None:
            raise NotFoundError(f"container {container_id} not found")
        return ContainerRecord(
            id=container_id, directory=directory, meta=meta,
            started=read_json(directory / "started.json"), exited=read_json(directory / "exit.json"))

    def all_containers(self) -> list[ContainerRecord]:
        out = []
        for directory in sorted(self.containers.iterdir()):
            with contextlib.suppress(NotFoundError):
                out.append(self.container(directory.name))
        return out

    def remove_tree(self, path: Path) -> None:
        if path.exists():
            shutil.rmtree(path)


def _safe(identifier: str) -> str:
    if not identifier or "/" in identifier or identifier.startswith("."):
        raise NotFoundError(f"invalid id {identifier!r}")
    return identifier
