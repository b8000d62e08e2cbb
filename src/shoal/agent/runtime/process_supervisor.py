"""Per-container supervisor of the process driver (stdlib only; run as a script).

It runs as ``python -I`` (isolated: no site packages, no ``PYTHONPATH``), so it cannot import
Shoal: its RFC 3339 stamp and atomic JSON write are the standalone twins of
:func:`shoal.kube.times.format_nano` and :func:`shoal.kube.files.atomic_write_json`.

``python -I process_supervisor.py <container dir>`` is started by the process driver in a new
session.  It forks once more and the parent exits at once, so the driver reaps it immediately
and the real supervisor lives on — reparented, in its own session — across agent restarts.

The supervisor reads ``launch.json`` (argv, env, cwd, uid/gid, address-space limit), starts the
command in its own process group (so the driver signals the command's group, never the
supervisor), and then:

* writes ``started.json`` (supervisor and child pid plus their /proc start times, which guard
  against PID reuse, the child's process group and session, and the start time) — or
  ``exit.json`` with ``start_error`` if the command cannot be started;
* copies the child's stdout and stderr into ``log`` in the CRI format
  (``<RFC 3339 nano> <stream> <F|P> <text>``), one record per line, chunks of at most 16 KiB;
* when the child exits, writes ``exit.json`` (exit code — 128 + signal for a signal — and the
  finish time).  All JSON files are written atomically (temp file + rename).

It ignores SIGTERM/SIGINT/SIGHUP (Python handlers, so the child starts with default dispositions).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

MAX_RECORD = 16 * 1024


def now_rfc3339() -> str:
    ns = time.time_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def proc_start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


class LogWriter:
    """Turns raw output chunks into CRI log records, per stream."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def record(self, stream: str, content: bytes, tag: str) -> None:
        self.handle.write(f"{now_rfc3339()} {stream} {tag} ".encode() + content + b"\n")

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.pending[stream] + data
        while True:
            line, sep, rest = buf.partition(b"\n")
            if not sep:
                break
            self._emit_line(stream, line)
            buf = rest
        while len(buf) > MAX_RECORD:
            self.record(stream, buf[:MAX_RECORD], "P")
            buf = buf[MAX_RECORD:]
        self.pending[stream] = buf
        self.handle.flush()

    def _emit_line(self, stream: str, line: bytes) -> None:
        while len(line) > MAX_RECORD:
            self.record(stream, line[:MAX_RECORD], "P")
            line = line[MAX_RECORD:]
        self.record(stream, line, "F")

    def close(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self._emit_line(stream, rest)
        self.handle.flush()


def _preexec(address_space: int) -> None:
    if address_space > 0:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))


def run(container_dir: Path) -> int:
    launch = json.loads((container_dir / "launch.json").read_text())
    log_handle = (container_dir / "log").open("ab")
    writer = LogWriter(log_handle)
    address_space = int(launch.get("address_space_bytes") or 0)
    try:
        child = subprocess.Popen(
            launch["argv"], env=launch["env"], cwd=launch["cwd"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            process_group=0, close_fds=True,
            user=launch.get("uid"), group=launch.get("gid"),
            preexec_fn=(lambda: _preexec(address_space)) if address_space else None,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        code = 127 if isinstance(exc, OSError) and exc.errno == errno.ENOENT else 126
        writer.record("stderr", f"failed to start container: {exc}".encode(), "F")
        writer.close()
        write_json(container_dir / "exit.json", {
            "exit_code": code, "finished_at": now_rfc3339(), "start_error": str(exc)})
        return 0
    write_json(container_dir / "started.json", {
        "supervisor_pid": os.getpid(), "supervisor_start": proc_start_ticks(os.getpid()),
        "pid": child.pid, "pgid": child.pid, "sid": os.getsid(child.pid),
        "child_start": proc_start_ticks(child.pid),
        "started_at": now_rfc3339(),
    })
    assert child.stdout is not None and child.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, "stdout")
    selector.register(child.stderr, selectors.EVENT_READ, "stderr")
    open_streams = 2
    exited_at: float | None = None
    while open_streams:
        events = selector.select(timeout=0.2)
        for key, _ in events:
            data = os.read(key.fd, 65536)
            if data:
                writer.feed(key.data, data)
            else:
                selector.unregister(key.fileobj)
                open_streams -= 1
        if child.poll() is not None:
            # The main process is gone; a leftover holding the pipes must not keep us here.
            exited_at = exited_at if exited_at is not None else time.monotonic()
            if not events or time.monotonic() - exited_at > 1.0:
                break
    returncode = child.wait()
    writer.close()
    log_handle.close()
    write_json(container_dir / "exit.json", {
        "exit_code": returncode if returncode >= 0 else 128 - returncode,
        "signal": -returncode if returncode < 0 else 0,
        "finished_at": now_rfc3339(),
    })
    return 0


def main() -> int:
    container_dir = Path(sys.argv[1])
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: None)
    if os.fork() > 0:
        os._exit(0)
    return run(container_dir)


if __name__ == "__main__":
    sys.exit(main())
