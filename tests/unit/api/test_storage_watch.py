"""ObjectStorage.watch fan-out on a real SQLite store: several watches of one change share one
decoded object and one WatchEvent (encoded once), per event type; filtered watches still see
their own ADDED/DELETED translation."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from shoal.api.storage import ObjectStorage, WatchEvent
from shoal.resources.kinds import build_registry
from shoal.resources.registry import ResourceKind
from shoal.security.encryption import SecretBox
from shoal.store.sqlite import SqliteStore

_pods = build_registry().lookup("", "v1", "pods")
assert _pods is not None
PODS: ResourceKind = _pods


def pod(name: str, phase: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": phase}}


@contextlib.asynccontextmanager
async def storage(tmp_path: Path) -> AsyncIterator[ObjectStorage]:
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    try:
        objects = ObjectStorage(store, SecretBox.load_or_create(tmp_path))
        await objects.create(PODS, pod("seed", "Pending"))  # revision 0 would mean "from now"
        yield objects
    finally:
        await store.close()


async def aclose(stream: AsyncIterator[WatchEvent]) -> None:
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()


async def next_events(stream: AsyncIterator[WatchEvent], count: int) -> list[WatchEvent]:
    return [await anext(stream) for _ in range(count)]


async def test_watches_of_one_change_share_its_event(tmp_path: Path) -> None:
    async with storage(tmp_path) as objects:
        start = int(await objects.current_revision())
        first, second = objects.watch(PODS, "default", start), objects.watch(PODS, "default", start)
        created = await objects.create(PODS, pod("a", "Pending"))
        rv = int(created["metadata"]["resourceVersion"])
        created["status"] = {"phase": "Running"}
        await objects.update(PODS, created, rv)
        seen_first, seen_second = await next_events(first, 2), await next_events(second, 2)
        assert [e.type for e in seen_first] == ["ADDED", "MODIFIED"]
        for a, b in zip(seen_first, seen_second, strict=True):
            assert a is b  # one event (and one decoded object) for both watches
        assert seen_first[1].object["status"] == {"phase": "Running"}
        assert seen_first[1].object["metadata"]["resourceVersion"] == str(seen_first[1].revision)
        await aclose(first)
        await aclose(second)


async def test_a_filtered_watch_gets_its_own_event_type(tmp_path: Path) -> None:
    async with storage(tmp_path) as objects:
        start = int(await objects.current_revision())
        running = objects.watch(PODS, "default", start,
                                keep=lambda o: (o.get("status") or {}).get("phase") == "Running")
        everything = objects.watch(PODS, "default", start)
        created = await objects.create(PODS, pod("a", "Pending"))
        created["status"] = {"phase": "Running"}
        await objects.update(PODS, created, int(created["metadata"]["resourceVersion"]))
        plain = await next_events(everything, 2)
        (entered,) = await next_events(running, 1)
        assert entered.type == "ADDED" and plain[1].type == "MODIFIED"  # same change, two types
        assert entered.object is plain[1].object  # decoded once
        await aclose(running)
        await aclose(everything)
