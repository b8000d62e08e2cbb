"""The scheduler cache: assumed pods, confirmation, and pods that arrive before their node."""

from __future__ import annotations

from shoal.scheduler.cache import SchedulerCache
from shoal.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import node, pod


def info(name: str, cpu: str = "1") -> PodInfo:
    return PodInfo.of(pod(name, cpu=cpu))


def requested(cache: SchedulerCache, name: str) -> int:
    found = cache.node(name)
    assert found is not None
    return found.requested_cpu


def test_an_assumed_pod_counts_at_once_and_can_be_forgotten() -> None:
    cache = SchedulerCache()
    cache.upsert_node(node("n1"))
    cache.assume(info("a"), "n1")
    assert (requested(cache, "n1"), cache.is_assumed("default/a"), len(cache)) == (1000, True, 1)
    cache.forget("default/a")
    assert (requested(cache, "n1"), cache.is_assumed("default/a"), len(cache)) == (0, False, 0)


def test_confirmation_replaces_the_assumption_even_on_another_node() -> None:
    cache = SchedulerCache()
    cache.upsert_node(node("n1"))
    cache.upsert_node(node("n2"))
    cache.assume(info("a"), "n1")
    cache.add_pod(info("a"), "n2")  # somebody else bound it
    assert (requested(cache, "n1"), requested(cache, "n2")) == (0, 1000)
    cache.forget("default/a")  # our binding failed afterwards: the confirmed pod stays
    assert (requested(cache, "n2"), cache.node_of("default/a")) == (1000, "n2")


def test_confirm_keeps_an_assumption_on_the_same_node_only() -> None:
    cache = SchedulerCache()
    cache.upsert_node(node("n1"))
    cache.upsert_node(node("n2"))
    cache.assume(info("a"), "n1")
    assert not cache.confirm("default/a", "n2")  # elsewhere: the caller must add_pod
    assert not cache.confirm("default/b", "n1")  # never assumed
    assert cache.confirm("default/a", "n1")
    assert (requested(cache, "n1"), cache.is_assumed("default/a"), len(cache)) == (1000, False, 1)
    cache.forget("default/a")  # confirmed: forgetting is a no-op
    assert requested(cache, "n1") == 1000


def test_pods_wait_for_their_node_and_survive_its_removal() -> None:
    cache = SchedulerCache()
    cache.add_pod(info("early"), "late-node")
    assert cache.node("late-node") is None
    cache.upsert_node(node("late-node"))
    assert requested(cache, "late-node") == 1000
    cache.remove_node("late-node")
    assert cache.nodes() == []
    cache.upsert_node(node("late-node"))
    assert requested(cache, "late-node") == 1000
    cache.remove_node("late-node")
    assert cache.remove_pod("default/early") is True
    cache.upsert_node(node("late-node"))
    assert requested(cache, "late-node") == 0


def test_node_list_is_rebuilt_only_when_nodes_come_or_go() -> None:
    cache = SchedulerCache()
    cache.upsert_node(node("n1"))
    first = cache.nodes()
    assert cache.upsert_node(node("n1")) is False
    assert cache.nodes() is first
    assert cache.upsert_node(node("n1", cpu="8")) is True
    assert cache.nodes() is first
    cache.upsert_node(node("n2"))
    assert [n.name for n in cache.nodes()] == ["n1", "n2"]


def test_removing_an_unknown_pod_is_a_no_op() -> None:
    cache = SchedulerCache()
    assert cache.remove_pod("default/ghost") is False
    cache.forget("default/ghost")
