"""Shared fixtures: a real ``shoal server`` process and an API client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shoal.client.rest import ApiClient
from tests.support.server import ShoalProcess, connected


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    """One server for the tests that only need *a* live API (each works in its own namespace)."""
    with ShoalProcess(tmp_path_factory.mktemp("shared") / "data") as server:
        yield server


@pytest.fixture
async def api_client(shared_server: ShoalProcess) -> AsyncIterator[ApiClient]:
    async with connected(shared_server) as client:
        yield client
