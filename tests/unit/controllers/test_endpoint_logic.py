"""Pods as Service endpoints, pure pieces: port resolution, conditions, Endpoints subsets,
EndpointSlice grouping and the plan of slice writes (no API server).

Issue 9 item 1: conditions as Kubernetes sets them (ready/serving/terminating), named and
numbered targetPorts resolved per pod, publishNotReadyAddresses, headless Services.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shoal.controllers import podendpoints as pe
from shoal.controllers import slicing
from shoal.controllers.endpoints import desired_subsets
from shoal.kube.objects import Obj

_NODES: dict[str, Obj] = {"node-a": {"metadata": {"name": "node-a", "labels": {slicing.ZONE_LABEL: "zone-1"}}},
                          "node-b": {"metadata": {"name": "node-b"}}}


def node_of(name: str) -> Obj | None:
    """The node cache's ``get``."""
    return _NODES.get(name)


def pod(name: str, ip: str | None = "10.42.0.5", *, ready: bool = True, deleting: bool = False,
        phase: str = "Running", node: str = "node-a", ports: list[Obj] | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T12:00:30Z"
    status: Obj = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2030-01-01T12:00:00Z"}]}
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    container: Obj = {"name": "main", "image": "busybox"}
    if ports is not None:
        container["ports"] = ports
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [container], **spec}, "status": status}


def service(ports: list[Obj] | None = None, **spec: Any) -> Obj:
    if ports is None:
        ports = [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"tier": "front"},
                         "creationTimestamp": "2030-01-01T11:00:00Z"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.9", "ports": ports, **spec}}


def test_find_port_numbers_names_protocols_and_sidecars() -> None:
    named = pod("p", ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "dns", "containerPort": 5353, "protocol": "UDP"}])
    assert pe.find_port(named, {"port": 80, "targetPort": 9090}) == 9090
    assert pe.find_port(named, {"port": 80}) == 80, "no targetPort: the Service port"
    assert pe.find_port(named, {"port": 80, "protocol": "TCP", "targetPort": "http"}) == 8080
    assert pe.find_port(named, {"port": 53, "protocol": "UDP", "targetPort": "dns"}) == 5353
    assert pe.find_port(named, {"port": 53, "protocol": "TCP", "targetPort": "dns"}) is None, "protocol must match"
    assert pe.find_port(named, {"port": 80, "targetPort": "metrics"}) is None
    sidecar = pod("s", initContainers=[{"name": "side", "restartPolicy": "Always",
                                        "ports": [{"name": "metrics", "containerPort": 9100}]},
                                       {"name": "init", "ports": [{"name": "setup", "containerPort": 1}]}])
    assert pe.find_port(sidecar, {"port": 80, "targetPort": "metrics"}) == 9100
    assert pe.find_port(sidecar, {"port": 80, "targetPort": "setup"}) is None, "plain init containers do not count"


def test_which_pods_are_endpoints_and_hostnames() -> None:
    assert pe.should_be_endpoint(pod("a"), include_terminating=False)
    assert not pe.should_be_endpoint(pod("a", ip=None), include_terminating=True)
    assert not pe.should_be_endpoint(pod("a", phase="Succeeded"), include_terminating=True)
    assert not pe.should_be_endpoint(pod("a", phase="Failed"), include_terminating=True)
    assert pe.should_be_endpoint(pod("a", deleting=True), include_terminating=True)
    assert not pe.should_be_endpoint(pod("a", deleting=True), include_terminating=False)
    assert pe.should_set_hostname(pod("a", hostname="h", subdomain="web"), service())
    assert not pe.should_set_hostname(pod("a", hostname="h", subdomain="other"), service())
    assert not pe.should_set_hostname(pod("a", subdomain="web"), service())
    assert pe.pod_ipv4s(pod("a", ip="fd00::1")) == []


def conditions_of(svc: Obj, p: Obj) -> Obj:
    desired = slicing.desired_endpoints(svc, [p], node_of)
    [(_, endpoints)] = desired.groups.values()
    [endpoint] = endpoints.values()
    result: Obj = endpoint["conditions"]
    return result


def test_conditions_as_kubernetes_sets_them() -> None:
    svc = service()
    assert conditions_of(svc, pod("a")) == {"ready": True, "serving": True, "terminating": False}
    assert conditions_of(svc, pod("a", ready=False)) == {"ready": False, "serving": False, "terminating": False}
    assert conditions_of(svc, pod("a", deleting=True)) == {"ready": False, "serving": True, "terminating": True}
    assert conditions_of(svc, pod("a", deleting=True, ready=False)) == {
        "ready": False, "serving": False, "terminating": True}
    tolerant = service(publishNotReadyAddresses=True)
    assert conditions_of(tolerant, pod("a", ready=False)) == {"ready": True, "serving": False, "terminating": False}
    assert conditions_of(tolerant, pod("a", deleting=True)) == {"ready": True, "serving": True, "terminating": True}


def test_an_endpoint_carries_address_target_node_zone_and_hostname() -> None:
    desired = slicing.desired_endpoints(service(), [pod("a", hostname="a", subdomain="web")], node_of)
    [(ports, endpoints)] = desired.groups.values()
    assert ports == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert list(endpoints.values()) == [{
        "addresses": ["10.42.0.5"], "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
        "nodeName": "node-a", "zone": "zone-1", "hostname": "a"}]
    on_b = slicing.desired_endpoints(service(), [pod("b", node="node-b")], node_of)
    assert "zone" not in next(iter(next(iter(on_b.groups.values()))[1].values()))
    lost = slicing.desired_endpoints(service(), [pod("c", node="gone")], node_of)
    assert lost.groups == {}, "a pod on a node the cache lacks is left out"
    kept = slicing.desired_endpoints(service(publishNotReadyAddresses=True), [pod("c", node="gone")], node_of)
    assert len(kept.groups) == 1


def test_pods_resolving_ports_differently_are_grouped_apart() -> None:
    svc = service([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "appProtocol": "http"},
                   {"name": "admin", "port": 81, "protocol": "TCP", "targetPort": 9000}])
    pods = [pod("a", "10.42.0.1", ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}]),
            pod("b", "10.42.0.2", ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}]),
            pod("c", "10.42.0.3", ports=[{"name": "http", "containerPort": 8081, "protocol": "TCP"}]),
            pod("d", "10.42.0.4", ports=[])]
    desired = slicing.desired_endpoints(svc, pods, node_of)
    groups = {key: sorted(e["targetRef"]["name"] for e in eps.values()) for key, (_, eps) in desired.groups.items()}
    assert groups == {
        (("admin", 9000, "TCP", ""), ("http", 8080, "TCP", "http")): ["a", "b"],
        (("admin", 9000, "TCP", ""), ("http", 8081, "TCP", "http")): ["c"],
        (("admin", 9000, "TCP", ""),): ["d"]}
    assert [(p["metadata"]["name"], port, target) for p, port, target in desired.missing] == [("d", "http", "http")]
    [ports] = [ports for key, (ports, _) in desired.groups.items() if len(key) == 2 and key[1][1] == 8080]
    assert ports == [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"},
                     {"name": "admin", "port": 9000, "protocol": "TCP"}], "Service order, appProtocol copied"


def existing(svc: Obj, name: str, ports: list[Obj], endpoints: list[Obj], **extra: Any) -> Obj:
    body = slicing.new_slice(svc, ports)
    body["metadata"].update(name=name, resourceVersion="7", **extra)
    body["endpoints"] = endpoints
    return body


def test_the_plan_updates_in_place_and_writes_nothing_when_equal() -> None:
    svc = service()
    pods = [pod(f"p{i}", f"10.42.0.{i}") for i in range(1, 4)]
    desired = slicing.desired_endpoints(svc, pods, node_of)
    first = slicing.plan(svc, desired, [])
    assert len(first.create) == 1 and not first.update and not first.delete
    made = first.create[0]
    assert made["metadata"]["generateName"] == "web-"
    assert made["metadata"]["labels"] == {"tier": "front", slicing.SERVICE_NAME_LABEL: "web",
                                          slicing.MANAGED_BY_LABEL: slicing.CONTROLLER_NAME}
    assert made["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                    "uid": "svc-uid", "controller": True, "blockOwnerDeletion": True}]
    assert made["addressType"] == "IPv4" and len(made["endpoints"]) == 3
    current = existing(svc, "web-abc", made["ports"], made["endpoints"])
    assert slicing.plan(svc, desired, [current]).empty, "nothing changed: nothing to write"

    pods[1] = pod("p2", "10.42.0.2", deleting=True)
    changed = slicing.plan(svc, slicing.desired_endpoints(svc, pods, node_of), [current])
    assert not changed.create and not changed.delete and len(changed.update) == 1
    updated = changed.update[0]
    assert updated["metadata"]["name"] == "web-abc" and updated["metadata"]["resourceVersion"] == "7"
    assert [e["conditions"]["terminating"] for e in updated["endpoints"]] == [False, True, False], "order kept"


def test_the_plan_fills_new_slices_up_to_the_maximum_and_keeps_one_placeholder() -> None:
    svc = service()
    pods = [pod(f"p{i:02}", f"10.42.1.{i}") for i in range(1, 6)]
    plan = slicing.plan(svc, slicing.desired_endpoints(svc, pods, node_of), [], max_per_slice=2)
    assert sorted(len(s["endpoints"]) for s in plan.create) == [1, 2, 2]
    empty = slicing.plan(svc, slicing.desired_endpoints(svc, [], node_of), [])
    assert len(empty.create) == 1 and empty.create[0]["endpoints"] == [] and empty.create[0]["ports"] == []
    placeholder = existing(svc, "web-p", [], [])
    assert slicing.plan(svc, slicing.desired_endpoints(svc, [], node_of), [placeholder]).empty
    # The last endpoint leaves: the slice becomes the placeholder (an update, not delete + create).
    full = existing(svc, "web-x", [{"name": "web", "port": 8080, "protocol": "TCP"}],
                    slicing.plan(svc, slicing.desired_endpoints(svc, pods[:1], node_of), []).create[0]["endpoints"])
    gone = slicing.plan(svc, slicing.desired_endpoints(svc, [], node_of), [full])
    assert not gone.create and not gone.delete and [s["metadata"]["name"] for s in gone.update] == ["web-x"]
    assert gone.update[0]["endpoints"] == [] and gone.update[0]["ports"] == []


def test_the_plan_deletes_foreign_slices_and_creates_nothing_for_a_service_being_deleted() -> None:
    svc = service()
    stranger = existing(svc, "web-old", [], [])
    stranger["metadata"]["ownerReferences"][0]["uid"] = "old-uid"
    plan = slicing.plan(svc, slicing.desired_endpoints(svc, [pod("a")], node_of), [stranger])
    assert plan.delete == [stranger] and len(plan.create) == 1
    doomed = service()
    doomed["metadata"]["deletionTimestamp"] = "2030-01-01T12:00:00Z"
    assert slicing.plan(doomed, slicing.desired_endpoints(doomed, [pod("a")], node_of), []).create == []


def test_headless_slices_are_labelled_and_may_have_no_ports() -> None:
    svc = service([], clusterIP="None")
    desired = slicing.desired_endpoints(svc, [pod("a")], node_of)
    [made] = slicing.plan(svc, desired, []).create
    assert made["ports"] == [] and len(made["endpoints"]) == 1
    assert made["metadata"]["labels"][pe.HEADLESS_LABEL] == ""


def test_endpoints_subsets_ready_not_ready_and_terminating() -> None:
    svc = service()
    pods = [pod("b", "10.42.0.20"), pod("a", "10.42.0.3"), pod("n", "10.42.0.9", ready=False),
            pod("t", "10.42.0.7", deleting=True), pod("x", None)]
    ref = {"kind": "Pod", "namespace": "ns"}
    assert desired_subsets(svc, pods) == [{
        "addresses": [{"ip": "10.42.0.3", "nodeName": "node-a", "targetRef": {**ref, "name": "a", "uid": "uid-a"}},
                      {"ip": "10.42.0.20", "nodeName": "node-a", "targetRef": {**ref, "name": "b", "uid": "uid-b"}}],
        "notReadyAddresses": [{"ip": "10.42.0.9", "nodeName": "node-a",
                               "targetRef": {**ref, "name": "n", "uid": "uid-n"}}],
        "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}]}], "terminating pods are left out"
    tolerant = desired_subsets(service(publishNotReadyAddresses=True), pods)
    assert [a["ip"] for a in tolerant[0]["addresses"]] == ["10.42.0.3", "10.42.0.7", "10.42.0.9", "10.42.0.20"]
    assert "notReadyAddresses" not in tolerant[0]


def test_endpoints_subsets_repack_ports_and_headless() -> None:
    svc = service([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                   {"name": "admin", "port": 81, "protocol": "TCP", "targetPort": 9000}])
    pods = [pod("a", "10.42.0.1", ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}]),
            pod("d", "10.42.0.4", ports=[])]
    subsets = desired_subsets(svc, pods)
    assert [([a["ip"] for a in s["addresses"]], [p["port"] for p in s["ports"]]) for s in subsets] == [
        (["10.42.0.1", "10.42.0.4"], [9000]), (["10.42.0.1"], [8080])]
    headless = desired_subsets(service([], clusterIP="None"), pods)
    assert [([a["ip"] for a in s["addresses"]], s.get("ports")) for s in headless] == [
        (["10.42.0.1", "10.42.0.4"], None)]
    assert desired_subsets(service([]), pods) == [], "no ports and not headless: nothing"


def test_trigger_time_is_the_earliest_change_since_the_last_pass() -> None:
    tracker = pe.TriggerTimeTracker()
    svc = service()
    first = pod("a")
    assert tracker.compute("ns/web", svc, [first]) == datetime(2030, 1, 1, 11, 0, tzinfo=UTC), "the Service's creation"
    assert tracker.compute("ns/web", svc, [first]) is None, "nothing changed"
    later = pod("b")
    later["status"]["conditions"][0]["lastTransitionTime"] = "2030-01-01T12:05:00Z"
    assert tracker.compute("ns/web", svc, [first, later]) == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    tracker.forget("ns/web")
    assert tracker.compute("ns/web", svc, [first, later]) == datetime(2030, 1, 1, 11, 0, tzinfo=UTC)


def test_endpoint_view_ignores_what_cannot_change_an_endpoint() -> None:
    before = pod("a")
    after = pod("a")
    after["status"]["containerStatuses"] = [{"name": "main", "restartCount": 3}]
    after["metadata"]["resourceVersion"] = "99"
    assert pe.endpoint_view(before) == pe.endpoint_view(after)
    assert pe.endpoint_view(before) != pe.endpoint_view(pod("a", ready=False))
    assert pe.endpoint_view(before) != pe.endpoint_view(pod("a", deleting=True))
