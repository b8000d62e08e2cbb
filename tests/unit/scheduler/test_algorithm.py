"""The filter + score loop and Kubernetes' FailedScheduling message."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from shoal.scheduler import plugins
from shoal.scheduler.algorithm import Algorithm, FitError, fit_error_message, num_feasible_nodes_to_find
from shoal.scheduler.framework import Status, unresolvable, unschedulable
from shoal.scheduler.nodeinfo import NodeInfo
from tests.unit.scheduler.builders import node, node_info, pod, pod_info

CPU = "Insufficient cpu"
AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def algorithm(seed: int = 1, percentage: int = 0) -> Algorithm:
    return Algorithm(plugins.default_filters(), plugins.default_scores(), rng=random.Random(seed),
                     percentage_of_nodes_to_score=percentage)


@pytest.mark.parametrize(("statuses", "message"), [
    pytest.param({"a": unschedulable("F", CPU), "b": unresolvable("A", AFFINITY), "c": unresolvable("A", AFFINITY)},
                 f"0/3 nodes are available: 1 {CPU}, 2 {AFFINITY}. preemption: 0/3 nodes are available: "
                 "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.",
                 id="counts per reason, sorted"),
    pytest.param({n: unresolvable("F", CPU) for n in "abc"},
                 f"0/3 nodes are available: 3 {CPU}. preemption: 0/3 nodes are available: "
                 "3 Preemption is not helpful for scheduling.", id="one reason"),
    pytest.param({"a": unschedulable("F", CPU, "Insufficient memory"), "b": unschedulable("F", "Insufficient memory")},
                 f"0/2 nodes are available: 1 {CPU}, 2 Insufficient memory. preemption: 0/2 nodes are available: "
                 "2 No preemption victims found for incoming pod.", id="a node may give several reasons"),
    pytest.param({f"n{i}": unschedulable("F", CPU) for i in range(10)} | {"x": unresolvable("A", AFFINITY)},
                 f"0/11 nodes are available: 1 {AFFINITY}, 10 {CPU}. preemption: 0/11 nodes are available: "
                 "1 Preemption is not helpful for scheduling, 10 No preemption victims found for incoming pod.",
                 id="sorted as strings, as Go's sort.Strings does"),
])
def test_fit_error_message(statuses: dict[str, Status], message: str) -> None:
    assert fit_error_message(len(statuses), statuses) == message


def test_no_nodes_at_all() -> None:
    with pytest.raises(FitError) as caught:
        algorithm().schedule(pod_info(), [])
    assert caught.value.message == "no nodes available to schedule pods"


@pytest.mark.parametrize(("nodes", "percentage", "expected"), [
    (3, 0, 3), (99, 0, 99), (100, 0, 100), (250, 0, 120), (1000, 0, 420), (5000, 0, 500), (10000, 0, 500),
    (1000, 100, 1000), (1000, 10, 100), (1000, 50, 500),
])
def test_num_feasible_nodes_to_find(nodes: int, percentage: int, expected: int) -> None:
    assert num_feasible_nodes_to_find(nodes, percentage) == expected


def test_every_node_failing_explains_each_one() -> None:
    nodes = [node_info("small", cpu="1"), node_info("ssd-less", labels={}), node_info("tainted", taints=[
        {"key": "gpu", "value": "yes", "effect": "NoSchedule"}]), node_info("down", ready="False")]
    candidate = pod_info(cpu="2", spec={"nodeSelector": {"kubernetes.io/os": "linux"}})
    for info in nodes[:2]:
        info.labels["kubernetes.io/os"] = "linux" if info.name == "small" else "windows"
    with pytest.raises(FitError) as caught:
        algorithm().schedule(candidate, nodes)
    assert caught.value.message == (
        f"0/4 nodes are available: 1 {CPU}, 1 {AFFINITY}, 1 node(s) had untolerated taint "
        "{gpu: yes}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
        "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.")
    assert set(caught.value.statuses) == {"small", "ssd-less", "tainted", "down"}


def test_the_best_scoring_node_wins() -> None:
    busy = node_info("busy", placed=[pod("x", cpu="3")])
    idle = node_info("idle")
    assert algorithm().schedule(pod_info(cpu="500m"), [busy, idle]).name == "idle"


def test_ties_are_broken_by_the_injected_rng() -> None:
    nodes = [node_info(f"n{i}") for i in range(4)]

    def picks(seed: int) -> list[str]:
        chooser = algorithm(seed)
        return [chooser.schedule(pod_info(f"p{i}"), nodes).name for i in range(40)]

    assert picks(7) == picks(7)
    assert set(picks(7)) == {n.name for n in nodes}  # uniform-ish: every tied node gets picked


def test_same_owner_pods_spread_evenly() -> None:
    nodes = [NodeInfo(node(f"n{i}")) for i in range(3)]
    chooser = algorithm()
    for i in range(6):
        info = pod_info(f"web-{i}", cpu="100m", owner="rs-web")
        chosen = chooser.schedule(info, nodes)
        chosen.add_pod(info)
    assert sorted(len(n.pods) for n in nodes) == [2, 2, 2]


def test_large_clusters_are_sampled_round_robin() -> None:
    nodes = [NodeInfo(node(f"n{i:04}")) for i in range(1000)]
    chooser = algorithm()
    feasible, statuses = chooser.find_feasible(pod_info(), nodes)
    assert (len(feasible), statuses) == (420, {})
    assert feasible[0].name == "n0000"
    feasible, _ = chooser.find_feasible(pod_info(), nodes)
    assert feasible[0].name == "n0420"  # the next search starts where the last one stopped
    assert Counter(n.name for n in feasible)["n0000"] == 0
    chooser.find_feasible(pod_info(), nodes)
    feasible, _ = chooser.find_feasible(pod_info(), nodes)
    assert feasible[0].name == f"n{(3 * 420) % 1000:04}"


def test_sampling_still_visits_every_node_when_few_fit() -> None:
    nodes = [NodeInfo(node(f"n{i:04}", cpu="1")) for i in range(300)]
    nodes[250] = NodeInfo(node("big", cpu="8"))
    assert algorithm().schedule(pod_info(cpu="4"), nodes).name == "big"
