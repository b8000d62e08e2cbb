"""Container log files in the CRI format, read by both drivers.

Each record is one line: ``<RFC 3339 nano UTC timestamp> <stdout|stderr> <F|P> <content>``.
``F`` ends a logical line, ``P`` is a partial chunk continued by the next record of the
stream.  podman's ``k8s-file`` log driver writes this format (conmon); the process driver's
supervisor writes it too, so one reader serves both.

Why read the file instead of ``podman logs``: podman 4.3 ``logs --timestamps`` drops the
newline between some records, and following a file needs no long-lived podman process.

:func:`read_log` yields logical lines (``b"...\\n"``), optionally prefixed with the record's
timestamp (``--timestamps``), restricted to the last ``tail`` lines and/or to lines at or
after ``since``; with ``follow`` it polls for new records until ``still_running()`` says the
container has ended and the file is drained.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from shoal.kube.times import format_nano, parse_time

POLL_INTERVAL = 0.1
STATE_CHECK_INTERVAL = 0.5
_TAIL_BLOCK = 64 * 1024


def format_record(stream: str, content: bytes, *, partial: bool = False, ns: int | None = None) -> bytes:
    return f"{format_nano(ns)} {stream} {'P' if partial else 'F'} ".encode() + content + b"\n"


class _Assembler:
    """Joins P/F records into logical lines and applies the since/timestamps options."""

    def __init__(self, *, timestamps: bool, since: datetime | None) -> None:
        self.timestamps = timestamps
        self.since = since
        self.pending: dict[bytes, tuple[bytes, bytes]] = {}  # stream → (first timestamp, content)

    def feed(self, record: bytes) -> bytes | None:
        parts = record.split(b" ", 3)
        if len(parts) < 3:
            return None
        stamp, stream, tag = parts[0], parts[1], parts[2]
        content = parts[3] if len(parts) == 4 else b""
        first_stamp, buffered = self.pending.pop(stream, (stamp, b""))
        if tag == b"P":
            self.pending[stream] = (first_stamp, buffered + content)
            return None
        line = buffered + content
        if self.since is not None:
            when = parse_time(first_stamp.decode(errors="replace"))
            if when is not None and when < self.since:
                return None
        prefix = first_stamp + b" " if self.timestamps else b""
        return prefix + line + b"\n"


def _tail_offset(path: Path, lines: int) -> int:
    """File offset from which at least ``lines`` final records start (0 = whole file)."""
    if not path.exists():
        return 0
    if lines <= 0:
        with path.open("rb") as handle:
            return handle.seek(0, 2)
    with path.open("rb") as handle:
        end = handle.seek(0, 2)
        pos = end
        count = 0
        while pos > 0:
            step = min(_TAIL_BLOCK, pos)
            pos -= step
            handle.seek(pos)
            block = handle.read(step)
            count += block.count(b"\n")
            if count > lines * 2:  # partial records may be joined; read a margin
                break
        return pos


async def read_log(path: Path, *, follow: bool = False, tail: int | None = None, timestamps: bool = False,
                   since: datetime | None = None,
                   still_running: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[bytes]:
    """Logical log lines of a CRI log file (see the module docstring)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    assembler = _Assembler(timestamps=timestamps, since=since)
    offset = 0
    if tail is not None:
        offset = await asyncio.to_thread(_tail_offset, path, tail)
    buffer = b""
    skip_first = offset > 0  # we landed mid-record
    first_batch = True
    last_state_check = 0.0
    running = True
    while True:
        chunk = await asyncio.to_thread(_read_from, path, offset)
        offset += len(chunk)
        buffer += chunk
        *records, buffer = buffer.split(b"\n")
        if skip_first and records:
            records = records[1:]
            skip_first = False
        lines = [line for line in (assembler.feed(r) for r in records) if line is not None]
        if first_batch and tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        first_batch = False
        for line in lines:
            yield line
        if not follow:
            return
        if chunk:
            continue
        if not running:
            return
        now = time.monotonic()
        if still_running is not None and now - last_state_check >= STATE_CHECK_INTERVAL:
            last_state_check = now
            running = await still_running()
            if not running:
                continue  # one more read drains what the container wrote last
        await asyncio.sleep(POLL_INTERVAL)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""
