"""One scheduling decision: filter the nodes, score the feasible ones, pick the best.

:meth:`Algorithm.schedule` is pure computation over the cache (no I/O, no awaits), so
decisions are strictly sequential and each sees every pod assumed before it.

Filtering (Kubernetes' ``findNodesThatFitPod``): every filter plugin compiles the pod once
(``pre_filter``); each node then runs the compiled checks in plugin order and stops at the
first rejection, whose :class:`~shoal.scheduler.framework.Status` is kept for the failure
message.  Like Kubernetes (``percentageOfNodesToScore``), the search stops once enough
feasible nodes are found: all nodes below 100, else ``max(100, n * p / 100)`` with the
adaptive ``p = max(5, 50 - n / 125)`` when no percentage is configured (1000 nodes → 420).
The search starts where the previous one stopped (round robin), so every node is visited in
turn.  When too few nodes are feasible, every node has been tried and the statuses explain
each failure.

Scoring: each score plugin returns 0..100 per feasible node, multiplied by its weight and
summed; the highest total wins and ties are broken uniformly with the injected RNG.  A single
feasible node is taken without scoring.

Vector path: given the cache's :class:`~shoal.scheduler.nodetable.NodeTable`, the same
decision is made with one numpy mask per filter and one array per score (see
:mod:`shoal.scheduler.framework`) when every plugin has a vector form for the pod: the same
feasible nodes in the same round-robin order, the same totals, the same RNG draw, so the same
node.  Otherwise (host ports, node affinity, ...), and whenever no node is feasible (the
statuses are needed then), the per-node path decides.

Failure: :class:`FitError` carries one Status per node; :func:`fit_error_message` renders
Kubernetes' FailedScheduling text: counts per reason, sorted as strings, then the preemption
verdict (Shoal does not preempt: nodes that failed resolvably have "no victims", the others
are "not helpful"), e.g. ``0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't
match Pod's node affinity/selector. preemption: 0/3 nodes are available: 1 No preemption
victims found for incoming pod, 2 Preemption is not helpful for scheduling.``
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from shoal.scheduler.framework import (
    UNSUPPORTED,
    FilterPlugin,
    ScorePlugin,
    Status,
    VectorFilterPlugin,
    VectorScorePlugin,
)
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.nodetable import NodeTable
from shoal.scheduler.podinfo import PodInfo

__all__ = [
    "NOT_HELPFUL",
    "NO_NODES_MESSAGE",
    "NO_VICTIMS",
    "Algorithm",
    "FitError",
    "fit_error_message",
    "num_feasible_nodes_to_find",
]

NO_NODES_MESSAGE = "no nodes available to schedule pods"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50


def _histogram(counts: Mapping[str, int]) -> str:
    return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))


def fit_error_message(num_nodes: int, statuses: Mapping[str, Status]) -> str:
    """Kubernetes' FitError text for ``statuses`` (node name → why it failed)."""
    if num_nodes == 0:
        return NO_NODES_MESSAGE
    reasons: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    for status in statuses.values():
        reasons.update(status.reasons)
        verdicts[NO_VICTIMS if status.resolvable else NOT_HELPFUL] += 1
    return (f"0/{num_nodes} nodes are available: {_histogram(reasons)}. "
            f"preemption: 0/{num_nodes} nodes are available: {_histogram(verdicts)}.")


class FitError(Exception):
    """No node can take the pod; ``statuses`` says why, node by node."""

    def __init__(self, pod_key: str, num_nodes: int, statuses: dict[str, Status]) -> None:
        self.pod_key = pod_key
        self.num_nodes = num_nodes
        self.statuses = statuses
        self.message = fit_error_message(num_nodes, statuses)
        super().__init__(f"{pod_key}: {self.message}")


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes to look for before scoring (``percentage`` 0 = adaptive)."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_nodes
    if percentage <= 0:
        percentage = max(MIN_FEASIBLE_NODES_PERCENTAGE, BASE_PERCENTAGE_OF_NODES_TO_SCORE - num_nodes // 125)
    return max(MIN_FEASIBLE_NODES_TO_FIND, num_nodes * percentage // 100)


class Algorithm:
    """Filter + score over a node list.  Holds only the round-robin start index between pods."""

    def __init__(self, filters: Sequence[FilterPlugin], scores: Sequence[ScorePlugin], *,
                 rng: random.Random | None = None, percentage_of_nodes_to_score: int = 0) -> None:
        self.filters = list(filters)
        self.scores = list(scores)
        self.rng = rng or random.Random()
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self._next_start = 0
        #: Every plugin has a vector form (checked once: Protocol isinstance checks are slow).
        self._vector_filters = [p for p in self.filters if isinstance(p, VectorFilterPlugin)]
        self._vector_scores = [(p, p.weight) for p in self.scores if isinstance(p, VectorScorePlugin)]
        self._vectorized = (len(self._vector_filters) == len(self.filters)
                            and len(self._vector_scores) == len(self.scores))

    def schedule(self, pod: PodInfo, nodes: Sequence[NodeInfo], table: NodeTable | None = None) -> NodeInfo:
        """The node for ``pod``; raises :class:`FitError` when none fits.  With ``table`` (the
        columns of ``nodes``) the vector path is tried first."""
        if self._vectorized and table is not None and len(table) == len(nodes) and table.exact:
            chosen = self._schedule_vector(pod, table)
            if chosen is not None:
                return chosen
        feasible, statuses = self.find_feasible(pod, nodes)
        if not feasible:
            raise FitError(pod.key, len(nodes), statuses)
        if len(feasible) == 1:
            return feasible[0]
        totals = self.score(pod, feasible)
        best = max(totals)
        winners = [index for index, total in enumerate(totals) if total == best]
        return feasible[winners[0] if len(winners) == 1 else self.rng.choice(winners)]

    def find_feasible(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> tuple[list[NodeInfo], dict[str, Status]]:
        """The feasible nodes found (up to the sampling limit) and the failures met on the way."""
        checks = [check for plugin in self.filters if (check := plugin.pre_filter(pod)) is not None]
        count = len(nodes)
        wanted = num_feasible_nodes_to_find(count, self.percentage_of_nodes_to_score)
        start = self._next_start % count if count else 0
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        visited = 0
        for node in (*nodes[start:], *nodes[:start]):
            visited += 1
            for check in checks:
                status = check(node)
                if status is not None:
                    statuses[node.name] = status
                    break
            else:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
        self._next_start = (start + visited) % count if count else 0
        return feasible, statuses

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """The weighted total score of each node (same order)."""
        totals = [0] * len(nodes)
        for plugin in self.scores:
            scores = plugin.score(pod, nodes)
            if scores is None:
                continue
            weight = plugin.weight
            totals = [total + weight * score for total, score in zip(totals, scores, strict=True)]
        return totals

    def _schedule_vector(self, pod: PodInfo, table: NodeTable) -> NodeInfo | None:
        """The per-node decision computed over ``table`` (every plugin has a vector form);
        None when one of them cannot answer for ``pod`` (UNSUPPORTED) or no node is feasible
        (then nothing, not even the round-robin start, has changed)."""
        count = len(table)
        if not count:
            return None
        passing: NDArray[np.bool_] | None = None
        for plugin in self._vector_filters:
            mask = plugin.vector_filter(pod, table)
            if mask is UNSUPPORTED:
                return None
            if mask is not None:
                passing = mask if passing is None else passing & mask
        start = self._next_start % count
        order = (np.arange(count, dtype=np.intp) + start) % count
        positions = np.flatnonzero(passing[order]) if passing is not None else np.arange(count, dtype=np.intp)
        if not len(positions):
            return None
        wanted = num_feasible_nodes_to_find(count, self.percentage_of_nodes_to_score)
        visited = int(positions[wanted - 1]) + 1 if len(positions) >= wanted else count
        rows = order[positions[:wanted]]
        if len(rows) == 1:
            chosen = int(rows[0])
        else:
            totals = np.zeros(len(rows), np.int64)
            for scorer, weight in self._vector_scores:
                scores = scorer.vector_score(pod, table, rows)
                if scores is UNSUPPORTED:
                    return None
                if scores is not None:
                    totals += weight * scores
            winners = np.flatnonzero(totals == totals.max())
            pick = 0 if len(winners) == 1 else self.rng.randrange(len(winners))
            chosen = int(rows[int(winners[pick])])
        self._next_start = (start + visited) % count
        return table.nodes[chosen]
