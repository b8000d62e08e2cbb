"""Request options and subresource bodies, checked the way Kubernetes' decoders check them.

Everything a handler reads from the query or from an options body passes through here first,
so a malformed request is a 4xx ``Status`` naming the parameter or field, never a 500:

* :func:`list_options` (list and watch): ``limit`` is an int64 (a negative one means "no
  limit", as in Kubernetes, where only ``limit > 0`` pages); ``timeoutSeconds`` an int64;
  ``resourceVersion`` a uint64 (``strconv.ParseUint``), else 400 "invalid resource version:
  ...", Kubernetes' words.  Values beyond what the store can take are clamped by the store and
  storage layers, not refused: Kubernetes accepts any int64 ``limit``.
* :func:`delete_options`: the ``DeleteOptions`` body (when there is one) must be a JSON object
  whose fields have their Go types: ``gracePeriodSeconds`` int64, ``propagationPolicy`` string,
  ``orphanDependents`` bool, ``preconditions`` an object of strings, ``dryRun`` a list of
  strings.  The query's ``gracePeriodSeconds``, ``propagationPolicy`` and ``orphanDependents``
  fill in what the body leaves out.
* :func:`binding_node` (``pods/binding``) and :func:`scale_replicas` (``*/scale``): the body's
  shape and types; a missing ``target.name`` or a negative ``spec.replicas`` is a 422 Invalid,
  as Kubernetes' validation answers.

A value of the wrong JSON type is a 400 BadRequest (Kubernetes fails to decode it into its Go
struct), worded "<Kind> in version "<v>" cannot be handled as a <Kind>: <field>: ..."; a body
that is not an object at all is "the object provided is unrecognized (must be of type <Kind>)".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from shoal.kube import errors
from shoal.kube.params import json_int, json_type, parse_uint64, query_int64

__all__ = ["ListOptions", "binding_node", "delete_options", "list_options", "resource_version", "scale_replicas"]


@dataclass(frozen=True, slots=True)
class ListOptions:
    #: 0 = no limit.
    limit: int
    continue_token: str
    #: The query's ``resourceVersion`` as given ("" when absent); it parses as a uint64.
    resource_version: str
    #: ``timeoutSeconds``, or None when absent.
    timeout_seconds: int | None


def resource_version(text: str) -> int:
    """``resourceVersion`` of a list or watch as a number (0 for "" and "0"); 400 otherwise."""
    if text in ("", "0"):
        return 0
    try:
        return parse_uint64(text, "resourceVersion")
    except ValueError as exc:
        shown = text if len(text) <= 64 else text[:61] + "..."
        raise errors.bad_request(
            f'invalid resource version: resourceVersion: Invalid value: "{shown}": {exc}') from exc


def list_options(params: QueryParams) -> ListOptions:
    limit = query_int64(params, "limit") or 0
    timeout = query_int64(params, "timeoutSeconds")
    rv = params.get("resourceVersion") or ""
    resource_version(rv)
    return ListOptions(max(limit, 0), params.get("continue") or "", rv, timeout)


# -- bodies --------------------------------------------------------------------------------

def _unrecognized(kind: str, value: Any) -> errors.ApiError:
    return errors.bad_request(f"the object provided is unrecognized (must be of type {kind}): "
                              f"the body must be a JSON object, not {json_type(value)}")


def _undecodable(kind: str, version: str, detail: str) -> errors.ApiError:
    return errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}')


def _typed(kind: str, version: str, value: Any, path: str, want: type, word: str) -> Any:
    """``value`` (None allowed) when it is a ``want``; else the 400 Kubernetes' decoder gives."""
    if value is None or (isinstance(value, want) and not (want is int and isinstance(value, bool))):
        return value
    raise _undecodable(kind, version, f"{path}: must be {word}, not {json_type(value)}")


def _object(kind: str, version: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _unrecognized(kind, body)
    _typed(kind, version, body.get("metadata"), "metadata", dict, "an object")
    return body


def delete_options(body: Any, params: QueryParams) -> dict[str, Any]:
    """The ``DeleteOptions`` of a DELETE: the decoded body (None when there is none) + the query."""
    kind, version = "DeleteOptions", "v1"
    options: dict[str, Any] = {} if body is None else dict(_object(kind, version, body))
    grace = options.get("gracePeriodSeconds")
    if grace is not None:
        try:
            json_int(grace, "gracePeriodSeconds")
        except errors.ApiError as exc:
            raise _undecodable(kind, version, exc.message) from exc
    _typed(kind, version, options.get("propagationPolicy"), "propagationPolicy", str, "a string")
    _typed(kind, version, options.get("orphanDependents"), "orphanDependents", bool, "a boolean")
    preconditions = _typed(kind, version, options.get("preconditions"), "preconditions", dict, "an object")
    for key in ("uid", "resourceVersion"):
        _typed(kind, version, (preconditions or {}).get(key), f"preconditions.{key}", str, "a string")
    dry_run = _typed(kind, version, options.get("dryRun"), "dryRun", list, "an array")
    for index, item in enumerate(dry_run or []):
        _typed(kind, version, item, f"dryRun[{index}]", str, "a string")
    if options.get("gracePeriodSeconds") is None:
        query_grace = query_int64(params, "gracePeriodSeconds")
        if query_grace is not None:
            options["gracePeriodSeconds"] = query_grace
    if not options.get("propagationPolicy") and params.get("propagationPolicy"):
        options["propagationPolicy"] = params["propagationPolicy"]
    if options.get("orphanDependents") is None and params.get("orphanDependents"):
        options["orphanDependents"] = _query_bool(params, "orphanDependents")
    return options


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _query_bool(params: QueryParams, name: str) -> bool:
    value = params.get(name) or ""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.bad_request(f'{name}: invalid boolean value "{value}"')


def binding_node(body: Any, name: str) -> str:
    """The node a ``pods/binding`` body names; 400 for a malformed Binding, 422 for a missing name."""
    kind, version = "Binding", "v1"
    binding = _object(kind, version, body)
    target = _typed(kind, version, binding.get("target"), "target", dict, "an object") or {}
    node = _typed(kind, version, target.get("name"), "target.name", str, "a string")
    target_kind = _typed(kind, version, target.get("kind"), "target.kind", str, "a string")
    if target_kind not in (None, "", "Node"):
        raise errors.invalid(kind, "", name, [errors.FieldError(
            "target.kind", "FieldValueNotSupported", 'supported values: "Node", "<empty>"', target_kind)])
    if not node:
        raise errors.invalid(kind, "", name, [errors.FieldError("target.name", "FieldValueRequired", "")])
    return str(node)


def scale_replicas(body: Any, name: str) -> int:
    """``spec.replicas`` of a ``Scale`` body (after a patch, the patched Scale): an int32 >= 0."""
    kind, version = "Scale", "autoscaling/v1"
    scale = _object(kind, version, body)
    spec = _typed(kind, version, scale.get("spec"), "spec", dict, "an object") or {}
    replicas = spec.get("replicas")
    if replicas is None:
        raise errors.invalid(kind, "autoscaling", name, [errors.FieldError(
            "spec.replicas", "FieldValueRequired", "")])
    try:
        json_int(replicas, "spec.replicas", bits=32)
    except errors.ApiError as exc:
        raise _undecodable(kind, version, exc.message) from exc
    if replicas < 0:
        raise errors.invalid(kind, "autoscaling", name, [errors.FieldError(
            "spec.replicas", "FieldValueInvalid", "must be greater than or equal to 0", replicas)])
    return int(replicas)
