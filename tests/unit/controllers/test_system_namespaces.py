"""The system-namespaces controller against the real in-process API, and what recovers with it.

Issue 8 item 8: a deleted ``kube-node-lease`` (the one system namespace the API lets go) or a
system namespace lost outside the API is created again within seconds; the node agent's
heartbeat Lease comes back in it; leader election, whose Lease lives in ``kube-system``, leads
again once ``kube-system`` is back.  Pass-by-pass tests use the rig's fake clocks; the recovery
tests run real workers, the real namespace controller, the agent's real
:class:`~shoal.agent.lease.LeaseRenewer` and a real :class:`~shoal.client.leaderelection.LeaseLeadership`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from shoal.agent.lease import NODE_LEASE_NAMESPACE, LeaseRenewer
from shoal.client import resources
from shoal.client.controller import Controller
from shoal.client.errors import NotFoundError
from shoal.client.informer import InformerFactory
from shoal.client.leaderelection import LeaseLeadership
from shoal.client.rest import ApiClient
from shoal.controllers.manager import CONTROLLERS, LEASE_NAME, UNELECTED, ControllerManager
from shoal.controllers.namespace import NamespaceController
from shoal.controllers.system_namespaces import RESYNC_SECONDS, SYSTEM_NAMESPACES, SystemNamespacesController
from shoal.kube.clock import MonotonicClock
from shoal.kube.objects import Obj
from tests.support import wait
from tests.support.api_harness import ApiHarness
from tests.support.reconciling import Rig


async def namespace(client: ApiClient, name: str) -> Obj | None:
    try:
        found: Obj = await client.get(resources.NAMESPACES, name)
    except NotFoundError:
        return None
    return found


async def lose(harness: ApiHarness, plural: str, namespace_name: str, name: str, group: str = "",
               version: str = "v1") -> None:
    """Remove an object from the store behind the API's back (a restored backup, a hand-edited etcd)."""
    kind = harness.kind(plural, group, version)
    stored = await harness.storage.get(kind, namespace_name, name)
    await harness.storage.remove(kind, stored)


@contextlib.asynccontextmanager
async def working(client: ApiClient, *controllers: Controller, factory: InformerFactory) -> AsyncIterator[None]:
    """Run the informers and workers of ``controllers`` until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(factory.run(stop))]
    tasks += [asyncio.create_task(c.run(stop, 1)) for c in controllers]
    try:
        await wait.eventually(lambda: all(i.has_synced for c in controllers for i in c.informers),
                              within=5.0, what="the caches to sync")
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10.0)


async def test_each_pass_creates_what_is_missing_and_checks_again_later(rig: Rig) -> None:
    """Issue 8 item 8: reconcile creates a missing system namespace and always requeues (resync)."""
    controller = SystemNamespacesController(rig.client, rig.informers, clock=rig.clock)
    assert len(controller.queue) == len(SYSTEM_NAMESPACES), "every name starts queued"
    async with rig.running(controller):
        for name in SYSTEM_NAMESPACES:
            assert await rig.reconcile(controller, name) == RESYNC_SECONDS
        assert controller.created == 0

        before = await namespace(rig.client, "kube-public")
        assert before is not None
        await lose(rig.harness, "namespaces", "", "kube-public")
        assert await rig.reconcile(controller, "kube-public") == RESYNC_SECONDS
        after = await namespace(rig.client, "kube-public")
        assert after is not None and after["metadata"]["uid"] != before["metadata"]["uid"]
        assert after["status"]["phase"] == "Active" and controller.created == 1

        # Terminating (the namespace controller is not running here): left alone until gone.
        await rig.client.delete(resources.NAMESPACES, NODE_LEASE_NAMESPACE)
        assert await rig.reconcile(controller, NODE_LEASE_NAMESPACE) == RESYNC_SECONDS
        terminating = await namespace(rig.client, NODE_LEASE_NAMESPACE)
        assert terminating is not None and terminating["status"]["phase"] == "Terminating"
        assert controller.created == 1

        assert await rig.reconcile(controller, "team-a") is None  # not a system namespace: nothing
        assert await namespace(rig.client, "team-a") is None


async def test_deleted_kube_node_lease_and_the_node_lease_come_back_within_seconds(harness: ApiHarness) -> None:
    """Issue 8 item 8: kubectl delete ns kube-node-lease, with the namespace controller, the
    system-namespaces controller and a node's LeaseRenewer running: namespace and Lease are back."""
    client = await harness.client(user_agent="recovery-test")
    factory = InformerFactory(client)
    namespaces = NamespaceController(client, factory)
    system = SystemNamespacesController(client, factory)
    renewer = LeaseRenewer(client, "node-1", duration=4, clock=MonotonicClock(), node_uid=lambda: "")
    stop = asyncio.Event()
    heartbeat = asyncio.create_task(renewer.run(stop))
    try:
        async with working(client, namespaces, system, factory=factory):
            first = await wait.eventually(lambda: _lease(client, "node-1"), within=5.0, what="the node lease")
            old = await namespace(client, NODE_LEASE_NAMESPACE)
            assert old is not None
            old_uid = old["metadata"]["uid"]
            began = time.monotonic()
            await client.delete(resources.NAMESPACES, NODE_LEASE_NAMESPACE)

            async def recreated() -> Obj | None:
                ns = await namespace(client, NODE_LEASE_NAMESPACE)
                if ns is None or ns["metadata"]["uid"] == old_uid or ns["status"]["phase"] != "Active":
                    return None
                return ns

            await wait.eventually(recreated, within=10.0, what="kube-node-lease to be created again")
            took_ns = time.monotonic() - began

            async def lease_again() -> Obj | None:
                lease = await _lease(client, "node-1")
                return lease if lease is not None and lease["metadata"]["uid"] != first["metadata"]["uid"] else None

            again = await wait.eventually(lease_again, within=10.0, what="the node lease to be created again")
            took_lease = time.monotonic() - began
            assert again["spec"]["holderIdentity"] == "node-1"
            assert system.created == 1
            assert took_ns < 5.0 and took_lease < 8.0, (took_ns, took_lease)
            renewed = renewer.renewals
            await wait.eventually(lambda: renewer.renewals > renewed + 1, within=5.0, what="renewals to go on")
    finally:
        stop.set()
        await asyncio.wait_for(heartbeat, 5.0)


async def _lease(client: ApiClient, name: str, namespace_name: str = NODE_LEASE_NAMESPACE) -> Obj | None:
    try:
        found: Obj = await client.get(resources.LEASES, name, namespace_name)
    except NotFoundError:
        return None
    return found


async def test_leader_election_leads_again_once_kube_system_is_back(harness: ApiHarness) -> None:
    """Issue 8 item 8: kube-system and the manager's Lease lost outside the API: the elected
    controllers stop (the Lease cannot be created in a missing namespace), then the unelected
    system-namespaces controller brings kube-system back and the manager leads again."""
    client = await harness.client(user_agent="election-test")
    leadership = LeaseLeadership(client, LEASE_NAME, "me", lease_duration=3, renew_deadline=2.0, retry_period=0.3)
    manager = ControllerManager(client, controllers={"nodeipam": CONTROLLERS["nodeipam"]}, leadership=leadership)
    stop = asyncio.Event()
    running = asyncio.create_task(manager.run(stop))
    try:
        await wait.eventually(lambda: manager.controllers, within=5.0, what="the first term")
        await lose(harness, "leases", "kube-system", LEASE_NAME, "coordination.k8s.io")
        await lose(harness, "namespaces", "", "kube-system")
        await wait.eventually(lambda: not manager.controllers, within=5.0, what="the term to end")
        await asyncio.sleep(1.0)
        assert not manager.controllers and await namespace(client, "kube-system") is None, \
            "without the system-namespaces controller nothing recovers"
        terms = leadership.terms

        factory = InformerFactory(client)
        system = SystemNamespacesController(client, factory)
        async with working(client, system, factory=factory):
            began = time.monotonic()
            await wait.eventually(lambda: manager.controllers, within=10.0, what="the manager to lead again")
            took = time.monotonic() - began
        assert leadership.terms == terms + 1 and took < 5.0, took
        assert await namespace(client, "kube-system") is not None
        lease = await _lease(client, LEASE_NAME, "kube-system")
        assert lease is not None and lease["spec"]["holderIdentity"] == "me"
    finally:
        stop.set()
        await asyncio.wait_for(running, 10.0)



async def test_a_standard_manager_runs_it_outside_leader_election(harness: ApiHarness) -> None:
    """Issue 8 item 8: ``shoal server``'s manager (the standard tables, Lease election) runs the
    system-namespaces controller next to the elected ones; a lost kube-public comes back."""
    assert set(UNELECTED) == {"system-namespaces"} and "system-namespaces" not in CONTROLLERS
    client = await harness.client(user_agent="manager-test")
    manager = ControllerManager(client, identity="me")
    stop = asyncio.Event()
    running = asyncio.create_task(manager.run(stop))
    try:
        await wait.eventually(lambda: manager.unelected and manager.controllers, within=5.0,
                              what="both kinds of controllers")
        assert [c.name for c in manager.unelected] == ["system-namespaces"]
        await wait.eventually(lambda: all(i.has_synced for c in manager.unelected for i in c.informers),
                              within=5.0, what="the caches to sync")
        await lose(harness, "namespaces", "", "kube-public")
        await wait.eventually(lambda: namespace(client, "kube-public"), within=5.0, what="kube-public again")
    finally:
        stop.set()
        await asyncio.wait_for(running, 10.0)
    assert manager.unelected == [] and manager.controllers == []
    with_disabled = ControllerManager(client, identity="me", disabled={"system-namespaces"})
    assert with_disabled.disabled == {"system-namespaces"}
