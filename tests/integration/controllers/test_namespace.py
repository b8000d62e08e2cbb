"""The namespace lifecycle controller against a live API server."""

from __future__ import annotations

import pytest

from shoal.client.resources import CONFIGMAPS, NAMESPACES, SECRETS, SERVICEACCOUNTS
from shoal.client.rest import MERGE_PATCH, ApiClient
from tests.integration.controllers.helpers import configmap, deleted, eventually, gone, running

pytestmark = pytest.mark.e2e

NS = "namespace"


async def fill(client: ApiClient, namespace: str) -> None:
    for index in range(3):
        await client.create(CONFIGMAPS, configmap(f"cm-{index}", namespace))
    await client.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                  "metadata": {"name": "s", "namespace": namespace},
                                  "stringData": {"a": "b"}})
    await client.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": "robot", "namespace": namespace}})


async def test_a_deleted_namespace_is_emptied_then_removed(api_client: ApiClient, namespace: str) -> None:
    await fill(api_client, namespace)
    async with running(api_client, NS):
        await api_client.delete(NAMESPACES, namespace)
        await eventually(deleted(api_client, namespace, "", NAMESPACES), what="namespace removed")
    for ref in (CONFIGMAPS, SECRETS, SERVICEACCOUNTS):
        assert (await api_client.list(ref, namespace))["items"] == [], f"{ref.resource} left behind"


async def test_content_with_finalizers_holds_the_namespace_until_released(api_client: ApiClient,
                                                                          namespace: str) -> None:
    await fill(api_client, namespace)
    await api_client.create(CONFIGMAPS, configmap("held", namespace, finalizers=("shoal.test/hold",)))
    async with running(api_client, NS):
        await api_client.delete(NAMESPACES, namespace)

        async def only_the_held_one_left() -> bool:
            names = [cm["metadata"]["name"] for cm in (await api_client.list(CONFIGMAPS, namespace))["items"]]
            others = (await api_client.list(SECRETS, namespace))["items"]
            return names == ["held"] and not others

        await eventually(only_the_held_one_left, what="everything but the held object deleted")
        ns = await api_client.get(NAMESPACES, namespace)
        assert ns["status"]["phase"] == "Terminating"
        assert "kubernetes" in ns["spec"]["finalizers"], "not finalized while content remains"

        async def reported() -> bool:
            conditions = (await api_client.get(NAMESPACES, namespace)).get("status", {}).get("conditions")
            by_type = {c["type"]: c for c in conditions or []}
            held = by_type.get("NamespaceFinalizersRemaining", {})
            return held.get("status") == "True" and "shoal.test/hold in 1" in held.get("message", "")

        await eventually(reported, what="the NamespaceFinalizersRemaining condition")

        await api_client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, namespace,
                               content_type=MERGE_PATCH)
        await eventually(deleted(api_client, namespace, "", NAMESPACES), what="namespace removed")


async def test_a_live_namespace_is_left_alone(api_client: ApiClient, namespace: str) -> None:
    await fill(api_client, namespace)
    doomed = f"{namespace}-x"
    await api_client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": doomed}})
    async with running(api_client, NS):
        # A second namespace's deletion completing is the barrier: the controller has had its chance.
        await api_client.delete(NAMESPACES, doomed)
        await eventually(deleted(api_client, doomed, "", NAMESPACES), what="the other namespace removed")
    assert not await gone(api_client, NAMESPACES, namespace, None)
    assert len((await api_client.list(CONFIGMAPS, namespace))["items"]) == 3
