"""The scheduler's plugin framework: extension-point Protocols, the Status type, score helpers.

Modelled on Kubernetes' scheduler framework (pkg/scheduler/framework/interface.go), reduced
to the two extension points Shoal uses and shaped for Python's costs:

* A :class:`FilterPlugin` is asked once per pod (:meth:`FilterPlugin.pre_filter`, the
  PreFilter point) and answers with a :data:`NodeFilter`: a function of one node that returns
  ``None`` when the node passes, or a :class:`Status` saying why not.  ``pre_filter`` returns
  ``None`` when the plugin has nothing to check for this pod (Kubernetes' ``Skip``), so e.g. a
  pod without host ports never pays for the NodePorts check.  Compiling the pod's constraint
  once keeps the per-node work to a few comparisons.
* A :class:`ScorePlugin` scores every feasible node at once (:meth:`ScorePlugin.score`) and
  returns integers already normalised to ``0..MAX_NODE_SCORE`` (Score + NormalizeScore in
  one call), or ``None`` when it does not apply to the pod.  The framework adds them up,
  each multiplied by the plugin's ``weight``.

Vector forms (an optional ability, as separate Protocols): a plugin may also answer for all
nodes at once over the cache's :class:`~shoal.scheduler.nodetable.NodeTable` —
:meth:`VectorFilterPlugin.vector_filter` a boolean mask over its rows,
:meth:`VectorScorePlugin.vector_score` the scores of the given rows — with exactly the
per-node form's answers, or :data:`UNSUPPORTED` for a pod it cannot handle that way (host
ports, node affinity...).  The algorithm takes the vector path only when every plugin
answers; ``tests/unit/scheduler/test_vector.py`` checks both paths choose alike.

Plugins are stateless between pods and never mutate the :class:`NodeInfo` or
:class:`PodInfo` they are given.  Their decision logic lives in pure module-level functions
(``fits``, ``tolerates``, ``match_term`` ...) that the unit tests call directly.

Status codes (what the scheduling queue does with them is the scheduler's business):
``UNSCHEDULABLE`` — the node does not fit now but might after pods leave (preemption could
help); ``UNRESOLVABLE`` — Kubernetes' UnschedulableAndUnresolvable: the node can never take
this pod as it stands (wrong labels, taints, more than it has in total).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from shoal.scheduler.nodetable import NodeTable

__all__ = [
    "MAX_NODE_SCORE",
    "UNSUPPORTED",
    "Code",
    "FilterPlugin",
    "NodeFilter",
    "ScorePlugin",
    "Status",
    "Unsupported",
    "VectorFilterPlugin",
    "VectorScorePlugin",
    "default_normalize",
    "unresolvable",
    "unschedulable",
    "vector_normalize",
]

MAX_NODE_SCORE = 100


class Code(enum.Enum):
    UNSCHEDULABLE = "Unschedulable"
    UNRESOLVABLE = "UnschedulableAndUnresolvable"


@dataclass(frozen=True, slots=True)
class Status:
    """Why a node cannot take a pod.  ``reasons`` are the phrases counted in FailedScheduling."""

    code: Code
    reasons: tuple[str, ...]
    plugin: str = ""

    @property
    def resolvable(self) -> bool:
        """Whether removing pods from the node could make it fit (preemption would help)."""
        return self.code is Code.UNSCHEDULABLE


def unschedulable(plugin: str, *reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons, plugin)


def unresolvable(plugin: str, *reasons: str) -> Status:
    return Status(Code.UNRESOLVABLE, reasons, plugin)


#: One pod's compiled constraint: ``None`` if the node passes, else why it does not.
NodeFilter = Callable[[NodeInfo], Status | None]


class FilterPlugin(Protocol):
    """Rules a node must satisfy to run the pod (Kubernetes' PreFilter + Filter)."""

    @property
    def name(self) -> str: ...

    def pre_filter(self, pod: PodInfo) -> NodeFilter | None:
        """The per-node check for ``pod``, or ``None`` if this plugin has nothing to check."""
        ...


class ScorePlugin(Protocol):
    """Ranks feasible nodes (Kubernetes' Score + NormalizeScore)."""

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int: ...

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int] | None:
        """One score in ``0..MAX_NODE_SCORE`` per node (same order), or ``None`` if n/a."""
        ...


def default_normalize(scores: list[int], *, reverse: bool = False) -> list[int]:
    """Kubernetes' DefaultNormalizeScore: scale so the best raw score becomes 100.

    ``reverse`` turns "more is worse" raw values (e.g. a count of intolerable taints) into
    scores: ``100 - scaled``.  Worked example: raw ``[0, 2, 4]`` gives ``[0, 50, 100]``,
    reversed ``[100, 50, 0]``.  All-zero raw scores give all 0 (all 100 when reversed)."""
    highest = max(scores, default=0)
    if highest == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in scores]
    scaled = [MAX_NODE_SCORE * score // highest for score in scores]
    return [MAX_NODE_SCORE - score for score in scaled] if reverse else scaled


def vector_normalize(scores: NDArray[np.int64], *, reverse: bool = False) -> NDArray[np.int64]:
    """:func:`default_normalize` over an array (the same integers)."""
    highest = int(scores.max()) if len(scores) else 0
    if highest == 0:
        return np.full(len(scores), MAX_NODE_SCORE if reverse else 0, np.int64)
    scaled: NDArray[np.int64] = MAX_NODE_SCORE * scores // highest
    return MAX_NODE_SCORE - scaled if reverse else scaled


class Unsupported(enum.Enum):
    """A vector form's answer for a pod it cannot handle: use the per-node form."""

    UNSUPPORTED = "unsupported"


UNSUPPORTED = Unsupported.UNSUPPORTED


@runtime_checkable
class VectorFilterPlugin(Protocol):
    def vector_filter(self, pod: PodInfo, table: NodeTable) -> NDArray[np.bool_] | Unsupported | None:
        """Which rows pass (``None``: all of them), exactly as ``pre_filter``'s check would say."""
        ...


@runtime_checkable
class VectorScorePlugin(Protocol):
    def vector_score(self, pod: PodInfo, table: NodeTable,
                     rows: NDArray[np.intp]) -> NDArray[np.int64] | Unsupported | None:
        """The scores of ``rows`` (in that order), exactly as :meth:`ScorePlugin.score` gives
        for those nodes (``None`` where it gives ``None``)."""
        ...
