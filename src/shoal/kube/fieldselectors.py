"""Kubernetes field selectors: parsing and matching.

Field selectors follow k8s.io/apimachinery/pkg/fields: ``f=v``, ``f==v``, ``f!=v`` joined by ``,``;
``\\,``, ``\\=`` and ``\\\\`` escape characters in values.  Field names are not checked here: the
caller checks them against what its resource supports (:meth:`FieldSelector.check_supported`).
Syntax errors raise :class:`~shoal.kube.errors.ApiError` 400 with Kubernetes' wording; an empty
selector matches everything.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from shoal.kube import errors


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    operator: str  # "=", "==" or "!="
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        equal = fields.get(self.field, "") == self.value
        return not equal if self.operator == "!=" else equal

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{'!=' if self.operator == '!=' else '='}{escaped}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def check_supported(self, supported: Collection[str]) -> None:
        """Raise ApiError 400 ``field label not supported: <name>`` for a field not in ``supported``."""
        for r in self.requirements:
            if r.field not in supported:
                raise errors.bad_request(f"field label not supported: {r.field}")

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if char == "," and not escaped:
            terms.append("".join(current))
            current = []
            continue
        current.append(char)
        escaped = char == "\\" and not escaped
    terms.append("".join(current))
    return terms


def _unescape(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise ValueError(f"invalid field selector: unescaped character in value: {char}")
        else:
            out.append(char)
    if escaped:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``fieldSelector`` query string.  Raises ApiError 400 on bad syntax."""
    requirements = []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        split = next(((i, op) for i in range(len(term)) for op in ("!=", "==", "=")
                      if term.startswith(op, i)), None)
        if split is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        i, op = split
        try:
            value = _unescape(term[i + len(op):])
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from exc
        requirements.append(FieldRequirement(term[:i], op, value))
    return FieldSelector(tuple(requirements))
