"""The one bounded decoder for request bodies: size, nesting depth, duplicate keys.

Every request body the API parses (create, update and subresource bodies in JSON or YAML,
the three PATCH kinds, server-side apply, DeleteOptions) goes through this module, so a
malformed or hostile body is a 4xx Kubernetes Status that names the problem, never a 500:

* **Size**: :func:`read_body` reads at most :data:`MAX_BODY_BYTES` (3 MiB, kube-apiserver's
  ``MaxRequestBodyBytes``) and answers 413 ``RequestEntityTooLarge`` "Request entity too large:
  limit is 3145728" past it, from ``Content-Length`` before reading or while streaming.
* **Depth**: objects and lists may nest at most :data:`MAX_DEPTH` (100) levels, the root being
  level 1.  Kubernetes allows 10,000 (Go's JSON scanner); Shoal's later steps (schema
  validation, strategic merge, server-side apply, ``copy.deepcopy``) recurse once or a few
  times per level under Python's recursion limit of 1,000, and orjson refuses to encode more
  than 254 levels, so 100 leaves room for managedFields (object depth + 4), list and watch
  envelopes and the handler's own stack.  Real manifests are far shallower: a CRD whose schema
  embeds a whole CronJob pod template is about 40 levels deep.  Deeper bodies are 400
  BadRequest "... exceeded max depth of 100 nested objects and lists at <where>".
  JSON is parsed by orjson (C, refuses more than 1,024 levels by itself) and then measured
  with an iterative walk; YAML is measured on its parser's events (also iterative) before a
  single node is composed (see :mod:`shoal.api.decode_yaml`).  Hence every value a decoder
  returns is at most :data:`MAX_DEPTH` deep, and the patch engines keep results within it.
* **Duplicate keys**: kept last-wins, as Kubernetes does, and reported as Kubernetes' strict
  decoding errors: ``duplicate field "metadata.labels.a"`` (JSON; the path as sigs.k8s.io/json
  writes it) or ``line 3: key "a" already set in map`` (YAML).  :func:`report_duplicates` turns
  them into a 400 "strict decoding error: ..." under ``fieldValidation=Strict``, ``Warning``
  headers under ``Warn``, and nothing under ``Ignore``.  Finding them costs counting colons in
  the body and in orjson's re-encoding of it; only a body with duplicates (or an escaped
  colon) is parsed a second time, for their paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.requests import Request

from shoal.kube import errors

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "Decoded",
    "FieldValidation",
    "checked_json",
    "cut",
    "decode_json",
    "depth_error",
    "is_depth_error",
    "measure",
    "read_body",
    "report_duplicates",
    "too_deep_at",
    "too_large",
]

#: kube-apiserver's default ``--max-request-body-bytes`` (``MaxRequestBodyBytes``).
MAX_BODY_BYTES = 3 * 1024 * 1024
#: Most nesting of objects and lists in a body, the root object or list being level 1.
MAX_DEPTH = 100
#: Kubernetes stops collecting strict decoding errors after this many (sigs.k8s.io/json).
MAX_STRICT_ERRORS = 100
#: The longest place an error message names (a field path is cut after this many characters).
MAX_WHERE = 120

_CONTAINERS = (dict, list)
# A colon written as a JSON escape: the fast duplicate test cannot see it.
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")

#: A field path as a linked list, innermost last: ``((None, "spec"), "containers")``.
_Path = tuple["_Path", str | int] | None


class FieldValidation(Protocol):
    """What :func:`report_duplicates` needs of a request (``WriteContext`` has both)."""

    field_validation: str
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded body and its duplicate keys, as Kubernetes' strict decoding error texts."""

    value: Any
    duplicates: tuple[str, ...] = ()


def too_large(limit: int = MAX_BODY_BYTES) -> errors.ApiError:
    return errors.ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 when it is longer than ``limit`` bytes.

    A ``Content-Length`` over the limit is refused before anything is read; a chunked body is
    refused as soon as what arrived passes the limit, so no more than ``limit`` bytes (plus
    one chunk) are ever held."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def depth_error(what: str, where: str) -> errors.ApiError:
    """400 for a body nested deeper than :data:`MAX_DEPTH`; ``what`` is e.g. "JSON request body".

    ``where`` (a field path, a line or an offset) is :func:`cut`: a path of 100 long keys must
    not make a message of megabytes."""
    return errors.bad_request(
        f"error decoding {what}: exceeded max depth of {MAX_DEPTH} nested objects and lists at {cut(where)}")


def cut(text: str) -> str:
    """``text`` cut to :data:`MAX_WHERE` characters for a message or a Warning header."""
    return text if len(text) <= MAX_WHERE else text[:MAX_WHERE] + "..."


def too_deep_at(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """Where ``value`` nests more than ``limit`` objects and lists (a field path), or None.

    Iterative, so it is safe on any value orjson or the YAML composer can build."""
    if not isinstance(value, _CONTAINERS):
        return None
    stack: list[tuple[Any, int, _Path]] = [(value, 1, None)]
    while stack:
        node, depth, path = stack.pop()
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(child, _CONTAINERS):
                if depth >= limit:
                    return _path_text((path, key))
                stack.append((child, depth + 1, (path, key)))
    return None


def measure(value: Any) -> int:
    """The nesting depth of ``value`` (0 for a scalar, 1 for ``{}``); iterative."""
    if not isinstance(value, _CONTAINERS):
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
    return deepest


def decode_json(body: bytes, what: str = "JSON request body") -> Decoded:
    """Decode a JSON body within :data:`MAX_DEPTH`; 400 naming ``what`` when it is not."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise depth_error(what, f"char {exc.pos}") from exc
        raise errors.bad_request(f"error decoding {what}: {exc}") from exc
    return checked_json(body, value, what)


def is_depth_error(exc: orjson.JSONDecodeError) -> bool:
    """orjson refused the body for nesting more than 1,024 levels."""
    return str(exc).startswith("depth limit exceeded")


def checked_json(body: bytes, value: Any, what: str) -> Decoded:
    """``value`` (orjson's reading of ``body``) checked for depth, with its duplicate keys."""
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH:  # else it cannot nest deeper: skip the walk
        where = too_deep_at(value)
        if where is not None:
            raise depth_error(what, where)
    return Decoded(value, _json_duplicates(body, value))


def report_duplicates(decoded: Decoded, request: FieldValidation | None) -> Any:
    """``decoded.value``, after dealing with its duplicate keys as ``fieldValidation`` says."""
    if decoded.duplicates and request is not None:
        if request.field_validation == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(decoded.duplicates))
        if request.field_validation == "Warn":
            request.warnings.extend(decoded.duplicates)
    return decoded.value


# -- duplicate keys in JSON ----------------------------------------------------------------


def _path_text(path: _Path) -> str:
    """sigs.k8s.io/json's field path: keys joined by ".", list indexes as "[i]"."""
    parts: list[str | int] = []
    while path is not None:
        path, last = path
        parts.append(last)
    text = ""
    for part in reversed(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "<root>"


def _json_duplicates(body: bytes, value: Any) -> tuple[str, ...]:
    """The duplicate keys of ``body``, which orjson read as ``value`` (last one winning).

    Fast test, exact unless the body escapes a colon: every ``:`` of a JSON text either
    follows a key or lies inside a string, and orjson writes colons unescaped; so the body has
    more colons than ``orjson.dumps(value)`` exactly when some key was written twice (its
    separator, and any colon in a value it replaced, are gone from ``value``)."""
    if not isinstance(value, _CONTAINERS):
        return ()
    if _ESCAPED_COLON.search(body) is None and body.count(b":") == orjson.dumps(value).count(b":"):
        return ()
    # Perhaps some object repeats a key: parse again keeping every pair (the depth is bounded).
    found: list[str] = []
    _collect(json.loads(body, object_pairs_hook=_Pairs.of), None, found)
    return tuple(dict.fromkeys(found))[:MAX_STRICT_ERRORS]  # Kubernetes reports each once


class _Pairs(dict[str, Any]):
    """A decoded object that keeps its key/value pairs as written, repeated keys included."""

    __slots__ = ("pairs",)
    pairs: list[tuple[str, Any]]

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _Pairs:
        obj = cls(pairs)
        obj.pairs = pairs
        return obj


def _collect(node: Any, path: _Path, found: list[str]) -> None:
    """Duplicate paths in document order, as Go's decoder meets them (values that a later
    duplicate replaced are searched too).  Recursive, but only over a depth-checked value."""
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, child in node.pairs:
            if key in seen:
                found.append(f'duplicate field "{cut(_path_text((path, key)))}"')
            seen.add(key)
            _collect(child, (path, key), found)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            _collect(child, (path, index), found)
