"""Reading CRI-format log files: partial records, tail, since, timestamps and follow."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from shoal.agent.runtime.crilog import format_record, read_log
from shoal.kube.times import format_nano, parse_time

BASE_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


def write(path: Path, *records: bytes) -> None:
    with path.open("ab") as handle:
        for record in records:
            handle.write(record)


async def lines(path: Path, **options: object) -> list[bytes]:
    return [line async for line in read_log(path, **options)]  # type: ignore[arg-type]


def test_timestamp_round_trip() -> None:
    stamp = format_nano(BASE_NS + 123_456_789)
    assert stamp == "2026-01-01T00:00:00.123456789Z"
    assert parse_time(stamp) == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("2026-01-01T00:00:00+02:00") == datetime(2025, 12, 31, 22, 0, tzinfo=UTC)


async def test_partial_records_join_and_streams_interleave(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log,
          format_record("stdout", b"hel", partial=True, ns=BASE_NS),
          format_record("stderr", b"warn", ns=BASE_NS + 1000),
          format_record("stdout", b"lo world", ns=BASE_NS + 2000),
          format_record("stdout", b"", ns=BASE_NS + 3000))
    assert await lines(log) == [b"warn\n", b"hello world\n", b"\n"]
    stamped = await lines(log, timestamps=True)
    assert stamped[1] == b"2026-01-01T00:00:00.000000000Z hello world\n"  # the first chunk's time


async def test_tail_and_since(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log, *(format_record("stdout", f"line{i}".encode(), ns=BASE_NS + i * 1_000_000) for i in range(500)))
    assert await lines(log, tail=3) == [b"line497\n", b"line498\n", b"line499\n"]
    assert await lines(log, tail=0) == []
    assert len(await lines(log, tail=10_000)) == 500
    since = datetime.fromtimestamp((BASE_NS + 498 * 1_000_000) / 1e9, tz=UTC)
    assert await lines(log, since=since) == [b"line498\n", b"line499\n"]
    naive = since.replace(tzinfo=None)  # naive datetimes are taken as UTC
    assert await lines(log, since=naive) == [b"line498\n", b"line499\n"]


async def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert await lines(tmp_path / "nope", tail=5) == []


async def test_follow_yields_appended_lines_until_the_container_ends(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log, format_record("stdout", b"first"))
    running = True

    async def still_running() -> bool:
        return running

    received: list[bytes] = []

    async def follow() -> None:
        async for line in read_log(log, follow=True, still_running=still_running):
            received.append(line)

    task = asyncio.ensure_future(follow())
    await asyncio.sleep(0.3)
    write(log, format_record("stdout", b"second"))
    for _ in range(50):
        if len(received) == 2:
            break
        await asyncio.sleep(0.05)
    assert received == [b"first\n", b"second\n"]
    write(log, format_record("stdout", b"last words"))
    running = False
    await asyncio.wait_for(task, timeout=5)
    assert received[-1] == b"last words\n"
