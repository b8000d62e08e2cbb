"""Fixtures of the store conformance suite: each test runs on SQLite and on a real etcd.

The etcd member is started once per session (about 1 s) and wiped before each test; its
revisions and compaction carry over between tests, so tests only compare revisions they
obtained themselves.  A missing etcd makes the etcd half of the suite error, never skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from shoal.store import EtcdStore, SqliteStore, Store
from tests.support.etcd import EtcdProcess, start_etcd

StoreFactory = Callable[[], Store]


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    etcd = start_etcd(tmp_path_factory.mktemp("etcd"))
    try:
        yield etcd
    finally:
        etcd.stop()


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds an unstarted store on this test's backend; every call sees the same data."""
    if backend == "sqlite":
        return lambda: SqliteStore(tmp_path / "state.db")
    etcd: EtcdProcess = request.getfixturevalue("etcd_server")
    etcd.wipe()
    return lambda: EtcdStore([etcd.endpoint])


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.start()
    try:
        yield s
    finally:
        await s.close()
