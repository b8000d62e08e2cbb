"""The SQLite store on a really full disk (a tmpfs filled to the last byte): Issue 8 item 10."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from shoal.store import SqliteStore, StoreUnavailableError
from shoal.store.compactor import run_compactor
from tests.support.disk import fill, tmpfs
from tests.support.store import take, watching
from tests.support.wait import eventually

KEY = "/registry/configmaps/default/"


async def test_an_existing_database_opens_on_a_full_disk_reads_work_and_writes_resume(tmp_path: Path) -> None:
    """Issue 8 item 10: after a clean close (no -wal, no -shm left) and a full disk the store opens
    (without shared memory), reads and watches from history work, writes fail as unavailable
    ("database or disk is full"), and succeed once space is freed, without a restart."""
    with tmpfs(tmp_path / "disk") as disk:
        store = SqliteStore(disk / "state.db")
        await store.start()
        first = await store.create(KEY + "a", b"v-a")
        last = await store.create(KEY + "b", b"v-b")
        await store.close()
        assert not (disk / "state.db-shm").exists()
        filler = fill(disk)

        again = SqliteStore(disk / "state.db")
        await again.start()
        try:
            assert await again.get(KEY + "a") == first
            assert [kv.key for kv in (await again.list(KEY)).items] == [KEY + "a", KEY + "b"]
            assert await again.count(KEY) == 2
            async with watching(again, KEY, first.mod_revision) as events:
                assert [(e.key, e.value) for e in await take(events, 1)] == [(KEY + "b", b"v-b")]
            with pytest.raises(StoreUnavailableError, match="database or disk is full"):
                await again.create(KEY + "c", b"v-c")
            assert await again.current_revision() == last.mod_revision

            filler.unlink()
            created = await again.create(KEY + "c", b"v-c")
            assert created.mod_revision == last.mod_revision + 1
            assert await again.get(KEY + "c") == created
        finally:
            await again.close()


async def test_the_compactor_outlives_a_full_disk(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 8 item 10: a compaction that cannot write is logged and retried at the next tick
    (it used to end the compactor, and with it the server); it succeeds once space returns."""
    caplog.set_level(logging.WARNING, "shoal.store.compactor")
    with tmpfs(tmp_path / "disk") as disk:
        store = SqliteStore(disk / "state.db")
        await store.start()
        try:
            kv = await store.create(KEY + "a", b"1")
            for n in range(20):
                kv = await store.update(KEY + "a", str(n).encode(), kv.mod_revision)
            ticks: asyncio.Queue[None] = asyncio.Queue()
            sleeping = asyncio.Event()

            async def tick(_interval: float) -> None:
                sleeping.set()
                await ticks.get()

            compactor = asyncio.create_task(run_compactor(store, 1.0, sleep=tick))
            await asyncio.wait_for(sleeping.wait(), 5)  # it read the revision to compact to
            filler = fill(disk)
            ticks.put_nowait(None)
            await eventually(lambda: "compaction to revision" in caplog.text or compactor.done(),
                             what="the failed compaction's warning")
            assert not compactor.done(), compactor
            assert "database or disk is full" in caplog.text
            assert await store.compacted_revision() == 0

            filler.unlink()
            ticks.put_nowait(None)

            async def compacted() -> bool:
                return compactor.done() or await store.compacted_revision() == kv.mod_revision

            await eventually(compacted, what="the compaction after space returned")
            assert not compactor.done(), compactor
            compactor.cancel()
            await asyncio.gather(compactor, return_exceptions=True)
        finally:
            await store.close()
