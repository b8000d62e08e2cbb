"""Process-group accounting from /proc for the process driver.

A process-driver container is the process group its supervisor created (pgid = the command's
PID) inside the supervisor's session.  Members are matched on *both* the process group and
the session ID, so a recycled PID number never pulls an unrelated process in.  Usage is the
sum over the live members: CPU = utime + stime (clock ticks → ns; exited children are not
counted), memory = resident set size.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid_dir: Path) -> list[str] | None:
    try:
        stat = (pid_dir / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Fields after "comm": state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12) ... rss(21)
    return stat.rsplit(")", 1)[1].split()


def group_members(pgid: int, sid: int) -> list[int]:
    """PIDs of live processes in process group ``pgid`` and session ``sid``."""
    members = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        fields = _stat_fields(pid_dir)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        if int(fields[2]) == pgid and (sid < 0 or int(fields[3]) == sid):
            members.append(int(pid_dir.name))
    return members


def group_usage(pgid: int, sid: int) -> tuple[int, int]:
    """(cpu_ns, rss_bytes) summed over the group's live members."""
    cpu_ticks = 0
    rss_pages = 0
    for pid in group_members(pgid, sid):
        fields = _stat_fields(Path(f"/proc/{pid}"))
        if fields is None:
            continue
        cpu_ticks += int(fields[11]) + int(fields[12])
        rss_pages += int(fields[21])
    return cpu_ticks * _TICK_NS, rss_pages * _PAGE
