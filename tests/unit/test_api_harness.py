"""The in-process API harness itself (:mod:`tests.support.api_harness`): what the fast tier rests on.

Covers: the bootstrap namespaces; the ASGI client and the real ApiClient reaching the same
store; a watch streamed through the in-process uvicorn server; :meth:`ApiHarness.caught_up`
returning once an informer reflects a write, and failing with the difference when it cannot;
and a clean close (every connection and the store closed, nothing left for the next test).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from shoal.client import resources
from shoal.client.informer import InformerFactory
from shoal.client.rest import ApiClient
from shoal.kube import errors
from tests.support.api_harness import ApiHarness, informers_running

NS = "default"


async def test_bootstrap_namespaces_and_both_clients_share_the_store(harness: ApiHarness,
                                                                     harness_client: ApiClient) -> None:
    listed = await harness_client.list(resources.NAMESPACES)
    assert sorted(ns["metadata"]["name"] for ns in listed["items"]) == [
        "default", "kube-node-lease", "kube-public", "kube-system"]
    created = await harness_client.create(resources.CONFIGMAPS, {"metadata": {"name": "cm", "namespace": NS}})
    seen = await harness.http.get(f"/api/v1/namespaces/{NS}/configmaps/cm")
    assert seen.status_code == 200 and seen.json()["metadata"]["uid"] == created["metadata"]["uid"]
    assert created["metadata"]["resourceVersion"] == str(await harness.revision())


async def test_a_watch_streams_through_the_in_process_server(harness: ApiHarness,
                                                             harness_client: ApiClient) -> None:
    version = (await harness_client.list(resources.CONFIGMAPS, NS))["metadata"]["resourceVersion"]
    stream = harness_client.watch(resources.CONFIGMAPS, NS, resource_version=version, allow_bookmarks=False)
    async with contextlib.aclosing(stream) as events:
        first = asyncio.ensure_future(anext(events))
        await harness_client.create(resources.CONFIGMAPS, {"metadata": {"name": "cm", "namespace": NS}})
        event = await asyncio.wait_for(first, 5)
    assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "cm")


async def test_caught_up_waits_for_the_informer_and_names_the_difference(harness: ApiHarness,
                                                                         harness_client: ApiClient) -> None:
    factory = InformerFactory(harness_client)
    informer = factory.informer(resources.CONFIGMAPS)
    async with informers_running(factory, informer):
        await harness_client.create(resources.CONFIGMAPS, {"metadata": {"name": "cm", "namespace": NS}})
        await harness.caught_up(informer)
        assert informer.get(f"{NS}/cm") is not None
    # Stopped: the informer can no longer see writes, and caught_up says so.
    await harness_client.create(resources.CONFIGMAPS, {"metadata": {"name": "late", "namespace": NS}})
    with pytest.raises(AssertionError, match=r"informer configmaps did not catch up within 0.2s"):
        await harness.caught_up(informer, within=0.2)


async def test_close_stops_the_server_and_the_store(tmp_path: Path) -> None:
    harness = await ApiHarness(tmp_path / "api").start()
    client = await harness.client()
    await client.list(resources.NAMESPACES)
    await harness.close()
    with pytest.raises(errors.ApiError, match="storage unavailable"):
        await harness.revision()
    again = await ApiHarness(tmp_path / "api").start()  # the same data dir opens again
    try:
        assert (await again.http.get(f"/api/v1/namespaces/{NS}")).status_code == 200
    finally:
        await again.close()
