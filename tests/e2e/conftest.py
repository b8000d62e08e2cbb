from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.server import ShoalProcess


@pytest.fixture(scope="session", autouse=True)
def _require_kubectl() -> None:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is required for the end-to-end tests (not skipping)")


@pytest.fixture(scope="module")
def shoal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    base: Path = tmp_path_factory.mktemp("shoal")
    server = ShoalProcess(base / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
