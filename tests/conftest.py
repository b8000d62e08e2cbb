"""Shared fixtures: a real ``shoal server`` process and an API client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shoal.client.rest import ApiClient
from tests.support.server import ShoalProcess, connected

_TIERS = {"unit": pytest.mark.unit, "integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier (the folder under tests/), so ``-m unit`` is the quick loop."""
    for item in items:
        parts = item.path.relative_to(item.config.rootpath).parts
        tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
        if tier in _TIERS:
            item.add_marker(_TIERS[tier])


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    """One server for the tests that only need *a* live API (each works in its own namespace)."""
    with ShoalProcess(tmp_path_factory.mktemp("shared") / "data") as server:
        yield server


@pytest.fixture
async def api_client(shared_server: ShoalProcess) -> AsyncIterator[ApiClient]:
    async with connected(shared_server) as client:
        yield client
