from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd import start_etcd
from tests.support.server import ShoalProcess


@pytest.fixture(scope="session", autouse=True)
def _require_kubectl() -> None:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is required for the end-to-end tests (not skipping)")


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def shoal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    """A real server per test module, once on embedded SQLite and once on a real etcd."""
    base: Path = tmp_path_factory.mktemp(f"shoal-{request.param}")
    if request.param == "sqlite":
        with ShoalProcess(base / "data") as server:
            yield server
        return
    with start_etcd(base) as etcd, ShoalProcess(base / "data", datastore=etcd.url) as server:
        yield server
