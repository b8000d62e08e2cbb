"""Store conformance, key-value half: the contract of ``shoal.store.interface`` on every backend.

Each test runs twice (``backend`` fixture): on SQLite and on a real etcd.  The watch and
compaction half is in ``test_conformance_watch.py``.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from shoal.store import (
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    Store,
)

SVC = "/registry/services/default/"
SA = "/registry/serviceaccounts/default/"


async def test_get_missing_is_none(store: Store) -> None:
    assert await store.get("/registry/pods/default/nope") is None


async def test_create_then_get(store: Store) -> None:
    kv = await store.create(SVC + "a", b'{"a":1}')
    assert kv.key == SVC + "a"
    assert kv.value == b'{"a":1}'
    assert kv.create_revision == kv.mod_revision > 0
    assert await store.get(SVC + "a") == kv
    assert await store.current_revision() == kv.mod_revision


async def test_create_when_present_fails_and_changes_nothing(store: Store) -> None:
    kv = await store.create(SVC + "a", b"one")
    with pytest.raises(KeyExistsError) as err:
        await store.create(SVC + "a", b"two")
    assert err.value.key == SVC + "a"
    assert await store.get(SVC + "a") == kv
    assert await store.current_revision() == kv.mod_revision


async def test_empty_binary_and_unicode_values_round_trip(store: Store) -> None:
    empty = await store.create(SVC + "empty", b"")
    assert (await store.get(SVC + "empty")) == empty
    blob = bytes(range(256))
    await store.create(SVC + "blob", blob)
    got = await store.get(SVC + "blob")
    assert got is not None and got.value == blob
    await store.create(SVC + "ünï-日本", "ü".encode())
    assert [kv.key for kv in (await store.list(SVC)).items] == [SVC + "blob", SVC + "empty", SVC + "ünï-日本"]


async def test_update_compare_and_swap(store: Store) -> None:
    created = await store.create(SVC + "a", b"v1")
    updated = await store.update(SVC + "a", b"v2", created.mod_revision)
    assert updated.value == b"v2"
    assert updated.create_revision == created.create_revision
    assert updated.mod_revision > created.mod_revision
    assert await store.get(SVC + "a") == updated


async def test_update_with_stale_revision_conflicts(store: Store) -> None:
    created = await store.create(SVC + "a", b"v1")
    updated = await store.update(SVC + "a", b"v2", created.mod_revision)
    with pytest.raises(RevisionConflictError) as err:
        await store.update(SVC + "a", b"v3", created.mod_revision)
    assert (err.value.expected, err.value.actual) == (created.mod_revision, updated.mod_revision)
    assert await store.get(SVC + "a") == updated


async def test_update_missing_key_is_not_found(store: Store) -> None:
    with pytest.raises(KeyNotFoundError):
        await store.update(SVC + "missing", b"v", 1)
    kv = await store.create(SVC + "gone", b"v")
    await store.delete(SVC + "gone")
    with pytest.raises(KeyNotFoundError):
        await store.update(SVC + "gone", b"v2", kv.mod_revision)


async def test_delete_compare_and_swap(store: Store) -> None:
    created = await store.create(SVC + "a", b"v1")
    updated = await store.update(SVC + "a", b"v2", created.mod_revision)
    with pytest.raises(RevisionConflictError) as err:
        await store.delete(SVC + "a", created.mod_revision)
    assert err.value.actual == updated.mod_revision
    deleted = await store.delete(SVC + "a", updated.mod_revision)
    assert deleted.value == b"v2"
    assert deleted.create_revision == created.create_revision
    assert deleted.mod_revision > updated.mod_revision
    assert deleted.mod_revision == await store.current_revision()
    assert await store.get(SVC + "a") is None


async def test_unconditional_delete_and_missing_key(store: Store) -> None:
    await store.create(SVC + "a", b"v1")
    deleted = await store.delete(SVC + "a")
    assert deleted.value == b"v1"
    with pytest.raises(KeyNotFoundError):
        await store.delete(SVC + "a")
    with pytest.raises(KeyNotFoundError):
        await store.delete(SVC + "a", deleted.mod_revision)


async def test_create_after_delete_starts_a_new_life(store: Store) -> None:
    first = await store.create(SVC + "a", b"v1")
    await store.delete(SVC + "a")
    second = await store.create(SVC + "a", b"v2")
    assert second.create_revision > first.create_revision
    assert await store.get(SVC + "a") == second


async def test_revisions_strictly_increase_and_only_writes_move_them(store: Store) -> None:
    seen = [await store.current_revision()]
    kv = await store.create(SVC + "a", b"0")
    seen.append(kv.mod_revision)
    for i in range(5):
        kv = await store.update(SVC + "a", str(i).encode(), kv.mod_revision)
        seen.append(kv.mod_revision)
    seen.append((await store.create(SVC + "b", b"")).mod_revision)
    seen.append((await store.delete(SVC + "b")).mod_revision)
    assert seen == sorted(set(seen)), seen
    # Reads and failed writes leave the revision alone.
    await store.get(SVC + "a")
    await store.list(SVC)
    await store.count(SVC)
    with pytest.raises(KeyExistsError):
        await store.create(SVC + "a", b"x")
    with pytest.raises(RevisionConflictError):
        await store.update(SVC + "a", b"x", seen[1])
    assert await store.current_revision() == seen[-1]


async def test_list_orders_by_key_and_isolates_prefixes(store: Store) -> None:
    names = [f"svc-{i:02d}" for i in range(12)]
    for name in random.Random(7).sample(names, len(names)):
        await store.create(SVC + name, name.encode())
    await store.create(SA + "default", b"sa")
    await store.create("/registry/services0", b"just past the prefix range")
    await store.create("/registry/services", b"the prefix without its slash")
    result = await store.list("/registry/services/")
    assert [kv.key for kv in result.items] == [SVC + n for n in names]
    assert [kv.value for kv in result.items] == [n.encode() for n in names]
    assert result.more is False
    assert result.revision == await store.current_revision()
    assert [kv.key for kv in (await store.list("/registry/serviceaccounts/")).items] == [SA + "default"]
    assert (await store.list("/registry/nothing/")).items == []


async def test_list_pages_with_limit_and_start_after(store: Store) -> None:
    keys = [f"{SVC}k{i:02d}" for i in range(25)]
    for key in keys:
        await store.create(key, key.encode())
    await store.create(SA + "outside", b"")
    first = await store.list(SVC, limit=10)
    assert [kv.key for kv in first.items] == keys[:10]
    assert first.more and first.remaining == 15
    # Writes between pages must not show: later pages are read at the first page's revision.
    await store.create(f"{SVC}k05a", b"late")
    await store.delete(keys[20])
    second = await store.list(SVC, limit=10, start_after=first.items[-1].key, revision=first.revision)
    assert [kv.key for kv in second.items] == keys[10:20]
    assert second.more and second.remaining == 5
    assert second.revision == first.revision
    third = await store.list(SVC, limit=10, start_after=second.items[-1].key, revision=first.revision)
    assert [kv.key for kv in third.items] == keys[20:]
    assert third.more is False
    exact = await store.list(SVC, limit=25, revision=first.revision)
    assert len(exact.items) == 25 and exact.more is False
    # A start_after before the prefix does not leak keys from outside it.
    before = await store.list(SVC, limit=3, start_after="/registry/a", revision=first.revision)
    assert [kv.key for kv in before.items] == keys[:3]


async def test_empty_prefix_lists_everything(store: Store) -> None:
    await store.create(SVC + "a", b"")
    await store.create(SA + "b", b"")
    await store.create("/zzz", b"")
    assert [kv.key for kv in (await store.list("")).items] == [SA + "b", SVC + "a", "/zzz"]
    assert await store.count("") == 3


async def test_list_at_an_older_revision_sees_the_old_state(store: Store) -> None:
    a = await store.create(SVC + "a", b"a1")
    b = await store.create(SVC + "b", b"b1")
    old = await store.current_revision()
    await store.update(SVC + "a", b"a2", a.mod_revision)
    await store.delete(SVC + "b", b.mod_revision)
    await store.create(SVC + "c", b"c1")
    then = await store.list(SVC, revision=old)
    assert then.revision == old
    assert then.items == [a, b]
    now = await store.list(SVC)
    assert [(kv.key, kv.value) for kv in now.items] == [(SVC + "a", b"a2"), (SVC + "c", b"c1")]
    before_all = await store.list(SVC, revision=a.mod_revision)
    assert before_all.items == [a]


async def test_count(store: Store) -> None:
    assert await store.count(SVC) == 0
    for i in range(7):
        await store.create(f"{SVC}{i}", b"x")
    await store.create(SA + "x", b"x")
    assert await store.count(SVC) == 7
    await store.delete(f"{SVC}3")
    assert await store.count(SVC) == 6
    assert await store.count("/registry/") == 7


async def test_future_revision_is_refused(store: Store) -> None:
    await store.create(SVC + "a", b"")
    current = await store.current_revision()
    with pytest.raises(FutureRevisionError) as err:
        await store.list(SVC, revision=current + 10)
    assert (err.value.requested, err.value.current) == (current + 10, current)


@pytest.mark.parametrize("limit", [2**63 - 1, 2**63, 2**64 + 7, 2**100, -1, -(2**63)])
async def test_any_int_limit_is_taken(store: Store, limit: int) -> None:
    """Issue 8 item 4: ``limit`` 2**63-1 made SQLite fail ("datatype mismatch": limit + 1 in SQL).

    Kubernetes hands any int64 limit to its store; here any int is a limit: <= 0 is none, a
    huge one lists everything, with no ``more``."""
    keys = [f"{SVC}k{i}" for i in range(3)]
    for key in keys:
        await store.create(key, b"x")
    page = await store.list(SVC, limit=limit)
    assert [kv.key for kv in page.items] == keys and page.more is False
    after = await store.list(SVC, limit=limit, start_after=keys[0], revision=page.revision)
    assert [kv.key for kv in after.items] == keys[1:] and after.more is False


@pytest.mark.parametrize("revision", [2**63 - 1, 2**63, 2**64, 2**90])
async def test_any_future_revision_is_refused(store: Store, revision: int) -> None:
    """Issue 8 item 4: a revision no int64 holds (from a continue token) is a future revision too."""
    await store.create(SVC + "a", b"")
    current = await store.current_revision()
    with pytest.raises(FutureRevisionError) as err:
        await store.list(SVC, revision=revision, limit=2**63 - 1)
    assert (err.value.requested, err.value.current) == (revision, current)


async def test_concurrent_read_modify_write_loses_no_update(store: Store) -> None:
    key = "/registry/counters/default/c"
    await store.create(key, b"0")
    conflicts = 0
    jitter = random.Random(1)

    async def writer() -> None:
        nonlocal conflicts
        for _ in range(10):
            while True:
                kv = await store.get(key)
                assert kv is not None
                try:
                    await store.update(key, str(int(kv.value) + 1).encode(), kv.mod_revision)
                    break
                except RevisionConflictError:
                    conflicts += 1
                await asyncio.sleep(jitter.uniform(0, 0.02))  # back off, as real clients do

    await asyncio.gather(*(writer() for _ in range(20)))
    final = await store.get(key)
    assert final is not None and final.value == b"200"
    assert conflicts > 0  # the writers really did race
