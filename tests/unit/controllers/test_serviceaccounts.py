"""The ServiceAccount controller against the real in-process API.

Issue 8 item 19: every active namespace gets a ``default`` ServiceAccount (Kubernetes' body:
name and namespace only), it comes back when deleted, and nothing is created in a namespace
that is being deleted.  Pass-by-pass on the rig, then with real workers in the standard
controller manager, as ``shoal server`` runs it.
"""

from __future__ import annotations

import asyncio

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from shoal.controllers.manager import CONTROLLERS, ControllerManager
from shoal.controllers.serviceaccounts import DEFAULT_SERVICE_ACCOUNTS, ServiceAccountController
from shoal.kube.objects import Obj
from tests.support import wait
from tests.support.api_harness import ApiHarness
from tests.support.reconciling import Rig


async def account(client: ApiClient, namespace: str, name: str = "default") -> Obj | None:
    try:
        found: Obj = await client.get(resources.SERVICEACCOUNTS, name, namespace)
    except NotFoundError:
        return None
    return found


async def test_each_active_namespace_gets_a_default_service_account(rig: Rig) -> None:
    """Issue 8 item 19: reconcile(namespace) creates ``default`` once; deleted, it is made again."""
    assert DEFAULT_SERVICE_ACCOUNTS == ("default",)
    controller = ServiceAccountController(rig.client, rig.informers, clock=rig.clock)
    await rig.harness.create_namespace("team")
    async with rig.running(controller):
        assert len(controller.queue) >= 5, "every namespace is enqueued by the informer's first list"
        for name in ("default", "kube-system", "kube-public", "kube-node-lease", "team"):
            assert await rig.reconcile(controller, name) is None
            sa = await account(rig.client, name)
            assert sa is not None and sa["kind"] == "ServiceAccount" and sa["metadata"]["namespace"] == name
            assert set(sa) <= {"apiVersion", "kind", "metadata"}, "Kubernetes' body: no secrets, no token"
        assert controller.created == 5
        assert await rig.reconcile(controller, "team") is None
        assert controller.created == 5, "an existing one is left alone"

        first = await account(rig.client, "team")
        assert first is not None
        while len(controller.queue):  # what the informers' first list enqueued
            controller.queue.done(await controller.queue.get())
        await rig.client.delete(resources.SERVICEACCOUNTS, "default", "team")
        await rig.settle()
        assert len(controller.queue) == 1 and await controller.queue.get() == "team", \
            "the deletion enqueued its namespace"
        controller.queue.done("team")
        assert await rig.reconcile(controller, "team") is None
        again = await account(rig.client, "team")
        assert again is not None and again["metadata"]["uid"] != first["metadata"]["uid"]

        # Other ServiceAccounts are not touched.
        await rig.client.create(resources.SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                            "metadata": {"name": "robot", "namespace": "team"}})
        await rig.client.delete(resources.SERVICEACCOUNTS, "robot", "team")
        assert await rig.reconcile(controller, "team") is None
        assert await account(rig.client, "team", "robot") is None


async def test_nothing_is_created_in_a_namespace_being_deleted_or_gone(rig: Rig) -> None:
    """Issue 8 item 19: as Kubernetes, only an Active namespace gets one."""
    controller = ServiceAccountController(rig.client, rig.informers, clock=rig.clock)
    await rig.harness.create_namespace("doomed")
    await rig.client.create(resources.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "keep", "namespace": "doomed"}})
    async with rig.running(controller):
        await rig.client.delete(resources.NAMESPACES, "doomed")  # Terminating: no namespace controller here
        assert await rig.reconcile(controller, "doomed") is None
        assert await account(rig.client, "doomed") is None
        assert await rig.reconcile(controller, "never-was") is None
        assert controller.created == 0


async def test_the_standard_manager_runs_it(harness: ApiHarness) -> None:
    """Issue 8 item 19: registered in CONTROLLERS; with real workers a new namespace has its
    ``default`` ServiceAccount within seconds, and a deleted one is back within seconds."""
    assert "serviceaccount" in CONTROLLERS
    client = await harness.client(user_agent="manager-test")
    manager = ControllerManager(client, identity="me")
    stop = asyncio.Event()
    running = asyncio.create_task(manager.run(stop))
    try:
        await wait.eventually(lambda: "serviceaccount" in [c.name for c in manager.controllers], within=5.0,
                              what="the serviceaccount controller")
        await wait.eventually(lambda: account(client, "default"), within=5.0, what="default/default")
        await harness.create_namespace("fresh")
        first = await wait.eventually(lambda: account(client, "fresh"), within=5.0, what="fresh/default")
        await client.delete(resources.SERVICEACCOUNTS, "default", "fresh")

        async def replaced() -> Obj | None:
            sa = await account(client, "fresh")
            return sa if sa is not None and sa["metadata"]["uid"] != first["metadata"]["uid"] else None

        await wait.eventually(replaced, within=5.0, what="fresh/default again")
        # Deleting the namespace is not held up by it (the namespace controller empties it; nothing is re-made).
        await client.delete(resources.NAMESPACES, "fresh")

        async def gone() -> bool:
            try:
                await client.get(resources.NAMESPACES, "fresh")
            except NotFoundError:
                return True
            return False

        await wait.eventually(gone, within=10.0, what="namespace fresh to go")
    finally:
        stop.set()
        await asyncio.wait_for(running, 10.0)
