"""SQLite-only behaviour: persistence, crash durability, the log's shape, watcher limits."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from shoal.store import KeyExistsError, SqliteStore, StoreUnavailableError, WatchExpiredError, open_store
from shoal.store.sqlite import REPLAY_PAGE
from tests.support.store import take, watching

KEY = "/registry/configmaps/default/"


async def test_reopen_keeps_data_and_revisions_continue(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.start()
    a = await store.create(KEY + "a", b"a1")
    a = await store.update(KEY + "a", b"a2", a.mod_revision)
    gone = await store.create(KEY + "gone", b"")
    last = (await store.delete(KEY + "gone", gone.mod_revision)).mod_revision
    await store.compact(a.mod_revision)
    await store.close()

    again = SqliteStore(path)
    await again.start()
    try:
        assert await again.current_revision() == last
        assert await again.compacted_revision() == a.mod_revision
        assert await again.get(KEY + "a") == a
        assert await again.get(KEY + "gone") is None
        b = await again.create(KEY + "b", b"")
        assert b.mod_revision == last + 1
    finally:
        await again.close()


async def test_a_second_process_cannot_open_the_file(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    try:
        probe = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _OPENER, str(tmp_path / "state.db"), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(probe.communicate(), 20)
        assert out.strip() == b"StoreUnavailableError"
    finally:
        await store.close()
    reopened = SqliteStore(tmp_path / "state.db")  # released on close
    await reopened.start()
    await reopened.close()


_OPENER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from shoal.store import SqliteStore, StoreUnavailableError

    async def main() -> None:
        try:
            await SqliteStore(Path(sys.argv[1])).start()
        except StoreUnavailableError:
            print("StoreUnavailableError")
        else:
            print("opened")

    asyncio.run(main())
    """
)


async def test_revision_survives_compacting_away_the_newest_row(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    try:
        await store.create(KEY + "a", b"")
        await store.create(KEY + "b", b"")
        tomb = await store.delete(KEY + "b")
        await store.compact(tomb.mod_revision)
        await store.delete(KEY + "a")
        last = await store.current_revision()
        await store.compact(last)  # removes the tombstones, the highest ids in the table
        assert await store.current_revision() == last
        assert (await store.create(KEY + "a", b"")).mod_revision == last + 1
    finally:
        await store.close()


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from shoal.store import SqliteStore

    async def main() -> None:
        store = SqliteStore(Path(sys.argv[1]))
        await store.start()
        i = 0
        while True:
            kv = await store.create(f"/registry/configmaps/default/k{i:06d}", b"x" * 100)
            print(i, kv.mod_revision, flush=True)
            i += 1

    asyncio.run(main())
    """
)


async def test_writes_survive_kill_9(tmp_path: Path) -> None:
    """Every write whose call returned is on disk, even when the process is killed right after."""
    path = tmp_path / "state.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        acked: list[tuple[int, int]] = []
        while len(acked) < 200:
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line, "writer died"
            index, revision = line.split()
            acked.append((int(index), int(revision)))
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = SqliteStore(path)
    await store.start()
    try:
        i, rev = acked[-1]
        kv = await store.get(f"{KEY}k{i:06d}")
        assert kv is not None and kv.mod_revision == rev
        assert await store.count(KEY) >= len(acked)
    finally:
        await store.close()


async def test_compaction_removes_superseded_rows_and_tombstones(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.start()
    try:
        kv = await store.create(KEY + "a", b"0")
        for i in range(1, 50):
            kv = await store.update(KEY + "a", str(i).encode(), kv.mod_revision)
        await store.create(KEY + "b", b"")
        await store.delete(KEY + "b")
        keep = await store.create(KEY + "c", b"")
        await store.compact(await store.current_revision())
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT name, id FROM kv ORDER BY id").fetchall()
        db.close()
        assert rows == [(KEY + "a", kv.mod_revision), (KEY + "c", keep.mod_revision)]
        assert [x.key for x in (await store.list(KEY)).items] == [KEY + "a", KEY + "c"]
        b = await store.create(KEY + "b", b"again")  # the key's old rows are gone: no clash
        assert (await store.get(KEY + "b")) == b
    finally:
        await store.close()


def test_schema_refuses_two_successors_of_one_row(tmp_path: Path) -> None:
    """UNIQUE(name, prev_revision): the last line of defence against a stale compare-and-swap."""
    from shoal.store import sqlite_log

    conn = sqlite_log.connect(str(tmp_path / "state.db"))
    try:
        kv, _ = sqlite_log.create(conn, KEY + "a", b"0")
        conn.execute(
            "INSERT INTO kv (name, created, deleted, create_revision, prev_revision, value)"
            " VALUES (?, 0, 0, ?, ?, x'31')",
            (KEY + "a", kv.create_revision, kv.mod_revision),
        )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO kv (name, created, deleted, create_revision, prev_revision, value)"
                " VALUES (?, 0, 0, ?, ?, x'32')",
                (KEY + "a", kv.create_revision, kv.mod_revision),
            )
    finally:
        conn.close()


async def test_long_replay_is_complete_and_ordered(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    try:
        start = (await store.create("/other", b"")).mod_revision
        kv = await store.create(KEY + "a", b"0")
        for i in range(1, REPLAY_PAGE * 2 + 10):
            kv = await store.update(KEY + "a", str(i).encode(), kv.mod_revision)
            await store.create(f"/other/{i}", b"")
        async with watching(store, KEY, start) as events:
            got = await take(events, REPLAY_PAGE * 2 + 10)
            assert [e.value for e in got] == [str(i).encode() for i in range(REPLAY_PAGE * 2 + 10)]
            live = await store.update(KEY + "a", b"live", kv.mod_revision)
            assert [e.revision for e in await take(events, 1)] == [live.mod_revision]
    finally:
        await store.close()


async def test_slow_watcher_is_expired(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", watch_queue_size=5)
    await store.start()
    try:
        start = (await store.create("/seed", b"")).mod_revision
        await store.create(KEY + "first", b"")
        async with watching(store, KEY, start) as events:
            assert (await anext(events)).key == KEY + "first"  # subscribed, not consuming
            for i in range(10):
                await store.create(f"{KEY}k{i}", b"")
            await asyncio.sleep(0)
            with pytest.raises(WatchExpiredError):
                await take(events, 10)
    finally:
        await store.close()


async def test_close_ends_watchers(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    events = store.watch(KEY, 0)
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(waiting, 5)
    assert isinstance(events, AsyncGenerator)
    await events.aclose()
    with pytest.raises(StoreUnavailableError):
        await store.get(KEY)


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    sqlite = open_store("sqlite", tmp_path)
    assert isinstance(sqlite, SqliteStore) and sqlite.path == tmp_path / "state.db"
    from shoal.store import EtcdStore

    etcd = open_store("etcd://127.0.0.1:2379,10.0.0.2:2379", tmp_path)
    assert isinstance(etcd, EtcdStore)
    assert etcd.endpoints == ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
    for bad in ("mysql", "etcd://", "etcd:127.0.0.1:2379"):
        with pytest.raises(ValueError):
            open_store(bad, tmp_path)


async def test_concurrent_writes_commit_together_and_a_conflict_fails_alone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    try:
        taken = await store.create(KEY + "taken", b"")
        start = taken.mod_revision
        async with watching(store, KEY, start) as events:
            writes = [store.create(f"{KEY}k{i}", str(i).encode()) for i in range(20)]
            writes.insert(7, store.create(KEY + "taken", b"again"))  # KeyExistsError, alone
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            assert isinstance(outcomes[7], KeyExistsError)
            created = [o for o in outcomes if not isinstance(o, BaseException)]
            assert [kv.mod_revision for kv in created] == list(range(start + 1, start + 21))
            seen = await take(events, 20)
            assert [e.revision for e in seen] == [kv.mod_revision for kv in created]
        # every write was committed: a fresh connection sees them
        conn = sqlite3.connect(tmp_path / "state.db")
        try:
            assert conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == 21
        finally:
            conn.close()
    finally:
        await store.close()
