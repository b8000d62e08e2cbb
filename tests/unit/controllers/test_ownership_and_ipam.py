"""Label selectors, controller references, pod-CIDR allocation, and the manager's leadership default."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from shoal.client.leaderelection import LeaseLeadership
from shoal.client.resources import DEPLOYMENTS
from shoal.client.rest import ApiClient
from shoal.controllers import ownership
from shoal.controllers.manager import CONTROLLERS, AlwaysLeader, ControllerManager
from shoal.controllers.nodeipam import CidrExhaustedError, first_free, node_cidrs
from shoal.kube import objects, selectors


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": ""}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"app": "web"}, False),
    ({}, {"anything": "goes"}, True),
    (None, {"app": "web"}, False),
])
def test_selectors(selector: object, labels: dict[str, str], matches: bool) -> None:
    assert selectors.matches(selector, labels) is matches


def test_selectors_kubernetes_refuses_match_nothing_and_empty_selectors_are_recognised() -> None:
    # LabelSelectorAsSelector refuses "Gt" in a metav1.LabelSelector; controllers skip such a selector.
    assert not selectors.matches({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["0"]}]}, {"a": "1"})
    assert not selectors.matches({"matchLabels": {"bad key!": "x"}}, {"bad key!": "x"})
    assert selectors.is_empty_spec({}) and selectors.is_empty_spec({"matchLabels": {}})
    assert not selectors.is_empty_spec(None) and not selectors.is_empty_spec({"matchLabels": {"a": "b"}})


def test_controller_references() -> None:
    owner = {"metadata": {"name": "web", "uid": "u1"}}
    ref = ownership.controller_ref(owner, DEPLOYMENTS)
    assert ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1", "controller": True,
                   "blockOwnerDeletion": True}
    child = {"metadata": {"ownerReferences": [{"uid": "other", "kind": "ConfigMap"}, ref]}}
    assert objects.controller_of(child) == ref
    assert ownership.index_controller_uid(child) == ["u1"]
    assert objects.controller_of({"metadata": {"ownerReferences": [{"uid": "x"}]}}) is None
    assert ownership.index_controller_uid({}) == []


def test_the_lowest_free_subnet_is_allocated() -> None:
    cluster = ipaddress.ip_network("10.42.0.0/16")
    assert first_free(cluster, 24, []) == "10.42.0.0/24"
    assert first_free(cluster, 24, ["10.42.0.0/24", "10.42.2.0/24"]) == "10.42.1.0/24"
    assert first_free(cluster, 24, ["10.42.0.0/23"]) == "10.42.2.0/24", "overlaps count, not just equality"
    assert first_free(cluster, 24, ["192.168.0.0/24", "junk", "fd00::/64"]) == "10.42.0.0/24"
    small = ipaddress.ip_network("10.99.0.0/23")
    with pytest.raises(CidrExhaustedError):
        first_free(small, 24, ["10.99.0.0/24", "10.99.1.0/24"])


def test_node_cidrs_reads_both_fields() -> None:
    assert node_cidrs({"spec": {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24", "fd00::/64"]}}) == {
        "10.42.1.0/24", "fd00::/64"}
    assert node_cidrs({"spec": {}}) == set() and node_cidrs({}) == set()


async def test_a_full_manager_elects_and_a_custom_one_always_leads() -> None:
    client = ApiClient("http://127.0.0.1:9")  # never contacted
    try:
        elected = ControllerManager(client).leadership
        assert isinstance(elected, LeaseLeadership)
        assert elected.identity == f"{socket.gethostname()}_127.0.0.1:9", "stable across restarts"
        assert elected.name == "shoal-controller-manager" and elected.namespace == "kube-system"
        custom = ControllerManager(client, controllers={"nodeipam": CONTROLLERS["nodeipam"]})
        assert isinstance(custom.leadership, AlwaysLeader)
        assert {"replicaset", "deployment", "nodeipam"} <= set(CONTROLLERS)
    finally:
        await client.close()


async def test_lease_timing_must_leave_room_to_stop_before_expiry() -> None:
    client = ApiClient("http://127.0.0.1:9")  # never contacted
    try:
        with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
            LeaseLeadership(client, "x", "me", lease_duration=10, renew_deadline=10)
        with pytest.raises(ValueError, match="retry_period"):
            LeaseLeadership(client, "x", "me", renew_deadline=2.0, retry_period=2.0)
    finally:
        await client.close()
