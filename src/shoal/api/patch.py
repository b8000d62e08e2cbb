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
Invariant: the result is always a JSON object and holds no SMP ``$`` directive keys.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import jsonpointer

from shoal.api.strategic import strategic_merge
from shoal.kube import errors
from shoal.kube.objects import Obj

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

_OPS = ("add", "remove", "replace", "move", "copy", "test")


def apply_patch(live: Obj, patch_body: bytes, content_type: str, *, kind: str | None = None) -> Obj:
    """Apply a PATCH request body to ``live``.

    ``kind`` selects the strategic-merge list table; it defaults to ``live["kind"]``.
    Raises :class:`~shoal.kube.errors.ApiError`: 415 for an unknown media type, 400 for an
    undecodable or malformed patch, 422 for a JSON patch operation that does not apply.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        result: Any = json_patch(live, _decode(patch_body))
    elif media == MERGE_PATCH:
        body = _decode(patch_body)
        if not isinstance(body, dict):
            raise errors.bad_request("merge patch body must be a JSON object")
        result = merge_patch(live, body)
    elif media == STRATEGIC_MERGE_PATCH:
        body = _decode(patch_body)
        if not isinstance(body, dict):
            raise errors.bad_request("strategic merge patch body must be a JSON object")
        result = strategic_merge(live, body, kind if kind is not None else str(live.get("kind", "")))
    else:
        raise errors.unsupported_media_type(content_type)
    if not isinstance(result, dict):
        raise errors.bad_request("the patched document is not a JSON object")
    return result


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from exc


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value and shares nothing with ``target``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unprocessable(message: str, path: str) -> errors.ApiError:
    cause = {"reason": "FieldValueInvalid", "message": message, "field": path}
    return errors.ApiError(422, "Invalid", message, {"causes": [cause]})


def json_patch(live: Obj, ops: Any) -> Any:
    """RFC 6902 JSON patch; returns the new document (which may, in principle, not be a dict)."""
    if not isinstance(ops, list):
        raise errors.bad_request("json patch must be a JSON array of operations")
    doc: Any = copy.deepcopy(live)
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
