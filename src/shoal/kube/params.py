"""Typed numbers on the wire: query parameters and body fields, as Kubernetes decodes them.

Kubernetes turns every numeric query parameter (``limit``, ``timeoutSeconds``,
``gracePeriodSeconds``, ``tailLines``, ...) into an ``int64`` with Go's
``strconv.ParseInt(s, 10, 64)``, and every numeric body field (``DeleteOptions.gracePeriodSeconds``,
``Scale.spec.replicas``) with ``encoding/json`` into a fixed-width Go integer.  Whatever does not
fit is refused before anything runs: a 400 BadRequest that names the parameter or field.  The
functions here are that gate, so nothing past it sees a float, a NaN, a bool or an integer a
store, ``datetime`` or ``timedelta`` cannot hold.

* :func:`parse_int64`: a decimal integer with an optional sign (``+5``, ``-1``, ``007``), ASCII
  digits only (no spaces, underscores or other scripts' digits, which Python's ``int()`` would
  take), within ``[-2**63, 2**63 - 1]``.
* :func:`query_int64`: the same for a query parameter; ``None`` when it is absent or empty.
* :func:`parse_uint64`: ``resourceVersion`` as ``strconv.ParseUint`` reads it.
* :func:`json_int`: a decoded JSON value that must be an integer of a given width (``bool`` and
  floats such as ``1.0`` or ``1e3`` are refused, as Go's decoder refuses them for integer fields).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import QueryParams

from shoal.kube import errors

__all__ = ["INT64_MAX", "INT64_MIN", "UINT64_MAX", "json_int", "json_type", "parse_int64",
           "parse_uint64", "query_int64"]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")  # ParseUint takes no sign at all


def _shown(text: str) -> str:
    return text if len(text) <= 64 else text[:61] + "..."


def parse_int64(text: str, name: str) -> int:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 64)``; a 400 naming ``name`` otherwise."""
    if not _SIGNED.fullmatch(text):
        raise errors.bad_request(f'{name}: invalid integer value "{_shown(text)}"')
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise errors.bad_request(
            f'{name}: integer value "{_shown(text)}" is out of range (must fit in a 64-bit signed integer)')
    return value


def query_int64(params: QueryParams, name: str) -> int | None:
    """The query parameter ``name`` as an int64, or ``None`` when it is absent or empty."""
    text = params.get(name)
    if text is None or text == "":
        return None
    return parse_int64(text, name)


def parse_uint64(text: str, name: str) -> int:
    """``text`` as Go's ``strconv.ParseUint(text, 10, 64)`` (no sign); raises ``ValueError``.

    The caller words the error (Kubernetes' text differs by where the value came from)."""
    if not _UNSIGNED.fullmatch(text):
        raise ValueError(f'strconv.ParseUint: parsing "{_shown(text)}": invalid syntax')
    value = int(text)
    if value > UINT64_MAX:
        raise ValueError(f'strconv.ParseUint: parsing "{_shown(text)}": value out of range')
    return value


def json_int(value: Any, path: str, *, bits: int = 64) -> int:
    """A decoded JSON value that must be a ``bits``-wide signed integer; a 400 naming ``path``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.bad_request(f"{path}: must be an integer, not {json_type(value)}")
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if not low <= value <= high:
        raise errors.bad_request(f"{path}: integer value {_shown(str(value))} is out of range "
                                 f"(must fit in a {bits}-bit signed integer)")
    return value


def json_type(value: Any) -> str:
    """The JSON type of a decoded value in ``encoding/json``'s words ("string", "array", "number 1.5")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if isinstance(value, int) else f"number {value!r}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
