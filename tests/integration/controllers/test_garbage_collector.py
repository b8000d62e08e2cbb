"""The garbage collector against a live API server: background, foreground and orphan cascades."""

from __future__ import annotations

import uuid

import pytest

from shoal.client.resources import CONFIGMAPS, SECRETS
from shoal.client.rest import MERGE_PATCH, ApiClient
from tests.integration.controllers.helpers import configmap, deleted, eventually, gone, owner_ref, running

pytestmark = pytest.mark.e2e

GC = "garbage-collector"


async def test_dependants_of_a_deleted_owner_are_collected(api_client: ApiClient, namespace: str) -> None:
    owner = await api_client.create(CONFIGMAPS, configmap("owner", namespace))
    await api_client.create(CONFIGMAPS, configmap("child", namespace, owner))
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "child-secret", "namespace": namespace,
                           "ownerReferences": [owner_ref(owner)]},
              "stringData": {"a": "b"}}
    await api_client.create(SECRETS, secret)
    async with running(api_client, GC):
        await api_client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Background")
        await eventually(lambda: gone(api_client, CONFIGMAPS, "child", namespace), what="child collected")
        await eventually(lambda: gone(api_client, SECRETS, "child-secret", namespace),
                         what="secret collected")


async def test_an_object_whose_owner_never_existed_is_collected(api_client: ApiClient,
                                                                namespace: str) -> None:
    ghost = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "ghost", "uid": str(uuid.uuid4())}}
    async with running(api_client, GC):
        await api_client.create(CONFIGMAPS, configmap("orphaned", namespace, ghost))
        await eventually(lambda: gone(api_client, CONFIGMAPS, "orphaned", namespace),
                         what="dependant of a missing owner collected")


async def test_a_recreated_owner_with_a_new_uid_does_not_save_the_dependant(api_client: ApiClient,
                                                                            namespace: str) -> None:
    owner = await api_client.create(CONFIGMAPS, configmap("owner", namespace))
    await api_client.create(CONFIGMAPS, configmap("child", namespace, owner))
    await api_client.delete(CONFIGMAPS, "owner", namespace)
    await api_client.create(CONFIGMAPS, configmap("owner", namespace))  # same name, new uid
    async with running(api_client, GC):
        await eventually(lambda: gone(api_client, CONFIGMAPS, "child", namespace),
                         what="child of the old owner collected")
    assert not await gone(api_client, CONFIGMAPS, "owner", namespace), "the new owner is untouched"


async def test_only_the_dangling_reference_is_removed_while_another_owner_lives(
        api_client: ApiClient, namespace: str) -> None:
    first = await api_client.create(CONFIGMAPS, configmap("first", namespace))
    second = await api_client.create(CONFIGMAPS, configmap("second", namespace))
    await api_client.create(CONFIGMAPS, configmap("shared", namespace, first, second))
    async with running(api_client, GC):
        await api_client.delete(CONFIGMAPS, "first", namespace)

        async def only_second_left() -> bool:
            refs = (await api_client.get(CONFIGMAPS, "shared", namespace))["metadata"].get(
                "ownerReferences") or []
            return [ref["uid"] for ref in refs] == [second["metadata"]["uid"]]

        await eventually(only_second_left, what="the reference to the deleted owner removed")
        # The live owner keeps it: collect a dangling sibling as a barrier, then look again.
        ghost = {"metadata": {"name": "ghost", "uid": str(uuid.uuid4())}}
        await api_client.create(CONFIGMAPS, configmap("barrier", namespace, ghost))
        await eventually(lambda: gone(api_client, CONFIGMAPS, "barrier", namespace), what="barrier")
        assert not await gone(api_client, CONFIGMAPS, "shared", namespace)


async def test_foreground_deletion_removes_the_owner_only_after_its_dependants(
        api_client: ApiClient, namespace: str) -> None:
    owner = await api_client.create(CONFIGMAPS, configmap("owner", namespace))
    child = await api_client.create(CONFIGMAPS, configmap("child", namespace, owner))
    await api_client.create(CONFIGMAPS, configmap("grandchild", namespace, child,
                                                  finalizers=("shoal.test/hold",)))
    async with running(api_client, GC):
        await api_client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Foreground")

        async def cascade_reached_grandchild() -> bool:
            meta = (await api_client.get(CONFIGMAPS, "grandchild", namespace))["metadata"]
            return bool(meta.get("deletionTimestamp"))

        await eventually(cascade_reached_grandchild, what="the cascade to reach the grandchild")
        child_meta = (await api_client.get(CONFIGMAPS, "child", namespace))["metadata"]
        assert child_meta.get("deletionTimestamp")
        assert "foregroundDeletion" in child_meta.get("finalizers", []), "the cascade is foreground"
        owner_meta = (await api_client.get(CONFIGMAPS, "owner", namespace))["metadata"]
        assert owner_meta.get("deletionTimestamp"), "the owner waits for its dependants"
        assert "foregroundDeletion" in owner_meta.get("finalizers", [])

        await api_client.patch(CONFIGMAPS, "grandchild", {"metadata": {"finalizers": None}}, namespace,
                               content_type=MERGE_PATCH)
        for name in ("grandchild", "child", "owner"):
            await eventually(deleted(api_client, name, namespace), what=f"{name} deleted")


async def test_orphan_deletion_keeps_dependants_and_drops_their_reference(api_client: ApiClient,
                                                                          namespace: str) -> None:
    owner = await api_client.create(CONFIGMAPS, configmap("owner", namespace))
    other = await api_client.create(CONFIGMAPS, configmap("other", namespace))
    await api_client.create(CONFIGMAPS, configmap("child", namespace, owner))
    await api_client.create(CONFIGMAPS, configmap("co-owned", namespace, owner, other))
    async with running(api_client, GC):
        await api_client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Orphan")
        await eventually(lambda: gone(api_client, CONFIGMAPS, "owner", namespace), what="owner deleted")
        child = await api_client.get(CONFIGMAPS, "child", namespace)
        assert not child["metadata"].get("ownerReferences")
        co_owned = await api_client.get(CONFIGMAPS, "co-owned", namespace)
        refs = co_owned["metadata"].get("ownerReferences") or []
        assert [ref["uid"] for ref in refs] == [other["metadata"]["uid"]]
