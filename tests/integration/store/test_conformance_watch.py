"""Store conformance, watch and compaction half (SQLite and real etcd, via ``backend``)."""

from __future__ import annotations

import asyncio

import pytest

from shoal.store import CompactedError, Event, EventType, FutureRevisionError, Store
from tests.support.store import take, watching

SVC = "/registry/services/default/"
SA = "/registry/serviceaccounts/default/"


async def test_watch_from_a_revision_replays_exactly_the_later_events(store: Store) -> None:
    await store.create(SVC + "before", b"old")
    start = await store.current_revision()
    a = await store.create(SVC + "a", b"a1")
    await store.create(SA + "noise", b"not under the prefix")
    b = await store.create(SVC + "b", b"b1")
    a2 = await store.update(SVC + "a", b"a2", a.mod_revision)
    b_gone = await store.delete(SVC + "b", b.mod_revision)
    async with watching(store, SVC, start) as events:
        got = await take(events, 4)
        assert got == [
            Event(EventType.ADDED, SVC + "a", b"a1", a.mod_revision),
            Event(EventType.ADDED, SVC + "b", b"b1", b.mod_revision),
            Event(EventType.MODIFIED, SVC + "a", b"a2", a2.mod_revision, prev_value=b"a1"),
            Event(EventType.DELETED, SVC + "b", b"b1", b_gone.mod_revision, prev_value=b"b1"),
        ]
        # Nothing else was queued: the next event is the next write under the prefix.
        await store.create(SA + "more-noise", b"")
        c = await store.create(SVC + "c", b"c1")
        assert await take(events, 1) == [Event(EventType.ADDED, SVC + "c", b"c1", c.mod_revision)]


async def test_watch_from_zero_gets_only_new_events(store: Store) -> None:
    old = await store.create(SVC + "old", b"")
    async with watching(store, SVC, 0) as events:
        first = asyncio.ensure_future(take(events, 1))
        # The watch starts when first iterated; write until it reports something (no sleeps
        # that guess how long the watch takes to start).
        marks: list[int] = []
        while not first.done() and len(marks) < 200:
            marks.append((await store.create(f"{SVC}mark-{len(marks):03d}", b"")).mod_revision)
            await asyncio.wait([first], timeout=0.02)
        [event] = await first
        assert event.key != SVC + "old" and event.revision > old.mod_revision
        assert event.revision in marks
        # From there on every later mark arrives, in order.
        later = [r for r in marks if r > event.revision]
        if later:
            assert [e.revision for e in await take(events, len(later))] == later


async def test_watch_follows_live_writes(store: Store) -> None:
    start = (await store.create(SA + "seed", b"")).mod_revision  # > 0: 0 would mean "from now"

    async with watching(store, SVC, start) as events:
        reader = asyncio.ensure_future(take(events, 30))
        expected = []
        kv = await store.create(SVC + "live", b"0")
        expected.append((EventType.ADDED, kv.mod_revision))
        for i in range(1, 29):
            kv = await store.update(SVC + "live", str(i).encode(), kv.mod_revision)
            expected.append((EventType.MODIFIED, kv.mod_revision))
            await store.create(f"{SA}n{i}", b"")
        deleted = await store.delete(SVC + "live")
        expected.append((EventType.DELETED, deleted.mod_revision))
        got = await reader
        assert [(e.type, e.revision) for e in got] == expected
        assert [e.value for e in got[1:-1]] == [str(i).encode() for i in range(1, 29)]
        assert got[-1].value == b"28"


async def test_watch_prefix_isolation(store: Store) -> None:
    start = (await store.create(SA + "seed", b"")).mod_revision
    await store.create(SA + "x", b"")
    await store.create("/registry/services0", b"")
    svc = await store.create(SVC + "x", b"")
    async with watching(store, "/registry/services/", start) as events:
        assert [e.revision for e in await take(events, 1)] == [svc.mod_revision]


async def test_watch_future_revision_is_refused(store: Store) -> None:
    current = await store.current_revision()
    async with watching(store, SVC, current + 5) as events:
        with pytest.raises(FutureRevisionError):
            await anext(events)


@pytest.mark.parametrize("revision", [2**63 - 1, 2**63, 2**70])
async def test_watch_from_a_revision_beyond_int64_is_a_future_revision(store: Store, revision: int) -> None:
    """Issue 8 item 4: revisions are numbers of any size at the store's door, never a crash."""
    async with watching(store, SVC, revision) as events:
        with pytest.raises(FutureRevisionError):
            await anext(events)


async def test_compaction(store: Store) -> None:
    a = await store.create(SVC + "a", b"a1")
    b = await store.create(SVC + "b", b"b1")
    early = await store.current_revision()
    a2 = await store.update(SVC + "a", b"a2", a.mod_revision)
    await store.delete(SVC + "b", b.mod_revision)
    c = await store.create(SVC + "c", b"c1")
    mid = c.mod_revision
    a3 = await store.update(SVC + "a", b"a3", a2.mod_revision)
    await store.compact(mid)
    assert await store.compacted_revision() == mid

    with pytest.raises(CompactedError) as err:
        await store.list(SVC, revision=early)
    assert (err.value.requested, err.value.compacted) == (early, mid)
    async with watching(store, SVC, early) as events:
        with pytest.raises(CompactedError):
            await anext(events)
    async with watching(store, SVC, mid - 1) as events:
        with pytest.raises(CompactedError):
            await anext(events)

    # The state at the compacted revision and everything after it survive.
    at_mid = await store.list(SVC, revision=mid)
    assert [(kv.key, kv.value) for kv in at_mid.items] == [(SVC + "a", b"a2"), (SVC + "c", b"c1")]
    assert (await store.list(SVC)).items == [a3, c]
    async with watching(store, SVC, mid) as events:
        [event] = await take(events, 1)
        assert (event.type, event.revision, event.prev_value) == (EventType.MODIFIED, a3.mod_revision, b"a2")

    # Writes go on as before, including to keys whose history was compacted away.
    b_again = await store.create(SVC + "b", b"b2")
    assert b_again.mod_revision > a3.mod_revision
    await store.update(SVC + "a", b"a4", a3.mod_revision)

    # Compacting again at or below the compacted revision changes nothing.
    await store.compact(early)
    assert await store.compacted_revision() == mid
    with pytest.raises(FutureRevisionError):
        await store.compact(await store.current_revision() + 10)
