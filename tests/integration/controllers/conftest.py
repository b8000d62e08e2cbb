"""Fixtures for the controller tests against a live API server.

The ``api_client`` fixture (an :class:`~shoal.client.rest.ApiClient` connected to a running
server) comes from ``tests/conftest.py``; helpers live in ``helpers.py`` beside this file.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient


@pytest.fixture
async def namespace(api_client: ApiClient) -> AsyncIterator[str]:
    """A new namespace, deleted (not awaited) after the test."""
    name = f"ctl-{uuid.uuid4().hex[:10]}"
    await api_client.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name}})
    yield name
    with contextlib.suppress(NotFoundError):
        await api_client.delete(resources.NAMESPACES, name)
