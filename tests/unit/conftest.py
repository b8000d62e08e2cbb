"""Fixtures for the fast tier: the in-process API harness (:mod:`tests.support.api_harness`).

* ``harness`` - an :class:`~tests.support.api_harness.ApiHarness`: the real API server on a
  real SQLite store in ``tmp_path``, with ``harness.http`` (httpx over ASGI, admin token).
* ``harness_client`` - a real :class:`~shoal.client.rest.ApiClient` on that harness (uvicorn
  on 127.0.0.1, plain HTTP), for controllers and informers.
* ``rig`` - a :class:`~tests.support.reconciling.Rig` on that harness: client, informer
  factory, fake clocks, for driving controllers' ``reconcile`` pass by pass.

All are torn down (server stopped, clients and store closed) after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.client.rest import ApiClient
from tests.support.api_harness import ApiHarness
from tests.support.reconciling import Rig


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with ApiHarness(tmp_path / "api") as api:
        yield api


@pytest.fixture
async def harness_client(harness: ApiHarness) -> ApiClient:
    return await harness.client()


@pytest.fixture
async def rig(harness: ApiHarness) -> Rig:
    return await Rig.create(harness)
