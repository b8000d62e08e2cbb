"""Score plugins and normalisation, table-driven."""

from __future__ import annotations

import pytest

from shoal.kube.objects import Obj
from shoal.scheduler.framework import default_normalize
from shoal.scheduler.plugins.node_affinity import PreferredAffinity
from shoal.scheduler.plugins.node_resources_fit import LeastAllocated, least_allocated_score
from shoal.scheduler.plugins.owner_spread import OwnerSpread, spread_scores
from shoal.scheduler.plugins.taint_toleration import TolerationScore
from tests.unit.scheduler.builders import node_info, pod, pod_info


@pytest.mark.parametrize(("raw", "reverse", "expected"), [
    ([0, 2, 4], False, [0, 50, 100]),
    ([0, 2, 4], True, [100, 50, 0]),
    ([0, 0], False, [0, 0]),
    ([0, 0], True, [100, 100]),
    ([3], False, [100]),
    ([1, 3], False, [33, 100]),
    ([], False, []),
])
def test_default_normalize(raw: list[int], reverse: bool, expected: list[int]) -> None:
    assert default_normalize(raw, reverse=reverse) == expected


@pytest.mark.parametrize(("placed", "candidate", "score"), [
    pytest.param([], ("1", "2Gi"), (75 + 75) // 2, id="empty 4 cpu / 8Gi node, pod 1 cpu / 2Gi"),
    pytest.param([("1", "2Gi")], ("1", "2Gi"), 50, id="the docstring's worked example"),
    pytest.param([("3", "6Gi")], ("2", "1Gi"), (0 + 12) // 2, id="over-committed cpu scores 0"),
    pytest.param([], (None, None), (97 + 97) // 2, id="no requests count as 100m / 200Mi"),
])
def test_least_allocated(placed: list[tuple[str, str]], candidate: tuple[str | None, str | None],
                         score: int) -> None:
    node = node_info(placed=[pod(f"old{i}", cpu=c, memory=m) for i, (c, m) in enumerate(placed)])
    info = pod_info(cpu=candidate[0], memory=candidate[1])
    assert least_allocated_score(info, node) == score
    assert LeastAllocated().score(info, [node]) == [score]


def test_least_allocated_prefers_the_emptier_node() -> None:
    busy = node_info("busy", placed=[pod("x", cpu="2", memory="4Gi")])
    idle = node_info("idle")
    scores = LeastAllocated().score(pod_info(cpu="500m", memory="512Mi"), [busy, idle])
    assert scores is not None and scores[0] < scores[1]


def test_owner_spread_favours_nodes_with_fewer_siblings() -> None:
    nodes = [node_info("a", placed=[pod("1", owner="rs"), pod("2", owner="rs")]),
             node_info("b", placed=[pod("3", owner="rs"), pod("4", owner="other")]),
             node_info("c", placed=[pod("5", owner="other")])]
    assert spread_scores("rs", nodes) == [0, 50, 100]
    assert spread_scores("nobody", nodes) is None
    assert OwnerSpread().score(pod_info(owner="rs"), nodes) == [0, 50, 100]
    assert OwnerSpread().score(pod_info(), nodes) is None


def test_preferred_affinity_sums_matching_weights() -> None:
    def term(weight: int, key: str, value: str) -> Obj:
        return {"weight": weight, "preference": {"matchExpressions": [
            {"key": key, "operator": "In", "values": [value]}]}}

    spec = {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        term(80, "zone", "a"), term(20, "disk", "ssd")]}}}
    nodes = [node_info("n1", labels={"zone": "a", "disk": "ssd"}), node_info("n2", labels={"zone": "a"}),
             node_info("n3", labels={"disk": "ssd"}), node_info("n4")]
    assert PreferredAffinity().score(pod_info(spec=spec), nodes) == [100, 80, 20, 0]
    assert PreferredAffinity().score(pod_info(), nodes) is None


def test_prefer_no_schedule_taints_lower_the_score_unless_tolerated() -> None:
    soft = [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]
    nodes = [node_info("tainted", taints=soft), node_info("clean")]
    assert TolerationScore().score(pod_info(), nodes) == [0, 100]
    tolerant = pod_info(spec={"tolerations": [{"key": "spot", "operator": "Exists"}]})
    assert TolerationScore().score(tolerant, nodes) is None
    only_hard = pod_info(spec={"tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]})
    assert TolerationScore().score(only_hard, nodes) == [0, 100]
