"""NodeAffinity: ``spec.nodeSelector`` and ``affinity.nodeAffinity`` (required and preferred).

Filter: every ``nodeSelector`` label must be on the node with that value, and, when
``requiredDuringSchedulingIgnoredDuringExecution`` is set, at least one of its
``nodeSelectorTerms`` must match.  A term matches when all its ``matchExpressions`` (on
labels) and ``matchFields`` (only ``metadata.name``) hold; a term with neither matches
nothing.  Operators: ``In`` (label present, value listed), ``NotIn`` (label absent or value
not listed), ``Exists``, ``DoesNotExist``, ``Gt`` / ``Lt`` (label and the single value are
integers and compare so); ``matchFields`` take ``In`` / ``NotIn``.  An unknown operator or a
malformed value never matches.  Reason: ``node(s) didn't match Pod's node affinity/selector``
(UNRESOLVABLE), the same for both, as in Kubernetes.

Score (weight 2): the sum of the ``weight`` of each matching
``preferredDuringSchedulingIgnoredDuringExecution`` term, normalised so the best node gets 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shoal.kube.objects import Obj
from shoal.scheduler.framework import UNSUPPORTED, NodeFilter, Status, Unsupported, default_normalize, unresolvable
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import PodInfo

__all__ = [
    "NAME",
    "REASON",
    "NodeAffinity",
    "PreferredAffinity",
    "match_expression",
    "match_field",
    "match_term",
    "match_terms",
]

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
_FAILED = unresolvable(NAME, REASON)


def _values(requirement: Obj) -> list[str]:
    values = requirement.get("values")
    return [str(value) for value in values] if isinstance(values, list) else []


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def match_expression(requirement: Obj, labels: Mapping[str, str]) -> bool:
    """One ``matchExpressions`` entry against a node's labels."""
    key, operator = str(requirement.get("key") or ""), requirement.get("operator")
    present = key in labels
    if operator == "In":
        return present and labels[key] in _values(requirement)
    if operator == "NotIn":
        return not present or labels[key] not in _values(requirement)
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        values = _values(requirement)
        if not present or len(values) != 1:
            return False
        have, bound = _integer(labels[key]), _integer(values[0])
        if have is None or bound is None:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def match_field(requirement: Obj, node_name: str) -> bool:
    """One ``matchFields`` entry: only ``metadata.name`` with ``In`` / ``NotIn`` exists."""
    if requirement.get("key") != "metadata.name":
        return False
    operator = requirement.get("operator")
    if operator == "In":
        return node_name in _values(requirement)
    if operator == "NotIn":
        return node_name not in _values(requirement)
    return False


def match_term(term: Obj, labels: Mapping[str, str], node_name: str) -> bool:
    expressions = [e for e in term.get("matchExpressions") or () if isinstance(e, dict)]
    fields = [f for f in term.get("matchFields") or () if isinstance(f, dict)]
    if not expressions and not fields:
        return False
    return (all(match_expression(e, labels) for e in expressions)
            and all(match_field(f, node_name) for f in fields))


def match_terms(terms: Sequence[Obj], labels: Mapping[str, str], node_name: str) -> bool:
    """``nodeSelectorTerms`` are ORed."""
    return any(match_term(term, labels, node_name) for term in terms)


def _node_affinity(pod: PodInfo) -> Obj:
    affinity = pod.spec.get("affinity") or {}
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, dict) else None
    return node_affinity if isinstance(node_affinity, dict) else {}


class NodeAffinity:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> NodeFilter | None:
        selector = pod.spec.get("nodeSelector") or {}
        wanted = [(str(k), str(v)) for k, v in selector.items()] if isinstance(selector, dict) else []
        required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
        terms: list[Obj] | None = None
        if isinstance(required, dict):
            terms = [t for t in required.get("nodeSelectorTerms") or () if isinstance(t, dict)]
        if not wanted and terms is None:
            return None

        def check(node: NodeInfo) -> Status | None:
            labels = node.labels
            for key, value in wanted:
                if labels.get(key) != value:
                    return _FAILED
            if terms is not None and not match_terms(terms, labels, node.name):
                return _FAILED
            return None

        return check

    def vector_filter(self, pod: PodInfo, table: object) -> Unsupported | None:
        return UNSUPPORTED if self.pre_filter(pod) is not None else None


class PreferredAffinity:
    name = NAME
    weight = 2

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int] | None:
        terms = _preferred_terms(pod)
        if not terms:
            return None
        raw = [sum(weight for weight, term in terms if match_term(term, node.labels, node.name))
               for node in nodes]
        return default_normalize(raw)

    def vector_score(self, pod: PodInfo, table: object, rows: object) -> Unsupported | None:
        return UNSUPPORTED if _preferred_terms(pod) else None


def _preferred_terms(pod: PodInfo) -> list[tuple[int, Obj]]:
    preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
    terms = [(int(p.get("weight") or 0), p.get("preference") or {})
             for p in preferred or () if isinstance(p, dict)]
    return [(weight, term) for weight, term in terms if weight and isinstance(term, dict)]
