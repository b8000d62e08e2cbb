"""Generic validation of an object against its kind's OpenAPI schema.

This is the check Kubernetes does while decoding a request body, before any kind-specific
validation: JSON types, a few formats, and fields the schema does not know.  Kinds do the
semantic checks (required fields, ranges, immutability) in their own ``validate``.

:func:`validate_schema` returns a :class:`SchemaResult`:

* ``errors``: :class:`~shoal.kube.errors.FieldError` s.  A wrong JSON type is
  ``FieldValueTypeInvalid`` with the detail Kubernetes uses for schema errors, e.g.
  ``spec.replicas: Invalid value: "three": spec.replicas in body must be of type integer:
  "string"``.  A right type with a bad format (quantity, date-time, base64) is
  ``FieldValueInvalid``.
* ``unknown``: paths of fields the schema does not declare, in document order, in
  Kubernetes' path style (``spec.template.spec.containers[0].foo``).  The caller decides
  what to do with them from ``fieldValidation`` (Strict: fail with
  :func:`unknown_fields_message`; Warn: :func:`unknown_field_warnings`; Ignore: drop).

Rules (following Kubernetes' JSON decoding into its Go types):

* ``null`` is "not set" anywhere and always passes.
* ``integer`` accepts JSON integers only: not booleans, not numbers with a fraction or an
  exponent (``3.0`` is rejected, as Go rejects it for an int32).
* ``boolean`` and ``string`` are strict (``"true"`` is not a boolean, ``1`` not a string).
* int-or-string accepts an integer or a string.  A quantity accepts a number or a string
  matching Kubernetes' quantity grammar (surrounding spaces allowed).
* ``date-time`` strings must be RFC 3339 (``2025-01-01T00:00:00Z``); ``byte`` strings must
  be standard base64 (newlines ignored).
* Objects with ``properties`` report undeclared keys as unknown (unless the schema sets
  ``x-kubernetes-preserve-unknown-fields``); maps (``additionalProperties``) check each
  value, with the key in brackets (``metadata.labels[app]``); objects with neither are
  free-form.
* Required fields are not checked here.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shoal.kube.errors import FieldError
from shoal.kube.times import parse_rfc3339
from shoal.resources import schema as schemas

#: What Kubernetes reports for a malformed quantity (resource.ErrFormatWrong).
QUANTITY_MESSAGE = ("quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")

_QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                        r"(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})")


class UnknownKindError(LookupError):
    """No schema is published for the object's apiVersion and kind."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"no schema for kind {kind!r} in {api_version!r}")
        self.api_version = api_version
        self.kind = kind


@dataclass(slots=True)
class SchemaResult:
    errors: list[FieldError] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    #: Where each unknown field is: its parent object and key (parallel to ``unknown``), so
    #: :func:`prune` removes exactly that field whatever characters its name holds.
    unknown_at: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No type errors and no unknown fields."""
        return not self.errors and not self.unknown


def validate_schema(obj: dict[str, Any], api_version: str | None = None,
                    kind: str | None = None) -> SchemaResult:
    """Check ``obj`` against the schema of its kind (from ``obj`` unless given).

    Raises :class:`UnknownKindError` if the kind has no schema.
    """
    api_version = api_version if api_version is not None else str(obj.get("apiVersion", ""))
    kind = kind if kind is not None else str(obj.get("kind", ""))
    node = schemas.for_kind(api_version, kind)
    if node is None:
        raise UnknownKindError(api_version, kind)
    return validate_value(obj, node)


def validate_value(value: Any, node: schemas.Schema, path: str = "") -> SchemaResult:
    """Check any value against a schema node; ``path`` prefixes every reported path."""
    result = SchemaResult()
    _Walker(result).check(value, node, path)
    return result


def unknown_fields_message(paths: Iterable[str]) -> str:
    """Kubernetes' strict decoding error, e.g. ``strict decoding error: unknown field "spec.foo"``."""
    return "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in paths)


def unknown_field_warnings(paths: Iterable[str]) -> list[str]:
    """One ``Warning`` header text per unknown field (for ``fieldValidation=Warn``)."""
    return [f'unknown field "{p}"' for p in paths]


def json_type(value: Any) -> str:
    """The JSON type name Kubernetes reports for a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def is_quantity(value: Any) -> bool:
    """True for a number or a string in Kubernetes' quantity grammar."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _QUANTITY.fullmatch(value.strip()) is not None


def is_date_time(value: str) -> bool:
    """True for an RFC 3339 timestamp with a valid date and time."""
    if _DATE_TIME.fullmatch(value) is None:
        return False
    try:
        parse_rfc3339(value)
    except ValueError:
        return False
    return True


def is_base64(value: str) -> bool:
    try:
        base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Walker:
    def __init__(self, result: SchemaResult) -> None:
        self.result = result

    def check(self, value: Any, node: schemas.Schema, path: str) -> None:
        if value is None:
            return
        node = schemas.resolve(node)
        if node.get("x-kubernetes-int-or-string"):
            self._int_or_string(value, node.get("format") == "quantity", path)
            return
        kind = node.get("type")
        if kind == "object":
            self._object(value, node, path)
        elif kind == "array":
            if not isinstance(value, list):
                self._type_error(value, "array", path)
                return
            items = node.get("items", {})
            for index, item in enumerate(value):
                self.check(item, items, f"{path}[{index}]")
        elif kind == "string":
            self._string(value, node.get("format"), path)
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                self._type_error(value, "integer", path)
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._type_error(value, "number", path)
        elif kind == "boolean" and not isinstance(value, bool):
            self._type_error(value, "boolean", path)

    def _object(self, value: Any, node: schemas.Schema, path: str) -> None:
        if not isinstance(value, dict):
            self._type_error(value, "object", path)
            return
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props is not None:
            preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
            for key, item in value.items():
                sub = props.get(key)
                if sub is not None:
                    self.check(item, sub, _child(path, key))
                elif not preserve:
                    self.result.unknown.append(_child(path, key))
                    self.result.unknown_at.append((value, key))
        elif isinstance(extra, dict):
            for key, item in value.items():
                self.check(item, extra, f"{path}[{key}]")

    def _string(self, value: Any, fmt: str | None, path: str) -> None:
        if not isinstance(value, str):
            self._type_error(value, "string", path)
        elif fmt == "date-time" and not is_date_time(value):
            self._format_error(value, "date-time", path)
        elif fmt == "byte" and not is_base64(value):
            self._format_error(value, "byte", path)

    def _int_or_string(self, value: Any, quantity: bool, path: str) -> None:
        if quantity:
            if isinstance(value, str):
                if not is_quantity(value):
                    self.result.errors.append(FieldError(path, "FieldValueInvalid", QUANTITY_MESSAGE, value))
            elif not is_quantity(value):
                self._type_error(value, "integer,string", path)
        elif isinstance(value, bool) or not isinstance(value, int | str):
            self._type_error(value, "integer,string", path)

    def _type_error(self, value: Any, expected: str, path: str) -> None:
        actual = json_type(value)
        shown = actual if isinstance(value, dict | list) else value
        detail = f'{path} in body must be of type {expected}: "{actual}"'
        self.result.errors.append(FieldError(path, "FieldValueTypeInvalid", detail, shown))

    def _format_error(self, value: str, fmt: str, path: str) -> None:
        detail = f'{path} in body must be of type {fmt}: "{value}"'
        self.result.errors.append(FieldError(path, "FieldValueInvalid", detail, value))


def prune(result: SchemaResult) -> None:
    """Remove the unknown fields ``result`` found (``SchemaResult.unknown_at``) from the object
    it checked.

    Unknown fields are dropped, never stored as if honoured, when a client asks for
    ``fieldValidation=Ignore`` or ``Warn``.  The walk recorded each one's parent and key, so a
    name with ``.``, ``[`` or nothing in it removes that field and only that field.
    """
    for parent, key in result.unknown_at:
        parent.pop(key, None)
