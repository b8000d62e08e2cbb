"""The EndpointSlice controller's ``reconcile`` against the real in-process API (no workers).

Issue 9 item 1: ready / not-ready / terminating transitions as Kubernetes sets the conditions
(terminating pods stay, for the proxies to drain), named targetPorts resolved per pod and a
missing name reported by a Warning Event, publishNotReadyAddresses, headless Services,
selectorless Services left to their users, no write on a pass that changes nothing, the slices
of a deleted Service garbage-collected; and, with real workers in the standard manager, a pod
turning not-ready shows in its slice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from shoal.client import resources
from shoal.client.controller import RequeueAfter
from shoal.controllers.endpointslice import PORT_NOT_FOUND, EndpointSliceController
from shoal.controllers.garbage_collector import GarbageCollector
from shoal.controllers.manager import CONTROLLERS, ControllerManager
from shoal.controllers.podendpoints import TRIGGER_TIME_ANNOTATION
from shoal.controllers.slicing import CONTROLLER_NAME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from shoal.kube.objects import Obj
from tests.support import wait
from tests.support.api_harness import ApiHarness
from tests.support.endpoints import create_node, create_pod, service_body, set_pod_status
from tests.support.reconciling import Rig

NS = "default"
KEY = f"{NS}/web"


@pytest.fixture
def controller(rig: Rig) -> EndpointSliceController:
    return EndpointSliceController(rig.client, rig.informers, clock=rig.clock, wall=rig.wall)


async def slices(rig: Rig, service: str = "web") -> list[Obj]:
    found: list[Obj] = (await rig.client.list(resources.ENDPOINTSLICES, NS,
                                              label_selector=f"{SERVICE_NAME_LABEL}={service}"))["items"]
    return found


def by_pod(slice_list: list[Obj]) -> dict[str, Obj]:
    return {e["targetRef"]["name"]: e for s in slice_list for e in s.get("endpoints") or []}


async def test_ready_not_ready_and_terminating_transitions(rig: Rig, controller: EndpointSliceController) -> None:
    await create_node(rig.client, zone="zone-a")
    svc = await rig.client.create(resources.SERVICES, service_body(selector={"app": "web"},
                                                                   labels={"tier": "front"}))
    a = await create_pod(rig.client, "a", ip="10.42.0.10")
    b = await create_pod(rig.client, "b", ip="10.42.0.11", ready=False)
    await create_pod(rig.client, "c")  # no IP yet: not an endpoint
    await create_pod(rig.client, "other", ip="10.42.0.12", labels={"app": "db"})
    async with rig.running(controller):
        assert await rig.reconcile(controller, KEY) is None
        [made] = await slices(rig)
        meta = made["metadata"]
        assert meta["name"].startswith("web-") and meta["generateName"] == "web-"
        assert meta["labels"] == {"tier": "front", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: CONTROLLER_NAME}
        assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                            "uid": svc["metadata"]["uid"], "controller": True,
                                            "blockOwnerDeletion": True}]
        assert TRIGGER_TIME_ANNOTATION in meta["annotations"]
        assert made["addressType"] == "IPv4"
        assert made["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert by_pod([made]) == {
            "a": {"addresses": ["10.42.0.10"], "conditions": {"ready": True, "serving": True, "terminating": False},
                  "targetRef": {"kind": "Pod", "namespace": NS, "name": "a", "uid": a["metadata"]["uid"]},
                  "nodeName": "node-1", "zone": "zone-a"},
            "b": {"addresses": ["10.42.0.11"], "conditions": {"ready": False, "serving": False, "terminating": False},
                  "targetRef": {"kind": "Pod", "namespace": NS, "name": "b", "uid": b["metadata"]["uid"]},
                  "nodeName": "node-1", "zone": "zone-a"}}

        # b turns ready, a turns not ready: one update of the same slice.
        await set_pod_status(rig.client, b, ip="10.42.0.11", ready=True)
        await set_pod_status(rig.client, a, ip="10.42.0.10", ready=False)
        await rig.reconcile(controller, KEY)
        [again] = await slices(rig)
        assert again["metadata"]["name"] == meta["name"], "updated in place"
        conds = {name: e["conditions"] for name, e in by_pod([again]).items()}
        assert conds == {"a": {"ready": False, "serving": False, "terminating": False},
                         "b": {"ready": True, "serving": True, "terminating": False}}

        # b is deleted (graceful: it is bound to a node): it stays, terminating, still serving.
        await rig.client.delete(resources.PODS, "b", NS)
        await rig.reconcile(controller, KEY)
        [draining] = await slices(rig)
        assert by_pod([draining])["b"]["conditions"] == {"ready": False, "serving": True, "terminating": True}

        # Gone for good: it leaves the slice.
        await rig.client.delete(resources.PODS, "b", NS, grace_period_seconds=0)
        await rig.reconcile(controller, KEY)
        [after] = await slices(rig)
        assert sorted(by_pod([after])) == ["a"] and after["metadata"]["name"] == meta["name"]


async def test_a_pass_that_changes_nothing_writes_nothing(rig: Rig, controller: EndpointSliceController,
                                                          harness: ApiHarness) -> None:
    await create_node(rig.client)
    await rig.client.create(resources.SERVICES, service_body(selector={"app": "web"}))
    for i in range(3):
        await create_pod(rig.client, f"p{i}", ip=f"10.42.0.{20 + i}")
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        writes, revision = controller.writes, await harness.revision()
        assert writes == 1
        for _ in range(3):
            await rig.reconcile(controller, KEY)
        # A pod update that cannot change an endpoint (an annotation) enqueues nothing and writes nothing.
        await rig.client.patch(resources.PODS, "p0", {"metadata": {"annotations": {"note": "x"}}}, NS)
        revision = await harness.revision()
        while len(controller.queue):
            controller.queue.done(await controller.queue.get())
        await rig.settle()
        assert len(controller.queue) == 0, "an irrelevant pod change enqueues nothing"
        await rig.reconcile(controller, KEY)
        assert controller.writes == writes and await harness.revision() == revision


async def test_named_ports_are_resolved_per_pod_and_a_missing_name_is_reported(
        rig: Rig, controller: EndpointSliceController) -> None:
    await create_node(rig.client)
    await rig.client.create(resources.SERVICES, service_body(
        selector={"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": "web", "appProtocol": "http"}]))
    await create_pod(rig.client, "a", ip="10.42.0.30", ports=[{"name": "web", "containerPort": 8080}])
    await create_pod(rig.client, "b", ip="10.42.0.31", ports=[{"name": "web", "containerPort": 8080}])
    await create_pod(rig.client, "c", ip="10.42.0.32", ports=[{"name": "web", "containerPort": 9090}])
    await create_pod(rig.client, "d", ip="10.42.0.33", ports=[{"name": "admin", "containerPort": 7000}])
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        found = {tuple((p["port"], p.get("appProtocol")) for p in s["ports"]): sorted(by_pod([s]))
                 for s in await slices(rig)}
        assert found == {((8080, "http"),): ["a", "b"], ((9090, "http"),): ["c"], (): ["d"]}, \
            "pods resolving the port differently are in different slices; d has no port for it"
        events = await rig.events(NS, PORT_NOT_FOUND)
        assert len(events) == 1 and events[0]["type"] == "Warning"
        assert events[0]["involvedObject"]["kind"] == "Service" and events[0]["involvedObject"]["name"] == "web"
        assert "Pod d" in events[0]["message"] and '"web"' in events[0]["message"]
        await rig.reconcile(controller, KEY)
        assert [e.get("count") for e in await rig.events(NS, PORT_NOT_FOUND)] == [1], "reported once"


async def test_publish_not_ready_addresses_and_headless(rig: Rig, controller: EndpointSliceController) -> None:
    await create_node(rig.client)
    await rig.client.create(resources.SERVICES, service_body(
        "tolerant", selector={"app": "web"}, publishNotReadyAddresses=True))
    await rig.client.create(resources.SERVICES, service_body(
        "sub", selector={"app": "web"}, clusterIP="None", ports=[]))
    await create_pod(rig.client, "a", ip="10.42.0.40", ready=False, hostname="a", subdomain="sub")
    async with rig.running(controller):
        await rig.reconcile(controller, f"{NS}/tolerant")
        [tolerant] = await slices(rig, "tolerant")
        assert by_pod([tolerant])["a"]["conditions"] == {"ready": True, "serving": False, "terminating": False}
        assert "hostname" not in by_pod([tolerant])["a"]
        await rig.reconcile(controller, f"{NS}/sub")
        [headless] = await slices(rig, "sub")
        assert headless["ports"] == [] and headless["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
        assert by_pod([headless])["a"]["hostname"] == "a"
        assert by_pod([headless])["a"]["conditions"]["ready"] is False


async def test_selectorless_services_are_left_to_their_users(rig: Rig, controller: EndpointSliceController,
                                                             harness: ApiHarness) -> None:
    await rig.client.create(resources.SERVICES, service_body("external"))
    mine = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "external-1", "namespace": NS, "labels": {SERVICE_NAME_LABEL: "external"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    await rig.client.create(resources.ENDPOINTSLICES, mine)
    await rig.client.create(resources.SERVICES, service_body("named", type="ExternalName",
                                                             externalName="example.com", ports=[]))
    async with rig.running(controller):
        revision = await harness.revision()
        await rig.reconcile(controller, f"{NS}/external")
        await rig.reconcile(controller, f"{NS}/named")
        assert await harness.revision() == revision and controller.writes == 0
        [kept] = await slices(rig, "external")
        assert kept["endpoints"] == mine["endpoints"]


async def test_an_empty_service_has_one_placeholder_and_deleted_services_lose_their_slices(
        rig: Rig, controller: EndpointSliceController) -> None:
    collector = GarbageCollector(rig.client, rig.informers, clock=rig.clock)
    await create_node(rig.client)
    await rig.client.create(resources.SERVICES, service_body(selector={"app": "web"}))
    async with rig.running(controller, collector):
        await rig.reconcile(controller, KEY)
        [placeholder] = await slices(rig)
        assert placeholder["endpoints"] == [] and placeholder["ports"] == []
        pod = await create_pod(rig.client, "a", ip="10.42.0.50")
        await rig.reconcile(controller, KEY)
        [filled] = await slices(rig)
        assert filled["metadata"]["name"] == placeholder["metadata"]["name"] and sorted(by_pod([filled])) == ["a"]
        await rig.client.delete(resources.PODS, pod["metadata"]["name"], NS, grace_period_seconds=0)
        await rig.reconcile(controller, KEY)
        [empty] = await slices(rig)
        assert empty["metadata"]["name"] == placeholder["metadata"]["name"] and empty["endpoints"] == []

        await rig.client.delete(resources.SERVICES, "web", NS)
        await rig.reconcile(controller, KEY)
        assert len(collector.queue) > 0, "the Service's deletion enqueued its dependants"
        await rig.reconcile(collector, f"endpointslices.discovery.k8s.io/{NS}/{filled['metadata']['name']}")
        assert await slices(rig) == [], "the garbage collector deleted the dependant slice"


async def test_more_than_a_slice_full(rig: Rig) -> None:
    controller = EndpointSliceController(rig.client, rig.informers, clock=rig.clock, wall=rig.wall, max_per_slice=2)
    await create_node(rig.client)
    await rig.client.create(resources.SERVICES, service_body(selector={"app": "web"}))
    for i in range(5):
        await create_pod(rig.client, f"p{i}", ip=f"10.42.0.{60 + i}")
    async with rig.running(controller):
        await rig.reconcile(controller, KEY)
        assert sorted(len(s["endpoints"]) for s in await slices(rig)) == [1, 2, 2]
        await create_pod(rig.client, "p5", ip="10.42.0.65")
        await rig.reconcile(controller, KEY)
        # At once, before the caches have seen those writes: the pass must not create duplicates.
        with contextlib.suppress(RequeueAfter):
            await controller.reconcile(KEY)
        await rig.reconcile(controller, KEY)
        assert sorted(len(s["endpoints"]) for s in await slices(rig)) == [2, 2, 2]
        await create_pod(rig.client, "p6", ip="10.42.0.66")
        await rig.reconcile(controller, KEY)
        with contextlib.suppress(RequeueAfter):
            await controller.reconcile(KEY)
        await rig.reconcile(controller, KEY)
        assert sorted(len(s["endpoints"]) for s in await slices(rig)) == [1, 2, 2, 2]


async def test_the_standard_manager_shows_a_not_ready_pod_at_once(harness: ApiHarness) -> None:
    """With real workers: the slice reflects a pod's readiness change well under a second."""
    assert {"endpointslice", "endpoints", "kubernetes-service"} <= set(CONTROLLERS)
    client = await harness.client(user_agent="manager-test")
    manager = ControllerManager(client, identity="me")
    stop = asyncio.Event()
    running = asyncio.create_task(manager.run(stop))
    try:
        await create_node(client)
        await client.create(resources.SERVICES, service_body(selector={"app": "web"}))
        pod = await create_pod(client, "a", ip="10.42.0.70")

        async def condition(ready: bool) -> bool:
            items = (await client.list(resources.ENDPOINTSLICES, NS,
                                       label_selector=f"{SERVICE_NAME_LABEL}=web"))["items"]
            endpoints = by_pod(items)
            return "a" in endpoints and endpoints["a"]["conditions"]["ready"] is ready

        await wait.eventually(lambda: condition(True), within=5.0, what="a ready in the slice")
        began = time.perf_counter()
        await set_pod_status(client, pod, ip="10.42.0.70", ready=False)
        await wait.eventually(lambda: condition(False), within=5.0, what="a not ready in the slice")
        took = time.perf_counter() - began
        assert took < 1.0, f"the slice changed {took:.3f}s after the pod"
    finally:
        stop.set()
        await asyncio.wait_for(running, 10.0)
