"""PATCH bodies applied to live objects: JSON patch, JSON merge patch, strategic merge patch.

Contract: :func:`apply_patch` ``(live, patch_body, content_type)`` is pure: it returns a new
object and never mutates ``live``.  The media type (parameters such as ``charset`` ignored)
selects the engine:

* ``application/json-patch+json`` — RFC 6902 through the ``jsonpatch`` library, one operation
  at a time so that errors name the operation and path.  A malformed patch (not a list, an
  unknown op, a path not starting with ``/``, a missing ``value``) is 400 BadRequest; an
  operation that does not apply (failed ``test``, missing path) is 422 Invalid, as the
  Kubernetes API server answers (``testing value /spec/replicas failed: test failed``).
* ``application/merge-patch+json`` — RFC 7386: objects merge recursively, ``null`` deletes,
  anything else (lists included) replaces.
* ``application/strategic-merge-patch+json`` — Kubernetes SMP, see :mod:`shoal.api.strategic`.

Server-side apply (``application/apply-patch+yaml``) is not a patch of the live object and
lives in :mod:`shoal.api.apply`; here it, like any other media type, is 415.

Bounds (see :mod:`shoal.api.decode`): :func:`decode_patch` reads the body with the bounded
JSON decoder (400 "error decoding patch: ... exceeded max depth of 100 ..."; duplicate keys
reported as ``fieldValidation`` says), so every engine recurses at most
:data:`~shoal.api.decode.MAX_DEPTH` levels.  A JSON patch holds at most 10,000 operations
(Kubernetes' ``maxJSONPatchOperations``, else 413); its ``copy`` operations copy at most
:data:`~shoal.api.decode.MAX_BODY_BYTES` in total, and no operation may nest the document
deeper than ``MAX_DEPTH`` (both 422, checked before the operation runs, so an amplifying
patch never gets to build its result).  Merge and strategic patches cannot deepen the live
object beyond the patch's own depth.

Invariants: the result is always a JSON object, nested at most ``MAX_DEPTH`` levels (else 422),
and holds no SMP ``$`` directive keys.  A body is decoded once per request
(:func:`decode_patch`); :func:`apply_patch` may then run on each retry of a conflicting write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer
import orjson

from shoal.api.bodies import clone
from shoal.api.decode import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    FieldValidation,
    decode_json,
    measure,
    report_duplicates,
    too_deep_at,
)
from shoal.api.strategic import strategic_merge
from shoal.kube import errors
from shoal.kube.objects import Obj

__all__ = [
    "JSON_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "Patch",
    "apply_patch",
    "decode_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
#: kube-apiserver's ``maxJSONPatchOperations``.
MAX_JSON_PATCH_OPERATIONS = 10_000

_OPS = ("add", "remove", "replace", "move", "copy", "test")


@dataclass(frozen=True, slots=True)
class Patch:
    """A decoded PATCH body: its media type (parameters dropped) and its JSON value."""

    media: str
    value: Any


def decode_patch(body: bytes, content_type: str, request: FieldValidation | None = None) -> Patch:
    """Decode a PATCH body once: 415 for an unknown media type, 400 for a malformed body."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        raise errors.unsupported_media_type(content_type)
    value = report_duplicates(decode_json(body, "patch"), request)
    if media == JSON_PATCH:
        if not isinstance(value, list):
            raise errors.bad_request("json patch must be a JSON array of operations")
        if len(value) > MAX_JSON_PATCH_OPERATIONS:
            raise errors.ApiError(413, "RequestEntityTooLarge", "Request entity too large: The allowed "
                                  f"maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
                                  f"got {len(value)}")
    elif not isinstance(value, dict):
        name = "merge patch" if media == MERGE_PATCH else "strategic merge patch"
        raise errors.bad_request(f"{name} body must be a JSON object")
    return Patch(media, value)


def apply_patch(live: Obj, patch: bytes | Patch, content_type: str = "", *, kind: str | None = None) -> Obj:
    """Apply a PATCH (a request body and its ``content_type``, or a decoded :class:`Patch`) to ``live``.

    ``kind`` selects the strategic-merge list table; it defaults to ``live["kind"]``.
    Raises :class:`~shoal.kube.errors.ApiError`: 415 for an unknown media type, 400 for an
    undecodable or malformed patch, 422 for a JSON patch operation that does not apply or a
    result nested too deep.
    """
    if isinstance(patch, bytes):
        patch = decode_patch(patch, content_type)
    if patch.media == JSON_PATCH:
        result: Any = json_patch(live, patch.value)
    elif patch.media == MERGE_PATCH:
        result = merge_patch(live, patch.value)
    else:
        result = strategic_merge(live, patch.value, kind if kind is not None else str(live.get("kind", "")))
    if not isinstance(result, dict):
        raise errors.bad_request("the patched document is not a JSON object")
    where = too_deep_at(result)
    if where is not None:
        raise _unprocessable(f"the patched object exceeds max depth of {MAX_DEPTH} nested objects and "
                             f"lists at {where}", "")
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value and shares nothing with ``target``."""
    if not isinstance(patch, dict):
        return clone(patch)
    return _merge_into(clone(target) if isinstance(target, dict) else {}, clone(patch))


def _merge_into(result: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``result`` in place; recursion follows the (depth-bounded) patch."""
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _merge_into(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = value
    return result


def _unprocessable(message: str, path: str) -> errors.ApiError:
    cause = {"reason": "FieldValueInvalid", "message": message, "field": path}
    return errors.ApiError(422, "Invalid", message, {"causes": [cause]})


def _segments(pointer: str) -> int:
    return pointer.count("/")


def _resolve(doc: Any, pointer: str) -> Any:
    """The value at ``pointer``, or None when there is none (the operation then fails itself)."""
    try:
        return jsonpointer.resolve_pointer(doc, pointer, None)
    except jsonpointer.JsonPointerException:
        return None


def json_patch(live: Obj, ops: Any) -> Any:
    """RFC 6902 JSON patch; returns the new document (which may, in principle, not be a dict)."""
    if not isinstance(ops, list):
        raise errors.bad_request("json patch must be a JSON array of operations")
    doc: Any = clone(live)
    depth = measure(doc)  # an upper bound on the document's depth while the operations run
    copied = 0
    for number, op in enumerate(ops):
        if not isinstance(op, dict) or op.get("op") not in _OPS:
            raise errors.bad_request(f"json patch operation {number}: unknown or missing \"op\" in {op}")
        name, path = op["op"], op.get("path")
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise errors.bad_request(f"json patch operation {number} ({name}): invalid path {path!r}")
        source = op.get("from")
        if name in ("move", "copy") and (not isinstance(source, str)
                                         or (source and not source.startswith("/"))):
            raise errors.bad_request(f"json patch operation {number} ({name}): invalid from {source!r}")
        if name in ("add", "replace"):
            depth = max(depth, _segments(path) + measure(op.get("value")))
        elif name in ("move", "copy"):
            depth += max(0, _segments(path) - _segments(str(source)))
            if name == "copy":
                copied += len(orjson.dumps(_resolve(doc, str(source))))
                if copied > MAX_BODY_BYTES:
                    raise _unprocessable(f"json patch operation {number} (copy): the values copied would "
                                         f"exceed {MAX_BODY_BYTES} bytes in total", path)
        if depth > MAX_DEPTH:
            raise _unprocessable(f"json patch operation {number} ({name}): the result would exceed max "
                                 f"depth of {MAX_DEPTH} nested objects and lists", path)
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise _unprocessable(f"testing value {path} failed: test failed", path) from exc
        except jsonpatch.InvalidJsonPatch as exc:
            raise errors.bad_request(f"json patch operation {number} ({name}): {exc}") from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            where = f"{source} -> {path}" if name in ("move", "copy") else path
            raise _unprocessable(
                f"{name} operation does not apply: doc is missing path: \"{where}\": {exc}", path,
            ) from exc
    return doc
