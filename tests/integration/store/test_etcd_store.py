"""etcd-only behaviour: endpoint fail-over, a broken watch stream, etcd going away."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.store import EtcdStore, EventType, StoreUnavailableError
from tests.support.etcd import EtcdProcess, free_port, start_etcd
from tests.support.store import take, watching
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

KEY = "/registry/configmaps/default/"


@pytest.fixture
def etcd(etcd_server: EtcdProcess) -> EtcdProcess:
    etcd_server.wipe()
    return etcd_server


async def test_dead_endpoints_are_skipped(etcd: EtcdProcess) -> None:
    dead = f"127.0.0.1:{free_port()}"
    store = EtcdStore([dead, etcd.endpoint, dead])
    await store.start()
    try:
        kv = await store.create(KEY + "a", b"1")
        assert await store.get(KEY + "a") == kv
        assert [e.value for e in (await store.list(KEY)).items] == [b"1"]
    finally:
        await store.close()


async def test_no_endpoint_answering_is_unavailable() -> None:
    store = EtcdStore([f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"], timeout=2.0)
    with pytest.raises(StoreUnavailableError):
        await store.start()


async def test_compacted_revision_is_found_by_a_fresh_client(etcd: EtcdProcess) -> None:
    writer = EtcdStore([etcd.endpoint])
    await writer.start()
    reader = EtcdStore([etcd.endpoint])
    await reader.start()
    try:
        for i in range(40):
            await writer.create(f"{KEY}{i}", b"")
        target = await writer.current_revision() - 7
        await writer.compact(target)
        assert await reader.compacted_revision() == target
    finally:
        await writer.close()
        await reader.close()


async def test_watch_resumes_on_the_next_endpoint_without_gap(etcd: EtcdProcess) -> None:
    async with TcpProxy(etcd.client_port) as proxy:
        store = EtcdStore([proxy.endpoint, etcd.endpoint])
        await store.start()
        try:
            start = (await store.create("/seed", b"")).mod_revision
            async with watching(store, KEY, start) as events:
                first = await store.create(KEY + "a", b"0")
                assert [e.revision for e in await take(events, 1)] == [first.mod_revision]
                proxy.cut()
                proxy.refuse()  # the stream breaks and the first endpoint is gone
                kv = first
                expected = []
                for i in range(1, 6):
                    kv = await store.update(KEY + "a", str(i).encode(), kv.mod_revision)
                    expected.append(kv.mod_revision)
                got = await take(events, 5)
                assert [e.revision for e in got] == expected
                assert {e.type for e in got} == {EventType.MODIFIED}
        finally:
            await store.close()


async def test_etcd_going_away_ends_the_watch_and_calls(tmp_path: Path) -> None:
    with start_etcd(tmp_path) as own:
        store = EtcdStore([own.endpoint], timeout=2.0)
        await store.start()
        try:
            start = (await store.create("/seed", b"")).mod_revision
            async with watching(store, KEY, start) as events:
                await store.create(KEY + "a", b"")
                await take(events, 1)
                own.kill()
                with pytest.raises(StoreUnavailableError):
                    await take(events, 1, within=10)
            with pytest.raises(StoreUnavailableError):
                await store.get(KEY + "a")
            with pytest.raises(StoreUnavailableError):
                await store.create(KEY + "b", b"")
        finally:
            await store.close()
