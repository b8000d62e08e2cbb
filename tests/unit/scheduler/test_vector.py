"""The vectorized decision equals the per-node one, decision for decision.

Two caches are fed the same random clusters and the same stream of random pods, node changes
and pod removals; one algorithm decides over the NodeTable (vector path where it applies),
the other node by node.  Every decision must pick the same node (or fail with the same
FailedScheduling message), which also keeps their round-robin starts and RNG draws in step.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from shoal.kube.objects import Obj
from shoal.scheduler import plugins
from shoal.scheduler.algorithm import Algorithm, FitError
from shoal.scheduler.cache import SchedulerCache
from shoal.scheduler.nodetable import NodeTable
from shoal.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import node, pod

TAINTS = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"},
          {"key": "spot", "value": "", "effect": "PreferNoSchedule"},
          {"key": "slow", "value": "yes", "effect": "PreferNoSchedule"}]


def random_node(rng: random.Random, name: str) -> Obj:
    taints = [t for t in TAINTS if rng.random() < 0.15]
    return node(name, cpu=rng.choice(["500m", "2", "4", "8"]), memory=rng.choice(["512Mi", "4Gi", "16Gi"]),
                pods=rng.choice(["3", "10", "110"]), taints=taints, unschedulable=rng.random() < 0.05,
                ready=rng.choice(["True"] * 18 + ["False", "Unknown"]),
                labels={"zone": rng.choice("abc")})


def random_pod(rng: random.Random, index: int) -> Obj:
    spec: Obj = {}
    roll = rng.random()
    if roll < 0.1:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    elif roll < 0.15:
        spec["tolerations"] = [{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]
    elif roll < 0.2:
        spec["nodeSelector"] = {"zone": rng.choice("abc")}  # no vector form: the per-node path
    elif roll < 0.23:
        spec["tolerations"] = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]
    return pod(f"p{index}", cpu=rng.choice([None, "100m", "250m", "1", "3"]),
               memory=rng.choice([None, "64Mi", "256Mi", "2Gi"]),
               owner=rng.choice(["", "rs-a", "rs-b", "rs-c"]), spec=spec)


def algorithm(seed: int, percentage: int) -> Algorithm:
    return Algorithm(plugins.default_filters(), plugins.default_scores(), rng=random.Random(seed),
                     percentage_of_nodes_to_score=percentage)


def decide(algorithm: Algorithm, cache: SchedulerCache, info: PodInfo, vector: bool) -> str:
    try:
        return algorithm.schedule(info, cache.nodes(), cache.table() if vector else None).name
    except FitError as exc:
        return f"FitError: {exc.message}"


def assert_table_matches(cache: SchedulerCache) -> None:
    table = cache.table()
    for row, info in enumerate(cache.nodes()):
        assert table.nodes[row] is info
        assert (int(table.requested_cpu[row]), int(table.requested_memory[row]), int(table.nz_cpu[row]),
                int(table.nz_memory[row]), int(table.pod_count[row]), bool(table.unschedulable[row]),
                bool(table.tainted[row])) == (info.requested_cpu, info.requested_memory, info.nz_cpu,
                                              info.nz_memory, len(info.pods), info.unschedulable,
                                              bool(info.taints))
        for owner, count in info.owner_counts.items():
            assert table.owner_rows[owner][row] == count


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("nodes", "percentage"), [(4, 0), (60, 0), (250, 0), (250, 30), (250, 100)])
def test_vector_and_per_node_paths_decide_alike(seed: int, nodes: int, percentage: int) -> None:
    rng = random.Random(seed * 1000 + nodes)
    vector_cache, plain_cache = SchedulerCache(), SchedulerCache()
    for index in range(nodes):
        obj = random_node(rng, f"n{index:03d}")
        vector_cache.upsert_node(obj)
        plain_cache.upsert_node(obj)
    vector_alg, plain_alg = algorithm(seed, percentage), algorithm(seed, percentage)
    placed: list[PodInfo] = []
    for index in range(120):
        if placed and rng.random() < 0.15:  # a pod goes away
            gone = placed.pop(rng.randrange(len(placed)))
            vector_cache.remove_pod(gone.key)
            plain_cache.remove_pod(gone.key)
        if rng.random() < 0.05:  # a node changes (cordon, taints, size, readiness)
            obj = random_node(rng, f"n{rng.randrange(nodes):03d}")
            vector_cache.upsert_node(obj)
            plain_cache.upsert_node(obj)
        info = PodInfo.of(random_pod(rng, index))
        chosen = decide(vector_alg, vector_cache, info, vector=True)
        assert chosen == decide(plain_alg, plain_cache, info, vector=False), f"decision {index}"
        if not chosen.startswith("FitError"):
            vector_cache.assume(info, chosen)
            plain_cache.assume(info, chosen)
            placed.append(info)
    assert_table_matches(vector_cache)


def test_a_new_node_gives_a_new_table_and_the_old_rows_stay_right() -> None:
    cache = SchedulerCache()
    cache.upsert_node(node("a"))
    first = cache.table()
    cache.upsert_node(node("b"))
    second = cache.table()
    assert second is not first and [n.name for n in second.nodes] == ["a", "b"]
    cache.assume(PodInfo.of(pod("p", cpu="1", owner="rs")), "b")
    assert int(second.requested_cpu[1]) == 1000 and second.owner_rows == {"rs": {1: 1}}
    cache.remove_pod("default/p")
    assert int(second.requested_cpu[1]) == 0 and second.owner_rows == {}


def test_huge_nodes_use_the_per_node_path() -> None:
    cache = SchedulerCache()
    cache.upsert_node(node("huge", memory=str(2**62)))
    table: NodeTable = cache.table()
    assert not table.exact
    assert algorithm(1, 0).schedule(PodInfo.of(pod("p", memory="1Gi")), cache.nodes(), table).name == "huge"
    assert isinstance(table.alloc_memory, np.ndarray)
