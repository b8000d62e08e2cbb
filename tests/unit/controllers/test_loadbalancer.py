"""The service load-balancer controller against the real in-process API: a LoadBalancer
Service's ``status.loadBalancer.ingress`` is its Ready nodes' addresses, kept in step."""

from __future__ import annotations

from typing import Any

from shoal.client import resources
from shoal.controllers.loadbalancer import LoadBalancerController, ingress_for
from tests.support.reconciling import Rig


def node(name: str, ip: str, ready: bool = True) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_ingress_is_the_ready_nodes_addresses() -> None:
    nodes = [node("b", "192.0.2.2"), node("a", "192.0.2.1"), node("c", "192.0.2.3", ready=False)]
    assert ingress_for(nodes) == [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"ip": "192.0.2.2", "ipMode": "VIP"}]
    assert ingress_for([]) == []


async def test_load_balancer_status_follows_nodes_and_type(rig: Rig) -> None:
    controller = LoadBalancerController(rig.client, rig.informers, clock=rig.clock)
    for name, ip in (("n1", "192.0.2.1"), ("n2", "192.0.2.2")):
        created = await rig.client.create(resources.NODES, {k: v for k, v in node(name, ip).items() if k != "status"})
        created["status"] = node(name, ip)["status"]
        await rig.client.update_status(resources.NODES, created)
    svc = await rig.client.create(resources.SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}, "default")
    async with rig.running(controller):
        await rig.reconcile(controller, "default/lb")
        got = await rig.client.get(resources.SERVICES, "lb", "default")
        assert [i["ip"] for i in got["status"]["loadBalancer"]["ingress"]] == ["192.0.2.1", "192.0.2.2"]
        written = got["metadata"]["resourceVersion"]
        await rig.settle()
        await rig.reconcile(controller, "default/lb")
        again = await rig.client.get(resources.SERVICES, "lb", "default")
        assert again["metadata"]["resourceVersion"] == written, "no change, no write"
        await rig.client.patch(resources.SERVICES, "lb", {"spec": {
            "type": "ClusterIP", "externalTrafficPolicy": None, "allocateLoadBalancerNodePorts": None,
            "ports": [{"port": 80, "nodePort": None}]}}, "default")
        await rig.settle()
        await rig.reconcile(controller, "default/lb")
        cleared = await rig.client.get(resources.SERVICES, "lb", "default")
        assert not (cleared.get("status") or {}).get("loadBalancer"), "a ClusterIP Service has no ingress"
    assert svc["spec"]["type"] == "LoadBalancer"
