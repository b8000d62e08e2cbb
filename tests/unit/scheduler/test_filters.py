"""Each filter plugin's decision, table-driven, through its pure function and its pre_filter."""

from __future__ import annotations

import pytest

from shoal.kube.objects import Obj
from shoal.scheduler.framework import Code, Status
from shoal.scheduler.nodeinfo import Taint
from shoal.scheduler.plugins import node_name, node_ports, node_resources_fit, node_unschedulable
from shoal.scheduler.plugins.node_affinity import NodeAffinity, match_expression, match_field, match_terms
from shoal.scheduler.plugins.taint_toleration import TaintToleration, Toleration, first_untolerated
from shoal.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import node_info, pod, pod_info

# -- NodeResourcesFit ---------------------------------------------------------------------


@pytest.mark.parametrize(("pod_cpu", "pod_memory", "placed", "allocatable", "reasons", "code"), [
    pytest.param("1", "1Gi", [], {}, None, None, id="fits an empty node"),
    pytest.param("4", "8Gi", [], {}, None, None, id="exactly the allocatable"),
    pytest.param("3", None, [("2", None)], {}, ("Insufficient cpu",), Code.UNSCHEDULABLE, id="cpu left is short"),
    pytest.param(None, "5Gi", [(None, "4Gi")], {}, ("Insufficient memory",), Code.UNSCHEDULABLE,
                 id="memory left is short"),
    pytest.param("5", None, [], {}, ("Insufficient cpu",), Code.UNRESOLVABLE, id="more cpu than the node has"),
    pytest.param("3", "7Gi", [("2", "2Gi")], {}, ("Insufficient cpu", "Insufficient memory"),
                 Code.UNSCHEDULABLE, id="both short, both reported"),
    pytest.param(None, None, [(None, None)], {"pods": "1"}, ("Too many pods",), Code.UNSCHEDULABLE,
                 id="pod slots are a resource"),
    pytest.param(None, None, [], {"pods": "0"}, ("Too many pods",), Code.UNRESOLVABLE, id="no pod slots at all"),
    pytest.param(None, None, [("4", "8Gi")], {}, None, None, id="a pod without requests fits a full node"),
])
def test_node_resources_fit(pod_cpu: str | None, pod_memory: str | None, placed: list[tuple[str | None, str | None]],
                            allocatable: dict[str, str], reasons: tuple[str, ...] | None, code: Code | None) -> None:
    node = node_info(placed=[pod(f"old{i}", cpu=c, memory=m) for i, (c, m) in enumerate(placed)], **allocatable)
    candidate = pod_info(cpu=pod_cpu, memory=pod_memory)
    status = node_resources_fit.fits(candidate, node)
    check = node_resources_fit.NodeResourcesFit().pre_filter(candidate)
    assert check is not None and check(node) == status
    if reasons is None:
        assert status is None
    else:
        assert status == Status(code or Code.UNSCHEDULABLE, reasons, "NodeResourcesFit")


# -- TaintToleration and NodeUnschedulable --------------------------------------------------


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> Taint:
    return Taint(key, value, effect)


@pytest.mark.parametrize(("toleration", "the_taint", "matches"), [
    (Toleration("gpu", "Equal", "yes", "NoSchedule"), taint("gpu", "yes"), True),
    (Toleration("gpu", "Equal", "no", "NoSchedule"), taint("gpu", "yes"), False),
    (Toleration("gpu", "", "yes", ""), taint("gpu", "yes", "NoExecute"), True),
    (Toleration("gpu", "Exists", "", ""), taint("gpu", "anything"), True),
    (Toleration("gpu", "Exists", "", "NoExecute"), taint("gpu", "x", "NoSchedule"), False),
    (Toleration("other", "Exists"), taint("gpu"), False),
    (Toleration("", "Exists"), taint("gpu", "x", "NoExecute"), True),
    (Toleration("", "Exists", "", "NoSchedule"), taint("gpu", "x", "NoExecute"), False),
    (Toleration("gpu", "Bogus", "yes"), taint("gpu", "yes"), False),
])
def test_toleration_matches(toleration: Toleration, the_taint: Taint, matches: bool) -> None:
    assert toleration.matches(the_taint) is matches


def test_first_untolerated_ignores_prefer_no_schedule() -> None:
    taints = [taint("soft", effect="PreferNoSchedule"), taint("a"), taint("b", "v", "NoExecute")]
    assert first_untolerated([], taints) == taint("a")
    assert first_untolerated([Toleration("a", "Exists")], taints) == taint("b", "v", "NoExecute")
    assert first_untolerated([Toleration("", "Exists")], taints) is None


@pytest.mark.parametrize(("node_kwargs", "tolerations", "reason"), [
    ({}, [], None),
    ({"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}, [],
     "node(s) had untolerated taint {gpu: yes}"),
    ({"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]},
     [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}], None),
    ({"taints": [{"key": "soft", "effect": "PreferNoSchedule"}]}, [], None),
    ({"ready": "False"}, [], "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
    ({"ready": None}, [], "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
    ({"ready": "Unknown"}, [], "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
    ({"ready": "False"}, [{"operator": "Exists"}], None),
])
def test_taint_toleration_filter(node_kwargs: Obj, tolerations: list[Obj], reason: str | None) -> None:
    check = TaintToleration().pre_filter(pod_info(spec={"tolerations": tolerations}))
    assert check is not None
    status = check(node_info(**node_kwargs))
    if reason is None:
        assert status is None
    else:
        assert status == Status(Code.UNRESOLVABLE, (reason,), "TaintToleration")


@pytest.mark.parametrize(("unschedulable", "tolerations", "fails"), [
    (False, [], False),
    (True, [], True),
    (True, [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}], False),
    (True, [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}], True),
])
def test_node_unschedulable(unschedulable: bool, tolerations: list[Obj], fails: bool) -> None:
    node = node_info(unschedulable=unschedulable)
    check = node_unschedulable.NodeUnschedulable().pre_filter(pod_info(spec={"tolerations": tolerations}))
    status = check(node) if check is not None else None
    assert status == (Status(Code.UNRESOLVABLE, ("node(s) were unschedulable",), "NodeUnschedulable")
                      if fails else None)
    assert node_unschedulable.fits(not fails and unschedulable, node) == status


def test_node_name() -> None:
    assert node_name.NodeName().pre_filter(pod_info()) is None
    assert node_name.fits("n1", node_info("n1")) is None
    assert node_name.fits("n2", node_info("n1")) == Status(
        Code.UNRESOLVABLE, ("node(s) didn't match the requested node name",), "NodeName")


# -- NodeAffinity -------------------------------------------------------------------------

LABELS = {"zone": "a", "disk": "ssd", "cores": "16"}


@pytest.mark.parametrize(("operator", "key", "values", "matches"), [
    ("In", "zone", ["a", "b"], True),
    ("In", "zone", ["b"], False),
    ("In", "missing", ["a"], False),
    ("NotIn", "zone", ["b"], True),
    ("NotIn", "zone", ["a"], False),
    ("NotIn", "missing", ["a"], True),
    ("Exists", "disk", None, True),
    ("Exists", "missing", None, False),
    ("DoesNotExist", "missing", None, True),
    ("DoesNotExist", "disk", None, False),
    ("Gt", "cores", ["8"], True),
    ("Gt", "cores", ["16"], False),
    ("Lt", "cores", ["32"], True),
    ("Lt", "cores", ["16"], False),
    ("Gt", "zone", ["1"], False),
    ("Gt", "cores", ["x"], False),
    ("Gt", "cores", ["1", "2"], False),
    ("Gt", "missing", ["1"], False),
    ("Near", "zone", ["a"], False),
])
def test_match_expression(operator: str, key: str, values: list[str] | None, matches: bool) -> None:
    requirement: Obj = {"key": key, "operator": operator}
    if values is not None:
        requirement["values"] = values
    assert match_expression(requirement, LABELS) is matches


@pytest.mark.parametrize(("requirement", "matches"), [
    ({"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}, True),
    ({"key": "metadata.name", "operator": "In", "values": ["n2"]}, False),
    ({"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}, True),
    ({"key": "metadata.uid", "operator": "In", "values": ["n1"]}, False),
    ({"key": "metadata.name", "operator": "Exists"}, False),
])
def test_match_field(requirement: Obj, matches: bool) -> None:
    assert match_field(requirement, "n1") is matches


def test_terms_are_ored_and_their_parts_anded() -> None:
    zone_b = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    ssd_n1 = {"matchExpressions": [{"key": "disk", "operator": "Exists"}],
              "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert match_terms([zone_b, ssd_n1], LABELS, "n1") is True
    assert match_terms([zone_b, ssd_n1], LABELS, "n2") is False
    assert match_terms([{}], LABELS, "n1") is False  # an empty term matches nothing
    assert match_terms([], LABELS, "n1") is False


@pytest.mark.parametrize(("spec", "labels", "fits"), [
    ({}, {}, True),
    ({"nodeSelector": {"disk": "ssd"}}, {"disk": "ssd"}, True),
    ({"nodeSelector": {"disk": "ssd"}}, {"disk": "hdd"}, False),
    ({"nodeSelector": {"disk": "ssd", "zone": "a"}}, {"disk": "ssd"}, False),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}}, {"zone": "b"}, True),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}}, {"zone": "a"}, False),
    ({"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}},
     {"disk": "ssd"}, True),
])
def test_node_affinity_filter(spec: Obj, labels: dict[str, str], fits: bool) -> None:
    check = NodeAffinity().pre_filter(pod_info(spec=spec))
    if not spec:
        assert check is None  # nothing to check: the plugin skips the pod
        return
    assert check is not None
    status = check(node_info("n1", labels=labels))
    assert status == (None if fits else Status(
        Code.UNRESOLVABLE, ("node(s) didn't match Pod's node affinity/selector",), "NodeAffinity"))


# -- NodePorts ----------------------------------------------------------------------------


def with_port(name: str, port: int, *, ip: str = "", protocol: str = "TCP") -> Obj:
    obj = pod(name)
    obj["spec"]["containers"][0]["ports"] = [{"containerPort": port, "hostPort": port, "hostIP": ip,
                                              "protocol": protocol}]
    return obj


@pytest.mark.parametrize(("used", "wanted", "conflict"), [
    (with_port("a", 80), with_port("b", 80), True),
    (with_port("a", 80), with_port("b", 81), False),
    (with_port("a", 53, protocol="UDP"), with_port("b", 53), False),
    (with_port("a", 80, ip="10.0.0.1"), with_port("b", 80, ip="10.0.0.2"), False),
    (with_port("a", 80, ip="10.0.0.1"), with_port("b", 80, ip="10.0.0.1"), True),
    (with_port("a", 80, ip="10.0.0.1"), with_port("b", 80, ip="0.0.0.0"), True),
    (with_port("a", 80), with_port("b", 80, ip="10.0.0.1"), True),
])
def test_node_ports(used: Obj, wanted: Obj, conflict: bool) -> None:
    node = node_info(placed=[used])
    check = node_ports.NodePorts().pre_filter(PodInfo.of(wanted))
    assert check is not None
    expected = Status(Code.UNSCHEDULABLE, ("node(s) didn't have free ports for the requested pod ports",),
                      "NodePorts")
    assert check(node) == (expected if conflict else None)


def test_node_ports_skips_pods_without_host_ports() -> None:
    assert node_ports.NodePorts().pre_filter(pod_info()) is None
