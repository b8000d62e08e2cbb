"""Fixtures for the controller tests against a live API server.

The ``api_client`` fixture (an :class:`~shoal.client.rest.ApiClient` connected to the shared
running server) comes from ``tests/conftest.py``.  Tests that run controllers in-process use
``server`` (one quiet server per module: the server's own controllers, scheduler and agent
off), ``client`` and ``ns`` instead.  Helpers live in ``helpers.py`` and ``workloads.py``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from tests.integration.controllers import workloads
from tests.support.server import ShoalProcess, connected


@pytest.fixture
async def namespace(api_client: ApiClient) -> AsyncIterator[str]:
    """A new namespace, deleted (not awaited) after the test."""
    name = f"ctl-{uuid.uuid4().hex[:10]}"
    await api_client.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name}})
    yield name
    with contextlib.suppress(NotFoundError):
        await api_client.delete(resources.NAMESPACES, name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    yield from workloads.quiet_server(tmp_path_factory)


@pytest.fixture
async def client(server: ShoalProcess) -> AsyncIterator[ApiClient]:
    async with connected(server) as client:
        yield client


@pytest.fixture
async def ns(client: ApiClient) -> str:
    return await workloads.new_namespace(client)
