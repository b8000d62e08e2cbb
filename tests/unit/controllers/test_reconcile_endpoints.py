"""The Endpoints controller's ``reconcile`` against the real in-process API (no workers), and the
``kubernetes`` Service controller.

Issue 9 item 1 (core/v1 Endpoints: ready pods in ``addresses``, not-ready in
``notReadyAddresses``, terminating ones left out unless publishNotReadyAddresses; selectorless
Services untouched; no write when nothing changed; deleted Services lose their Endpoints) and
item 5 (``default/kubernetes`` at 10.43.0.1:443 points at the API server).
"""

from __future__ import annotations

import pytest

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.systemservices import KUBE_DNS_KEY
from shoal.controllers.endpoints import EndpointsController
from shoal.controllers.kubernetes_service import CLUSTER_IP, KEY, KubernetesServiceController, api_address
from shoal.controllers.podendpoints import TRIGGER_TIME_ANNOTATION
from shoal.kube.objects import Obj
from tests.support.api_harness import ApiHarness
from tests.support.endpoints import create_node, create_pod, service_body, set_pod_status
from tests.support.reconciling import Rig

NS = "default"


@pytest.fixture
def controller(rig: Rig) -> EndpointsController:
    return EndpointsController(rig.client, rig.informers, clock=rig.clock)


async def endpoints(rig: Rig, name: str = "web") -> Obj | None:
    try:
        found: Obj = await rig.client.get(resources.ENDPOINTS, name, NS)
    except NotFoundError:
        return None
    return found


def ips(subset: Obj, field: str = "addresses") -> list[str]:
    return [a["ip"] for a in subset.get(field) or []]


async def test_ready_not_ready_and_terminating_pods(rig: Rig, controller: EndpointsController,
                                                    harness: ApiHarness) -> None:
    await create_node(rig.client)
    await rig.client.create(resources.SERVICES, service_body(selector={"app": "web"}, labels={"tier": "front"}))
    a = await create_pod(rig.client, "a", ip="10.42.0.10")
    await create_pod(rig.client, "b", ip="10.42.0.11", ready=False)
    await create_pod(rig.client, "c", ip="10.42.0.12")
    async with rig.running(controller):
        assert await rig.reconcile(controller, f"{NS}/web") is None
        found = await endpoints(rig)
        assert found is not None
        assert found["metadata"]["labels"] == {"tier": "front"}
        assert TRIGGER_TIME_ANNOTATION in found["metadata"]["annotations"]
        [subset] = found["subsets"]
        assert ips(subset) == ["10.42.0.10", "10.42.0.12"] and ips(subset, "notReadyAddresses") == ["10.42.0.11"]
        assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert subset["addresses"][0] == {"ip": "10.42.0.10", "nodeName": "node-1", "targetRef": {
            "kind": "Pod", "namespace": NS, "name": "a", "uid": a["metadata"]["uid"]}}

        revision, writes = await harness.revision(), controller.writes
        await rig.reconcile(controller, f"{NS}/web")
        assert await harness.revision() == revision and controller.writes == writes, "no change: no write"

        await set_pod_status(rig.client, a, ip="10.42.0.10", ready=False)
        await rig.client.delete(resources.PODS, "c", NS)  # graceful: terminating
        await rig.reconcile(controller, f"{NS}/web")
        found = await endpoints(rig)
        assert found is not None
        [subset] = found["subsets"]
        assert "addresses" not in subset and ips(subset, "notReadyAddresses") == ["10.42.0.10", "10.42.0.11"]


async def test_publish_not_ready_addresses_keeps_terminating_pods_and_headless_has_no_ports(
        rig: Rig, controller: EndpointsController) -> None:
    await create_node(rig.client)
    await rig.client.create(resources.SERVICES, service_body(selector={"app": "web"}, publishNotReadyAddresses=True))
    await rig.client.create(resources.SERVICES, service_body("sub", selector={"app": "web"}, clusterIP="None",
                                                             ports=[]))
    await create_pod(rig.client, "a", ip="10.42.0.20", ready=False, hostname="a", subdomain="sub")
    await create_pod(rig.client, "b", ip="10.42.0.21")
    await rig.client.delete(resources.PODS, "b", NS)
    async with rig.running(controller):
        await rig.reconcile(controller, f"{NS}/web")
        found = await endpoints(rig)
        assert found is not None and ips(found["subsets"][0]) == ["10.42.0.20", "10.42.0.21"]
        await rig.reconcile(controller, f"{NS}/sub")
        headless = await endpoints(rig, "sub")
        assert headless is not None
        assert headless["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
        [subset] = headless["subsets"]
        assert "ports" not in subset and ips(subset, "notReadyAddresses") == ["10.42.0.20"]
        assert subset["notReadyAddresses"][0]["hostname"] == "a"


async def test_selectorless_untouched_and_deleted_services_lose_their_endpoints(
        rig: Rig, controller: EndpointsController, harness: ApiHarness) -> None:
    await rig.client.create(resources.SERVICES, service_body("external"))
    mine = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external", "namespace": NS},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"name": "http", "port": 80}]}]}
    await rig.client.create(resources.ENDPOINTS, mine)
    await rig.client.create(resources.SERVICES, service_body(selector={"app": "web"}))
    async with rig.running(controller):
        revision = await harness.revision()
        await rig.reconcile(controller, f"{NS}/external")
        assert await harness.revision() == revision
        await rig.reconcile(controller, f"{NS}/web")
        assert await endpoints(rig) is not None and (await endpoints(rig) or {}).get("subsets") is None
        await rig.client.delete(resources.SERVICES, "web", NS)
        await rig.reconcile(controller, f"{NS}/web")
        assert await endpoints(rig) is None
        kept = await endpoints(rig, "external")
        assert kept is not None and ips(kept["subsets"][0]) == ["192.0.2.1"]


async def test_the_kubernetes_service_points_at_the_api_server(rig: Rig, harness: ApiHarness) -> None:
    controller = KubernetesServiceController(rig.client, rig.informers, clock=rig.clock)
    ip, port = await api_address(rig.client.server_url)
    assert ip == "127.0.0.1"
    async with rig.running(controller):
        assert await rig.reconcile(controller, KEY) == 10.0, "a periodic resync"
        service = await rig.client.get(resources.SERVICES, "kubernetes", NS)
        assert service["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
        assert service["spec"]["clusterIP"] == CLUSTER_IP == "10.43.0.1"
        assert "selector" not in service["spec"]
        assert [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            ("https", 443, "TCP", port)]
        found = await rig.client.get(resources.ENDPOINTS, "kubernetes", NS)
        assert found["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
        assert found["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
        slice_ = await rig.client.get(resources.ENDPOINTSLICES, "kubernetes", NS)
        assert slice_["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
        assert slice_["addressType"] == "IPv4"
        assert slice_["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]
        assert slice_["ports"] == [{"name": "https", "port": port, "protocol": "TCP"}]

        revision = await harness.revision()
        await rig.reconcile(controller, KEY)
        assert await harness.revision() == revision, "nothing to change: nothing written"

        await rig.client.delete(resources.ENDPOINTSLICES, "kubernetes", NS)
        broken = await rig.client.get(resources.ENDPOINTS, "kubernetes", NS)
        broken["subsets"][0]["addresses"] = [{"ip": "10.0.0.9"}]
        await rig.client.update(resources.ENDPOINTS, broken)
        await rig.reconcile(controller, KEY)
        assert (await rig.client.get(resources.ENDPOINTS, "kubernetes", NS))["subsets"] == found["subsets"]
        assert (await rig.client.get(resources.ENDPOINTSLICES, "kubernetes", NS))["endpoints"] == slice_["endpoints"]


async def test_kube_dns_is_created_again_when_deleted(rig: Rig, harness: ApiHarness) -> None:
    """Every pod's resolv.conf names kube-dns's address: a deleted kube-dns Service comes back
    with the same ClusterIP, and an existing one is left alone."""
    controller = KubernetesServiceController(rig.client, rig.informers, clock=rig.clock)
    async with rig.running(controller):
        await rig.reconcile(controller, KUBE_DNS_KEY)
        first = await rig.client.get(resources.SERVICES, "kube-dns", "kube-system")
        assert first["spec"]["clusterIP"] == "10.43.0.10"
        assert first["metadata"]["labels"]["shoal.dev/served-by"] == "node-dns"
        await rig.settle()
        revision = await harness.revision()
        await rig.reconcile(controller, KUBE_DNS_KEY)
        assert await harness.revision() == revision, "it exists: nothing written"
        await rig.client.delete(resources.SERVICES, "kube-dns", "kube-system")
        await rig.settle()
        await rig.reconcile(controller, KUBE_DNS_KEY)
        again = await rig.client.get(resources.SERVICES, "kube-dns", "kube-system")
        assert again["metadata"]["uid"] != first["metadata"]["uid"] and again["spec"]["clusterIP"] == "10.43.0.10"
