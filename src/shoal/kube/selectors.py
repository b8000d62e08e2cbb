"""Kubernetes label selectors: parsing, matching and printing.

Label selectors follow k8s.io/apimachinery/pkg/labels: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x)``, ``a`` (exists), ``!a`` (does not exist), ``a>1``/``a<1`` (integer compare), joined by
``,`` (AND).  ``in``/``notin`` are keywords only where an operator is expected (``in=notin`` is a
valid requirement).  Keys must be qualified names (``[prefix/]name``), values valid label values.

Field selectors live in :mod:`shoal.kube.fieldselectors`.  This module is the one implementation
of label selectors: the API server's ``labelSelector`` queries, the controllers' and the
scheduler's matching of ``metav1.LabelSelector`` objects, validation and the printers all use it.

Invariants:

* Syntax errors raise :class:`~shoal.kube.errors.ApiError` 400 with Kubernetes' wording, e.g.
  ``unable to parse requirement: found '(', expected: identifier``.
* ``NotIn``/``!=`` match objects that lack the key, ``In``/``=`` never do (Kubernetes semantics).
* An empty selector matches everything; the null ``metav1.LabelSelector`` (``None``) matches nothing.
* :func:`matches` treats a selector that ``LabelSelectorAsSelector`` refuses (an unknown
  operator, a bad key) as matching nothing, as Kubernetes' controllers skip such a selector.
* ``str()`` prints what Kubernetes prints: requirements sorted by key, ``in``/``notin`` values sorted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shoal.kube import errors


class Op(StrEnum):
    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GT = "gt"
    LT = "lt"


_SPEC_OPS = {"In": Op.IN, "NotIn": Op.NOT_IN, "Exists": Op.EXISTS, "DoesNotExist": Op.DOES_NOT_EXIST}
_SYMBOL_OPS = {"=": Op.EQUALS, "==": Op.DOUBLE_EQUALS, "!=": Op.NOT_EQUALS, ">": Op.GT, "<": Op.LT}
_KEYWORD_OPS = {"in": Op.IN, "notin": Op.NOT_IN}
_EXACT = (Op.EQUALS, Op.DOUBLE_EQUALS, Op.NOT_EQUALS)
_INFIX = {Op.IN: " in ", Op.NOT_IN: " notin ", Op.EQUALS: "=", Op.DOUBLE_EQUALS: "==",
          Op.NOT_EQUALS: "!=", Op.GT: ">", Op.LT: "<"}
_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64 = range(-(2**63), 2**63)


def _key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and "/" in prefix:
        return "a qualified name must consist of an optional prefix and a name separated by one '/'"
    if slash and not prefix:
        return "prefix part must be non-empty"
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _NAME.fullmatch(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character")
    return None


def _value_problem(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _NAME.fullmatch(value):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                "'_' or '.', and must start and end with an alphanumeric character")
    return None


def _as_int64(text: str) -> int | None:
    if not _INTEGER.fullmatch(text):
        return None
    value = int(text)
    return value if value in _INT64 else None


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Op
    values: tuple[str, ...] = ()

    @classmethod
    def new(cls, key: str, operator: Op, values: Collection[str]) -> Requirement:
        """Build a validated requirement (Kubernetes' ``labels.NewRequirement``); raises ValueError."""
        if (problem := _key_problem(key)) is not None:
            raise ValueError(f'key: Invalid value: "{key}": {problem}')
        if operator in (Op.IN, Op.NOT_IN) and not values:
            raise ValueError("values: Invalid value: for 'in', 'notin' operators, values set can't be empty")
        if operator in _EXACT and len(values) != 1:
            raise ValueError("values: Invalid value: exact-match compatibility requires one single value")
        if operator in (Op.EXISTS, Op.DOES_NOT_EXIST) and values:
            raise ValueError("values: Invalid value: values set must be empty for exists and does not exist")
        if operator in (Op.GT, Op.LT):
            if len(values) != 1:
                raise ValueError("values: Invalid value: for 'Gt', 'Lt' operators, exactly one value "
                                 "is required")
            if _as_int64(next(iter(values))) is None:
                raise ValueError("values[0]: Invalid value: for 'Gt', 'Lt' operators, the value must be "
                                 "an integer")
        else:
            for i, value in enumerate(values):
                if (problem := _value_problem(value)) is not None:
                    raise ValueError(f'values[{i}]: Invalid value: "{value}": {problem}')
        return cls(key, operator, tuple(values))

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator is Op.EXISTS:
            return present
        if self.operator is Op.DOES_NOT_EXIST:
            return not present
        if self.operator in (Op.IN, Op.EQUALS, Op.DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (Op.NOT_IN, Op.NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        have = _as_int64(labels[self.key]) if present else None
        want = _as_int64(self.values[0]) if len(self.values) == 1 else None
        if have is None or want is None:
            return False
        return have > want if self.operator is Op.GT else have < want

    def __str__(self) -> str:
        if self.operator is Op.EXISTS:
            return self.key
        if self.operator is Op.DOES_NOT_EXIST:
            return f"!{self.key}"
        shown = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if self.operator in (Op.IN, Op.NOT_IN):
            shown = f"({shown})"
        return f"{self.key}{_INFIX[self.operator]}{shown}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """Requirements ANDed together.  ``nothing`` is the null selector, which matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @classmethod
    def of(cls, requirements: list[Requirement]) -> LabelSelector:
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    def empty(self) -> bool:
        """True when the selector matches every object."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# --- label selector string parser ----------------------------------------------------------------

_SPECIALS = "=!(),<>"
_WHITESPACE = " \t\r\n"
_END = "end of string"


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split into (kind, literal): kind is "id", "end" or the symbol itself ("!=", "(", ...)."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _WHITESPACE:
            i += 1
        elif char in _SPECIALS:
            symbol = text[i:i + 2] if text[i:i + 2] in ("==", "!=") else char
            out.append((symbol, symbol))
            i += len(symbol)
        else:
            start = i
            while i < len(text) and text[i] not in _WHITESPACE and text[i] not in _SPECIALS:
                i += 1
            out.append(("id", text[start:i]))
    out.append(("end", ""))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def selector(self) -> LabelSelector:
        requirements: list[Requirement] = []
        while True:
            kind, lit = self.peek()
            if kind == "end":
                return LabelSelector.of(requirements)
            if kind not in ("id", "!"):
                raise ValueError(f"found '{lit}', expected: !, identifier, or '{_END}'")
            try:
                requirements.append(self.requirement())
            except ValueError as exc:
                raise ValueError(f"unable to parse requirement: {exc}") from exc
            kind, lit = self.take()
            if kind == "end":
                return LabelSelector.of(requirements)
            if kind != ",":
                raise ValueError(f"found '{lit}', expected: ',' or '{_END}'")
            if self.peek()[0] not in ("id", "!"):
                raise ValueError(f"found '{self.peek()[1]}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = self.peek()[0] == "!"
        if negated:
            self.take()
        kind, key = self.take()
        if kind != "id":
            raise ValueError(f"found '{key}', expected: identifier")
        if (problem := _key_problem(key)) is not None:
            raise ValueError(f'key: Invalid value: "{key}": {problem}')
        if negated:
            return Requirement.new(key, Op.DOES_NOT_EXIST, ())
        if self.peek()[0] in ("end", ","):
            return Requirement.new(key, Op.EXISTS, ())
        kind, lit = self.take()
        operator = _SYMBOL_OPS.get(kind) or _KEYWORD_OPS.get(lit if kind == "id" else "")
        if operator is None:
            raise ValueError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        values = self.value_set() if operator in (Op.IN, Op.NOT_IN) else self.exact_value()
        return Requirement.new(key, operator, values)

    def exact_value(self) -> list[str]:
        if self.peek()[0] in ("end", ","):
            return [""]
        kind, lit = self.take()
        if kind != "id":
            raise ValueError(f"found '{lit}', expected: identifier")
        return [lit]

    def value_set(self) -> list[str]:
        kind, lit = self.take()
        if kind != "(":
            raise ValueError(f"found '{lit}', expected: '('")
        values: set[str] = set()
        expect_value = True  # at the start and after each ',': an identifier or another ',' may follow
        while True:
            kind, lit = self.take()
            if kind == ")":  # "()" gives no values, which Requirement.new rejects
                if expect_value and values:
                    values.add("")  # "(a,)" holds "a" and ""
                return sorted(values)
            if kind == "id" and expect_value:
                values.add(lit)
                expect_value = False
            elif kind == ",":
                if expect_value:
                    values.add("")  # "(,a)" and "(a,,b)" hold ""
                expect_value = True
            elif expect_value:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")
            else:
                raise ValueError(f"found '{lit}', expected: ',' or ')'")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query string.  Raises ApiError 400 on bad syntax."""
    try:
        return _Parser(text).selector()
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from exc


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Equality requirements for a plain map (a Service's ``spec.selector``); empty matches all."""
    return LabelSelector.of([Requirement(k, Op.EQUALS, (v,)) for k, v in (labels or {}).items()])


def label_selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Turn a ``metav1.LabelSelector`` object into a selector (``LabelSelectorAsSelector``).

    ``None`` matches nothing; ``{}`` matches everything.  Raises ApiError 400 when invalid."""
    if spec is None:
        return LabelSelector(nothing=True)
    try:
        match_labels = spec.get("matchLabels") or {}
        expressions = spec.get("matchExpressions") or []
        if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
            raise ValueError("matchLabels must be an object and matchExpressions a list")
        requirements = []
        for key, value in match_labels.items():
            if not isinstance(value, str):
                raise ValueError(f'matchLabels["{key}"] must be a string')
            requirements.append(Requirement.new(key, Op.EQUALS, [value]))
        for expr in expressions:
            if not isinstance(expr, Mapping):
                raise ValueError("each matchExpressions entry must be an object")
            name = expr.get("operator")
            operator = _SPEC_OPS.get(name) if isinstance(name, str) else None
            if operator is None:
                raise ValueError(f'"{name}" is not a valid label selector operator')
            values = expr.get("values") or []
            key = expr.get("key")
            if not isinstance(key, str) or not isinstance(values, list) or not all(
                    isinstance(v, str) for v in values):
                raise ValueError("matchExpressions entries need a string key and a list of string values")
            requirements.append(Requirement.new(key, operator, values))
    except ValueError as exc:
        raise errors.bad_request(f"invalid label selector: {exc}") from exc
    return LabelSelector.of(requirements)


def selector_to_string(spec: Mapping[str, Any] | None) -> str:
    """What Kubernetes prints for a ``metav1.LabelSelector`` (Scale ``status.selector``): ``app=web``."""
    return str(label_selector_from_spec(spec))


def format_label_selector(spec: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``, the ``-o wide`` SELECTOR column: ``<none>`` when empty."""
    try:
        text = selector_to_string(spec)
    except errors.ApiError:
        return "<error>"
    return text or "<none>"


def is_empty_spec(spec: Any) -> bool:
    """True for a ``metav1.LabelSelector`` with no requirements (``{}`` selects everything);
    False for ``None`` (which selects nothing) and for any selector with requirements."""
    return isinstance(spec, Mapping) and not spec.get("matchLabels") and not spec.get("matchExpressions")


def _spec_key(spec: Mapping[str, Any]) -> Any:
    match_labels = spec.get("matchLabels") or {}
    expressions = spec.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise TypeError("not a label selector")
    return (tuple(sorted(match_labels.items())),
            tuple((e.get("key"), e.get("operator"), tuple(e.get("values") or ())) for e in expressions))


@functools.lru_cache(maxsize=4096)
def _compiled(key: Any) -> LabelSelector | None:
    match_labels, expressions = key
    spec = {"matchLabels": dict(match_labels),
            "matchExpressions": [{"key": k, "operator": op, "values": list(values)} for k, op, values in expressions]}
    try:
        return label_selector_from_spec(spec)
    except errors.ApiError:
        return None


def compile_spec(spec: Any) -> LabelSelector | None:
    """The selector of a ``metav1.LabelSelector``, parsed once per distinct selector (cached);
    ``None`` when Kubernetes would refuse it.  ``None`` as input gives the match-nothing selector."""
    if spec is None:
        return LabelSelector(nothing=True)
    if not isinstance(spec, Mapping):
        return None
    try:
        key = _spec_key(spec)
        hash(key)
    except (TypeError, AttributeError):  # malformed parts (not maps, lists and strings): refused
        return None
    return _compiled(key)


def matches(spec: Any, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy the ``metav1.LabelSelector`` ``spec``: ``None`` matches nothing,
    ``{}`` everything, and a selector Kubernetes refuses matches nothing."""
    selector = compile_spec(spec)
    return selector is not None and selector.matches(labels)
