"""Kernel facts about containers: cgroup usage counters and memory-cgroup OOM kills.

* :func:`cgroup_usage` reads a process's cgroup CPU and memory counters (cgroup v1 and v2):
  CPU time from ``cpuacct.usage`` / ``cpu.stat usage_usec``, the working set as usage minus
  inactive file pages (what the kubelet reports).
* :func:`oom_killed_cgroups` scans the kernel log (``/dev/kmsg``) for memory-cgroup OOM kills
  and returns the killed tasks' cgroup paths.  podman 4.3 never sets ``State.OOMKilled``
  (conmon's OOM file is not read back), and a container's cgroup is gone once it exited, so
  the kernel log is the one durable witness: the kill line names the container's cgroup
  (``.../libpod-<id>``).  Readable by root; a ring buffer, so very old kills may be lost.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_usage_ns: int
    memory_working_set_bytes: int


def process_cgroups(pid: int) -> dict[str, str]:
    """controller → cgroup path for ``pid`` (key "" for the cgroup v2 unified hierarchy)."""
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            out[controller] = path
    return out


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _stat_value(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def cgroup_usage(pid: int) -> Usage:
    """Counters of the cgroup(s) ``pid`` lives in; raises OSError if it is gone."""
    groups = process_cgroups(pid)
    if "memory" in groups:  # cgroup v1
        cpu_dir = CGROUP_ROOT / "cpuacct" / groups.get("cpuacct", "/").lstrip("/")
        mem_dir = CGROUP_ROOT / "memory" / groups["memory"].lstrip("/")
        cpu = _read_int(cpu_dir / "cpuacct.usage")
        usage = _read_int(mem_dir / "memory.usage_in_bytes")
        inactive = _stat_value(mem_dir / "memory.stat", "total_inactive_file")
    else:
        unified = CGROUP_ROOT / groups.get("", "/").lstrip("/")
        cpu = _stat_value(unified / "cpu.stat", "usage_usec") * 1000
        usage = _read_int(unified / "memory.current")
        inactive = _stat_value(unified / "memory.stat", "inactive_file")
    return Usage(cpu_usage_ns=cpu, memory_working_set_bytes=max(0, usage - inactive))


def oom_killed_cgroups(kmsg: str = "/dev/kmsg") -> list[str]:
    """cgroup paths (``task_memcg=``) of every memory-cgroup OOM kill still in the kernel log."""
    found: list[str] = []
    fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while reading: skip ahead
                    continue
                raise
            if not record:
                break
            _, _, message = record.partition(b";")
            if not message.startswith(b"oom-kill:") or b"CONSTRAINT_MEMCG" not in message:
                continue
            for field in message.split(b","):
                if field.startswith(b"task_memcg="):
                    found.append(field.removeprefix(b"task_memcg=").decode(errors="replace").strip())
    finally:
        os.close(fd)
    return found


def container_oom_killed(container_id: str, kmsg: str = "/dev/kmsg") -> bool:
    """True when the kernel log shows an OOM kill inside the container's memory cgroup."""
    suffixes = (f"libpod-{container_id}", f"libpod-{container_id}.scope", container_id)
    return any(path.rstrip("/").rsplit("/", 1)[-1] in suffixes for path in oom_killed_cgroups(kmsg))
