"""TaintToleration: a node's NoSchedule/NoExecute taints must be tolerated; PreferNoSchedule
taints lower the score.

Matching (``v1.Toleration.ToleratesTaint``): a toleration with an ``effect`` matches only that
effect; one with a ``key`` only that key (an empty key with ``operator: Exists`` matches every
taint); ``operator: Exists`` ignores the value, ``Equal`` (the default) needs the same value.

Filter: the first NoSchedule/NoExecute taint no toleration matches makes the node fail with
``node(s) had untolerated taint {key: value}`` (UNRESOLVABLE).  The synthetic readiness taints
(see :mod:`shoal.scheduler.nodeinfo`) go through here too, so a NotReady node is reported as
``{node.kubernetes.io/not-ready: }``.

Score (weight 3): the number of PreferNoSchedule taints not tolerated by a toleration whose
effect is empty or PreferNoSchedule, normalised in reverse (fewest → 100).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shoal.scheduler.framework import NodeFilter, Status, default_normalize, unresolvable, vector_normalize
from shoal.scheduler.nodeinfo import NodeInfo, Taint
from shoal.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from shoal.scheduler.nodetable import NodeTable

__all__ = [
    "NAME",
    "TaintToleration",
    "Toleration",
    "TolerationScore",
    "first_untolerated",
    "pod_tolerations",
    "reason",
    "tolerates",
]

NAME = "TaintToleration"
FILTER_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def matches(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator in ("", "Equal") and self.value == taint.value


def pod_tolerations(pod: PodInfo) -> tuple[Toleration, ...]:
    return tuple(Toleration(str(t.get("key") or ""), str(t.get("operator") or "Equal"),
                            str(t.get("value") or ""), str(t.get("effect") or ""))
                 for t in pod.spec.get("tolerations") or () if isinstance(t, dict))


def tolerates(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(toleration.matches(taint) for toleration in tolerations)


def first_untolerated(tolerations: Sequence[Toleration], taints: Iterable[Taint],
                      effects: tuple[str, ...] = FILTER_EFFECTS) -> Taint | None:
    """The first taint with one of ``effects`` that no toleration matches."""
    for taint in taints:
        if taint.effect in effects and not tolerates(tolerations, taint):
            return taint
    return None


def reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


class TaintToleration:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> NodeFilter:
        tolerations = pod_tolerations(pod)
        memo: dict[tuple[Taint, ...], Status | None] = {}  # nodes often share their taints

        def check(node: NodeInfo) -> Status | None:
            taints = node.taints
            if not taints:
                return None
            if taints not in memo:
                taint = first_untolerated(tolerations, taints)
                memo[taints] = None if taint is None else unresolvable(NAME, reason(taint))
            return memo[taints]

        return check

    def vector_filter(self, pod: PodInfo, table: NodeTable) -> NDArray[np.bool_] | None:
        """Untainted rows pass; the tainted ones (few, usually) run the per-node check."""
        tainted = np.flatnonzero(table.tainted)
        if not len(tainted):
            return None
        check = self.pre_filter(pod)
        passing = ~table.tainted
        for row in tainted.tolist():
            passing[row] = check(table.nodes[row]) is None
        return passing


class TolerationScore:
    name = NAME
    weight = 3

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int] | None:
        tolerations = _score_tolerations(pod)
        counts = [_intolerable(tolerations, node) if node.taints else 0 for node in nodes]
        if not any(counts):
            return None
        return default_normalize(counts, reverse=True)

    def vector_score(self, pod: PodInfo, table: NodeTable, rows: NDArray[np.intp]) -> NDArray[np.int64] | None:
        tainted = np.flatnonzero(table.tainted[rows])
        if not len(tainted):
            return None
        tolerations = _score_tolerations(pod)
        counts = np.zeros(len(rows), np.int64)
        for position in tainted.tolist():
            counts[position] = _intolerable(tolerations, table.nodes[int(rows[position])])
        if not counts.any():
            return None
        return vector_normalize(counts, reverse=True)


def _score_tolerations(pod: PodInfo) -> list[Toleration]:
    return [t for t in pod_tolerations(pod) if t.effect in ("", "PreferNoSchedule")]


def _intolerable(tolerations: Sequence[Toleration], node: NodeInfo) -> int:
    """How many of the node's PreferNoSchedule taints ``tolerations`` do not tolerate."""
    return sum(1 for taint in node.taints if taint.effect == "PreferNoSchedule" and not tolerates(tolerations, taint))
