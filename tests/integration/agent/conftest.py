"""Fixtures for the node agent against a live API server.

One ``shoal server`` for the agent tests, with every built-in component off (``--disable
agent,proxy,controllers,scheduler``): the agent under test is the only one, and tests bind
their pods themselves through ``pods/binding``.  Each test works in its own namespace with its
own node name, so tests do not see each other's pods.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shoal.agent.runtime.process import ProcessDriver
from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from tests.integration.agent.helpers import purge
from tests.support.server import QUIET, ShoalProcess, connected


@pytest.fixture(scope="session")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    with ShoalProcess(tmp_path_factory.mktemp("agent-api") / "data", disable=QUIET) as server:
        yield server


@pytest.fixture
async def client(agent_server: ShoalProcess) -> AsyncIterator[ApiClient]:
    async with connected(agent_server) as api:
        yield api


@pytest.fixture
async def namespace(client: ApiClient) -> AsyncIterator[str]:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    await client.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    with contextlib.suppress(NotFoundError):
        await client.delete(resources.NAMESPACES, name)


@pytest.fixture
def node_name() -> str:
    return f"node-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[ProcessDriver]:
    """The process runtime (the podman tests build their own driver)."""
    runtime = ProcessDriver(tmp_path / "runtime")
    try:
        yield runtime
    finally:
        await purge(runtime)
