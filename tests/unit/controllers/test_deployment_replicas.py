"""Deployment replica arithmetic: fenceposts, rolling-update moves, proportional scaling."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.controllers.deployment import replicas as r
from shoal.controllers.deployment.rolling import max_scaled_down, plan_scale_down, plan_unhealthy_cleanup
from shoal.controllers.deployment.template import HASH_LABEL
from shoal.kube.objects import Obj


def deployment(replicas: int, surge: Any = "25%", unavailable: Any = "25%", **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web"}}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}, **spec}}


def rs(name: str, replicas: int, available: int = 0, created: str = "2024-01-01T00:00:00Z",
       revision: int | None = None, image: str = "v1", annotations: dict[str, str] | None = None) -> Obj:
    notes = dict(annotations or {})
    if revision is not None:
        notes[r.REVISION] = str(revision)
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": notes},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": {"app": "web", HASH_LABEL: name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": replicas, "availableReplicas": available}}


@pytest.mark.parametrize(("value", "total", "up", "expected"), [
    (3, 10, True, 3), ("25%", 10, True, 3), ("25%", 10, False, 2), ("25%", 2, True, 1), ("25%", 2, False, 0),
    ("100%", 7, False, 7), ("0%", 7, True, 0), ("33%", 3, True, 1), ("33%", 3, False, 0),
])
def test_percentages_round_surge_up_and_unavailable_down(value: Any, total: int, up: bool, expected: int) -> None:
    assert r.scaled_value(value, total, up) == expected


@pytest.mark.parametrize("bad", ["25", "x%", True, None, 2.5])
def test_bad_int_or_percent_values_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="int-or-percent"):
        r.scaled_value(bad, 10, True)


def test_fenceposts_follow_kubernetes() -> None:
    assert r.resolve_fenceposts("25%", "25%", 10) == (3, 2)  # the worked example: 8..13 pods
    assert r.resolve_fenceposts("25%", "25%", 1) == (1, 0)
    assert r.resolve_fenceposts(0, "25%", 2) == (0, 1), "both 0 after rounding: unavailable becomes 1"
    d = deployment(10, 3, 2)
    assert (r.max_surge(d), r.max_unavailable(d)) == (3, 2)
    assert r.max_unavailable(deployment(2, 0, 5)) == 2, "never more unavailable than replicas"
    recreate = {"spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}
    assert (r.max_surge(recreate), r.max_unavailable(recreate)) == (0, 0)
    assert r.max_unavailable(deployment(0)) == 0


def test_the_new_replicaset_grows_within_the_surge() -> None:
    d = deployment(10, 3, 2)
    old, new = rs("old", 10, 10), rs("new", 0)
    assert r.new_rs_new_replicas(d, [old, new], new) == 3
    old["spec"]["replicas"] = 8
    new["spec"]["replicas"] = 3
    assert r.new_rs_new_replicas(d, [old, new], new) == 5
    old["spec"]["replicas"] = 0
    assert r.new_rs_new_replicas(d, [old, new], new) == 10, "never beyond replicas"
    assert r.new_rs_new_replicas({"spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}, [old, new], new) == 4


def test_worked_example_case_1_a_crashlooping_rollout_is_not_scaled_down_further() -> None:
    """10 replicas, maxUnavailable 2, maxSurge 3: old 8 (available), bad new 5 (none available)."""
    d = deployment(10, 3, 2)
    old, new = rs("old", 8, 7), rs("new", 5, 0)  # a node failure took one old pod
    assert max_scaled_down([old, new], new, d) == 13 - 8 - 5 == 0


def test_worked_example_case_1_after_undo_the_crashing_pods_go() -> None:
    d = deployment(10, 3, 2)
    good, bad = rs("good", 8, 7), rs("bad", 5, 0)  # undo: the good RS is new again
    most = max_scaled_down([bad, good], good, d)
    assert most == 13 - 8 - 1 == 4
    plan, total = plan_unhealthy_cleanup([bad], most)
    assert [(s["metadata"]["name"], size) for s, size in plan] == [("bad", 1)] and total == 4


def test_worked_example_case_2_rolling_over_makes_room_for_the_third_template() -> None:
    d = deployment(10, 3, 2)
    first, second, third = rs("first", 8, 8, "2024-01-01T00:00:00Z"), rs("second", 5, 5, "2024-01-02T00:00:00Z"), \
        rs("third", 0, 0, "2024-01-03T00:00:00Z")
    all_rss = [first, second, third]
    assert r.new_rs_new_replicas(d, all_rss, third) == 0, "13 pods already: the new RS starts at 0"
    assert max_scaled_down(all_rss, third, d) == 13 - 8 - 0 == 5
    plan, total = plan_scale_down(all_rss, [first, second], d)
    assert [(s["metadata"]["name"], size) for s, size in plan] == [("first", 3)] and total == 5, "oldest first"


def test_scale_down_keeps_min_available_and_ignores_pods_being_removed() -> None:
    d = deployment(4, 1, 1)
    old, new = rs("old", 4, 4), rs("new", 1, 1)
    plan, total = plan_scale_down([old, new], [old], d)
    assert [(s["metadata"]["name"], size) for s, size in plan] == [("old", 2)] and total == 2
    old["spec"]["replicas"] = 2  # status still says 4 available: it counts as at most 2
    assert plan_scale_down([old, new], [old], d) == ([], 0)


def test_unhealthy_cleanup_skips_healthy_and_lagging_replicasets() -> None:
    lagging = rs("lagging", 2, 3)  # just scaled down, status not caught up
    healthy = rs("healthy", 3, 3)
    sick = rs("sick", 3, 1, created="2024-02-01T00:00:00Z")
    plan, total = plan_unhealthy_cleanup([lagging, healthy, sick], 5)
    assert [(s["metadata"]["name"], size) for s, size in plan] == [("sick", 1)] and total == 2


def test_find_new_old_and_active_or_latest() -> None:
    d = deployment(3)
    d["spec"]["template"] = {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "v2"}]}}
    v1, v2 = rs("v1", 3, created="2024-01-01T00:00:00Z"), rs("v2", 0, image="v2", created="2024-01-02T00:00:00Z")
    assert r.find_new(d, [v1, v2]) is v2
    with_pods, every = r.find_old(d, [v1, v2])
    assert with_pods == [v1] and every == [v1]
    assert r.find_active_or_latest(v2, [v1]) is v1, "the only active one"
    v1["spec"]["replicas"] = 0
    assert r.find_active_or_latest(v2, [v1]) is v2, "none active: the new one"
    assert r.find_active_or_latest(None, [v1]) is v1, "none active, no new: the newest old one"
    v1["spec"]["replicas"] = v2["spec"]["replicas"] = 1
    assert r.find_active_or_latest(v2, [v1]) is None


def test_orderings() -> None:
    a = rs("a", 2, created="2024-01-01T00:00:00Z", revision=3)
    b = rs("b", 5, created="2024-01-02T00:00:00Z", revision=1)
    c = rs("c", 2, created="2024-01-03T00:00:00Z", revision=2)
    assert [x["metadata"]["name"] for x in r.by_creation([c, a, b])] == ["a", "b", "c"]
    assert [x["metadata"]["name"] for x in r.by_revision([a, b, c])] == ["b", "c", "a"]
    assert [x["metadata"]["name"] for x in r.by_size([a, b, c], newer_first=True)] == ["b", "c", "a"]
    assert [x["metadata"]["name"] for x in r.by_size([a, b, c], newer_first=False)] == ["b", "a", "c"]
    assert r.revision(rs("x", 1, annotations={r.REVISION: "junk"})) == 0


def test_proportional_shares_follow_the_max_replicas_annotation() -> None:
    # 10 replicas + surge 3 = 13 were spread 8/5; scaling to 20 (+5 surge = 25) adds 12.
    d = deployment(20, 5, 2)
    d["status"] = {"replicas": 13}
    big = rs("big", 8, annotations={r.MAX_REPLICAS: "13"})
    small = rs("small", 5, annotations={r.MAX_REPLICAS: "13"})
    first = r.proportion(big, d, 12, 0)
    second = r.proportion(small, d, 12, first)
    assert (first, second) == (round(8 * 25 / 13) - 8, round(5 * 25 / 13) - 5) == (7, 5)
    assert r.proportion(rs("zero", 0), d, 12, 0) == 0
    shrink = deployment(0)
    assert r.proportion(big, shrink, -13, 0) == -8


def test_round_half_away_from_zero_like_go() -> None:
    assert [r.round_half_away(x) for x in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4)] == [1, 2, 3, -1, -3, 2]


def test_saturation_needs_size_annotation_and_availability() -> None:
    d = deployment(3)
    assert r.is_saturated(d, rs("new", 3, 3, annotations={r.DESIRED_REPLICAS: "3"}))
    assert not r.is_saturated(d, rs("new", 3, 2, annotations={r.DESIRED_REPLICAS: "3"}))
    assert not r.is_saturated(d, rs("new", 3, 3, annotations={r.DESIRED_REPLICAS: "2"}))
    assert not r.is_saturated(d, None)
