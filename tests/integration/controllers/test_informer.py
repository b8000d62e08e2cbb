"""The client and an informer against a live API server: typed errors, list + watch, handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.client import errors
from shoal.client.informer import EventHandler, Informer, object_key
from shoal.client.resources import CONFIGMAPS
from shoal.client.rest import JSON_PATCH, MERGE_PATCH, ApiClient
from tests.integration.controllers.helpers import configmap, eventually

pytestmark = pytest.mark.e2e


async def test_client_verbs_and_typed_errors(api_client: ApiClient, namespace: str) -> None:
    created = await api_client.create(CONFIGMAPS, configmap("a", namespace))
    assert created["metadata"]["uid"]
    with pytest.raises(errors.AlreadyExistsError) as exists:
        await api_client.create(CONFIGMAPS, configmap("a", namespace))
    assert exists.value.status["reason"] == "AlreadyExists"
    with pytest.raises(errors.NotFoundError):
        await api_client.get(CONFIGMAPS, "nope", namespace)

    stale = dict(created, data={"k": "v1"})
    updated = await api_client.update(CONFIGMAPS, stale)
    assert updated["data"] == {"k": "v1"}
    with pytest.raises(errors.ConflictError):
        await api_client.update(CONFIGMAPS, dict(created, data={"k": "lost update"}))

    patched = await api_client.patch(CONFIGMAPS, "a", {"data": {"m": "1"}}, namespace,
                                     content_type=MERGE_PATCH)
    assert patched["data"] == {"k": "v1", "m": "1"}
    patched = await api_client.patch(CONFIGMAPS, "a", [{"op": "remove", "path": "/data/m"}], namespace,
                                     content_type=JSON_PATCH)
    assert patched["data"] == {"k": "v1"}

    for index in range(5):
        await api_client.create(CONFIGMAPS, configmap(f"page-{index}", namespace))
    listed = await api_client.list(CONFIGMAPS, namespace, limit=2)  # follows continue tokens
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["a", *(f"page-{i}" for i in range(5))]
    assert listed["metadata"]["resourceVersion"]

    with pytest.raises(errors.ConflictError):
        await api_client.delete(CONFIGMAPS, "a", namespace, uid="not-the-uid")
    await api_client.delete(CONFIGMAPS, "a", namespace, uid=created["metadata"]["uid"])
    with pytest.raises(errors.NotFoundError):
        await api_client.get(CONFIGMAPS, "a", namespace)


async def test_informer_caches_and_reports_every_change(api_client: ApiClient, namespace: str) -> None:
    await api_client.create(CONFIGMAPS, configmap("before", namespace))
    seen: list[tuple[str, str]] = []

    def record(kind: str) -> Any:
        return lambda *objs: seen.append((kind, objs[-1]["metadata"]["name"]))

    informer = Informer(api_client, CONFIGMAPS, namespace=namespace)
    informer.add_event_handler(EventHandler(record("add"), record("update"), record("delete")))
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    try:
        await asyncio.wait_for(informer.wait_synced(), 10.0)
        assert seen == [("add", "before")]
        assert informer.get(f"{namespace}/before") is not None

        late = Informer(api_client, CONFIGMAPS, namespace=namespace)  # replay to late handlers
        late_seen: list[str] = []

        await api_client.create(CONFIGMAPS, configmap("during", namespace))
        await api_client.patch(CONFIGMAPS, "during", {"data": {"k": "changed"}}, namespace)
        await api_client.delete(CONFIGMAPS, "before", namespace)

        async def all_seen() -> bool:
            return seen[1:] == [("add", "during"), ("update", "during"), ("delete", "before")]

        await eventually(all_seen, what=f"watch events (seen {seen})")
        cached = informer.get(f"{namespace}/during")
        assert cached is not None and cached["data"] == {"k": "changed"}
        assert informer.get(f"{namespace}/before") is None
        assert [object_key(o) for o in informer.list()] == [f"{namespace}/during"]
        assert int(informer.resource_version) >= int(cached["metadata"]["resourceVersion"])

        late_stop = asyncio.Event()
        late_task = asyncio.create_task(late.run(late_stop))
        await asyncio.wait_for(late.wait_synced(), 10.0)
        late.add_event_handler(EventHandler(on_add=lambda obj: late_seen.append(obj["metadata"]["name"])))
        assert late_seen == ["during"]
        late_stop.set()
        await asyncio.wait_for(late_task, 5.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5.0)
