"""Fixtures for the scheduler against a live API server.

Each test gets its own ``shoal server`` with ``--disable agent,proxy,controllers,scheduler``
(Nodes are cluster-wide, so a shared server would mix its own node and other tests' nodes
into the counts, and its built-in scheduler would race the one under test), an
:class:`ApiClient` on it, and the three nodes of ``helpers.NODES`` registered through the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shoal.client.rest import ApiClient
from tests.integration.scheduler.helpers import NODES, register
from tests.support.server import QUIET, ShoalProcess, connected


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ShoalProcess]:
    with ShoalProcess(tmp_path / "data", disable=QUIET) as process:
        yield process


@pytest.fixture
async def client(server: ShoalProcess) -> AsyncIterator[ApiClient]:
    async with connected(server) as api:
        for obj in NODES:
            await register(api, obj)
        yield api
