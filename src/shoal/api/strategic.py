"""Kubernetes strategic merge patch (SMP) over plain JSON dicts, and the list-type table.

Contract: :func:`strategic_merge` ``(live, patch, kind)`` returns a new object; neither
argument is mutated.  Semantics follow ``k8s.io/apimachinery/pkg/util/strategicpatch`` as
the API server applies it (``MergeParallelList`` and ``IgnoreUnmatchedNulls`` on):

* maps merge recursively; a ``null`` value deletes the key;
* a list whose :class:`ListType` has a merge key merges item by item on that key; a list
  marked ``is_set`` merges its primitive items as an ordered set; every other list is
  replaced whole (atomic);
* directives: ``$patch: replace | delete`` in a map; list items ``{"$patch": "delete",
  <key>: v}`` and ``{"$patch": "replace"}``; ``$retainKeys``; ``$setElementOrder/<list>``;
  ``$deleteFromPrimitiveList/<list>``.

Recursion follows the patch, whose depth the bounded decoder (:mod:`shoal.api.decode`) keeps
within ``MAX_DEPTH``; both arguments are copied through orjson (:func:`~shoal.api.bodies.clone`),
not ``copy.deepcopy``, which recursed two Python frames per level of the live object.

Invariant: no ``$``-prefixed key survives into the result, not even inside values that did
not exist in ``live`` (those are merged into an empty container, which strips directives).

Element order after a list merge is Kubernetes' ``normalizeElementOrder``: items named by the
patch (or by ``$setElementOrder`` when present) keep the patch's order, items only on the
server keep theirs, and the two runs are interleaved by their positions in the live list.
Worked example: live ``[a, b]``, patch ``[{name: c}]`` without ``$setElementOrder`` gives
``[c, a, b]`` (Kubernetes prepends; kubectl always sends ``$setElementOrder``, giving the
order of the applied manifest instead).

:data:`LIST_TYPES` is the single merge-key table, shared with server-side apply (which uses
its ``keys`` as ``listMapKeys``); entries match on a suffix of the field-name path (list
items add no path segment) and optionally on the object's kind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.api.bodies import clone
from shoal.kube import errors
from shoal.kube.objects import Obj

Names = tuple[str, ...]

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


@dataclass(frozen=True, slots=True)
class ListType:
    """How one list field merges.  The default instance is an atomic list."""

    #: SMP ``patchMergeKey`` ("" = no merge key).
    merge_key: str = ""
    #: SSA ``listMapKeys``; non-empty means an associative list.
    keys: tuple[str, ...] = ()
    #: A list of primitives merged as a set (SMP ``patchStrategy: merge``, SSA ``set``).
    is_set: bool = False
    #: Defaults for key fields absent from an item (SSA needs a complete key).
    key_defaults: tuple[tuple[str, Any], ...] = ()


ATOMIC = ListType()
_SET = ListType(is_set=True)
_TCP = (("protocol", "TCP"),)


def _keyed(key: str, *more: str, defaults: tuple[tuple[str, Any], ...] = ()) -> ListType:
    return ListType(merge_key=key, keys=(key, *more), key_defaults=defaults)


_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

#: (kind or "" for any kind, field-name path suffix, list type).  First match wins.
LIST_TYPES: tuple[tuple[str, Names, ListType], ...] = (
    ("", ("metadata", "finalizers"), _SET),
    ("", ("metadata", "ownerReferences"), _keyed("uid")),
    ("", ("status", "conditions"), _keyed("type")),
    *(("", ("spec", c), _keyed("name")) for c in _CONTAINER_LISTS),
    *(("", (c, "ports"), _keyed("containerPort", "protocol", defaults=_TCP)) for c in _CONTAINER_LISTS),
    *(("", (c, "env"), _keyed("name")) for c in _CONTAINER_LISTS),
    *(("", (c, "volumeMounts"), _keyed("mountPath")) for c in _CONTAINER_LISTS),
    *(("", (c, "volumeDevices"), _keyed("devicePath")) for c in _CONTAINER_LISTS),
    ("", ("spec", "volumes"), _keyed("name")),
    ("", ("spec", "imagePullSecrets"), _keyed("name")),
    ("", ("spec", "hostAliases"), _keyed("ip")),
    ("", ("spec", "schedulingGates"), _keyed("name")),
    ("", ("spec", "resourceClaims"), _keyed("name")),
    ("", ("spec", "topologySpreadConstraints"),
     ListType(merge_key="topologyKey", keys=("topologyKey", "whenUnsatisfiable"))),
    ("Pod", ("status", "podIPs"), _keyed("ip")),
    ("Pod", ("status", "hostIPs"), _keyed("ip")),
    ("Node", ("spec", "podCIDRs"), _SET),
    ("Node", ("status", "addresses"), _keyed("type")),
    ("Service", ("spec", "ports"), _keyed("port", "protocol", defaults=_TCP)),
)

#: Maps that server-side apply treats as one value (``mapType/structType=atomic``).
ATOMIC_MAPS: tuple[tuple[str, Names], ...] = (
    *((k, ("spec", "selector")) for k in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job")),
    ("Service", ("spec", "selector")),
    ("", ("spec", "nodeSelector")),
    ("", ("labelSelector",)),
    ("", ("namespaceSelector",)),
)


def _matches(kind: str, names: Names, entry_kind: str, suffix: Names) -> bool:
    return (not entry_kind or entry_kind == kind) and names[len(names) - len(suffix):] == suffix


@functools.lru_cache(maxsize=4096)
def list_type(kind: str, names: Names) -> ListType:
    """The list type of the field at ``names`` (field names from the root) in a ``kind``."""
    for entry_kind, suffix, ltype in LIST_TYPES:
        if _matches(kind, names, entry_kind, suffix):
            return ltype
    return ATOMIC


@functools.lru_cache(maxsize=4096)
def is_atomic_map(kind: str, names: Names) -> bool:
    return any(_matches(kind, names, k, suffix) for k, suffix in ATOMIC_MAPS)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values that, unlike ``==``, tells ``true`` from ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


def strategic_merge(live: Obj, patch: Obj, kind: str) -> Obj:
    """Apply strategic merge patch ``patch`` to ``live``; raises ApiError 400 on bad patches."""
    if not isinstance(patch, dict):
        raise errors.bad_request("strategic merge patch must be a JSON object")
    return _merge_map(clone(live), clone(patch), kind, ())


def _where(names: Names) -> str:
    return ".".join(names) or "<root>"


def _bad(names: Names, detail: str) -> errors.ApiError:
    return errors.bad_request(f"invalid strategic merge patch at {_where(names)}: {detail}")


def _merge_map(orig: Obj, patch: Obj, kind: str, names: Names) -> Obj:
    directive = patch.pop(PATCH, None)
    if directive == "replace":
        return _merge_map({}, patch, kind, names)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise _bad(names, f"unknown $patch directive {directive!r}")
    if RETAIN_KEYS in patch:
        _retain_keys(orig, patch, patch.pop(RETAIN_KEYS), names)
    for key in [k for k in patch if k.startswith(SET_ORDER)]:
        _set_element_order(orig, patch, key, kind, names)
    for key in [k for k in patch if k.startswith(DELETE_PRIMITIVE)]:
        _delete_from_primitive_list(orig, key, patch.pop(key), names)
    for key, value in patch.items():
        if key.startswith("$"):
            raise _bad(names, f"unknown directive {key!r}")
        if value is None:
            orig.pop(key, None)
            continue
        child = (*names, key)
        current = orig.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            orig[key] = _merge_map(current, value, kind, child)
        elif isinstance(current, list) and isinstance(value, list):
            orig[key] = _merge_list(current, value, kind, child)
        else:
            orig[key] = _fresh(value, kind, child)
    return orig


def _fresh(value: Any, kind: str, names: Names) -> Any:
    """A patch value with nothing to merge into: directives applied to an empty container."""
    if isinstance(value, dict):
        return _merge_map({}, value, kind, names)
    if isinstance(value, list):
        return _merge_list([], value, kind, names)
    return value


def _retain_keys(orig: Obj, patch: Obj, retain: Any, names: Names) -> None:
    if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
        raise _bad(names, "$retainKeys must be a list of field names")
    allowed = set(retain)
    for key, value in patch.items():
        if value is None or key.startswith((SET_ORDER, DELETE_PRIMITIVE)):
            continue
        if key not in allowed:
            raise _bad(names, f"field {key!r} is in the patch but not in $retainKeys")
    for key in [k for k in orig if k not in allowed]:
        del orig[key]


def _delete_from_primitive_list(orig: Obj, directive: str, values: Any, names: Names) -> None:
    field = directive[len(DELETE_PRIMITIVE):]
    if not field or not isinstance(values, list):
        raise _bad(names, f"{directive} must name a list and hold a list of values")
    current = orig.get(field)
    if isinstance(current, list):
        orig[field] = [v for v in current if not any(json_equal(v, d) for d in values)]


def _merge_list(orig: list[Any], patch: list[Any], kind: str, names: Names) -> list[Any]:
    ltype = list_type(kind, names)
    if ltype.is_set:
        if any(isinstance(v, dict | list) for v in patch):
            raise _bad(names, "a merging list of primitives cannot hold objects or lists")
        merged = _dedupe([*orig, *patch])
        return _normalize_order(merged, patch, orig, None)
    if not ltype.merge_key:
        return [_fresh(v, kind, names) for v in patch]
    key = ltype.merge_key
    items: list[Obj] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise _bad(names, f"items of a list merged by {key!r} must be objects")
        directive = item.get(PATCH)
        if directive is None:
            if key not in item:
                raise _bad(names, f"item {item} does not contain declared merge key {key!r}")
            items.append(item)
        elif directive == "delete":
            if key not in item:
                raise _bad(names, f"delete directive {item} does not contain merge key {key!r}")
            orig = [o for o in orig if not _has_key(o, key, item[key])]
        elif directive == "replace":
            replace = True
        else:
            raise _bad(names, f"list directive {directive!r} is not supported")
    if replace:
        return [_merge_map({}, item, kind, names) for item in items]
    merged = list(orig)
    for item in items:
        index = next((i for i, o in enumerate(merged) if _has_key(o, key, item[key])), None)
        if index is None:
            merged.append(_merge_map({}, item, kind, names))
        else:
            merged[index] = _merge_map(merged[index], item, kind, names)
    return _normalize_order(merged, items, orig, key)


def _has_key(item: Any, key: str, value: Any) -> bool:
    return isinstance(item, dict) and key in item and json_equal(item[key], value)


def _dedupe(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(json_equal(v, seen) for seen in out):
            out.append(v)
    return out


def _identity(key: str | None) -> Callable[[Any], Any]:
    if key is None:
        return lambda item: item
    return lambda item: item.get(key) if isinstance(item, dict) else None


def _index(order: list[Any], item: Any, ident: Callable[[Any], Any]) -> int:
    target = ident(item)
    return next((i for i, o in enumerate(order) if json_equal(ident(o), target)), -1)


def _normalize_order(merged: list[Any], patch_order: list[Any], server_order: list[Any],
                     key: str | None) -> list[Any]:
    """Kubernetes' normalizeElementOrder + mergeSortedSlice (see the module docstring)."""
    ident = _identity(key)
    in_patch = [m for m in merged if _index(patch_order, m, ident) >= 0]
    server_only = [m for m in merged if _index(patch_order, m, ident) < 0]
    right = sorted(in_patch, key=lambda m: _index(patch_order, m, ident))
    left = sorted(server_only, key=lambda m: _index(server_order, m, ident))
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
            continue
        if i < len(left):
            li, ri = _index(server_order, left[i], ident), _index(server_order, right[j], ident)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
                continue
        out.append(right[j])
        j += 1
    return out


def _set_element_order(orig: Obj, patch: Obj, directive: str, kind: str, names: Names) -> None:
    order = patch.pop(directive)
    field = directive[len(SET_ORDER):]
    if not field or not isinstance(order, list):
        raise _bad(names, f"{directive} must name a list and hold a list")
    child = (*names, field)
    ltype = list_type(kind, child)
    current, wanted = orig.get(field), patch.get(field)
    if not (ltype.merge_key or ltype.is_set) or (wanted is None and current is None):
        return  # nothing to order: an atomic list is replaced as sent
    if current is not None and not isinstance(current, list):
        raise _bad(child, "the live value is not a list")
    if wanted is not None and not isinstance(wanted, list):
        raise _bad(child, "the patch value is not a list")
    key = ltype.merge_key or None
    if key is not None and not all(isinstance(o, dict) and key in o for o in order):
        raise _bad(names, f"every {directive} item must be an object with merge key {key!r}")
    merged = list(current or [])
    if wanted is not None:
        _check_order(wanted, order, key, child)
        merged = _merge_list(merged, wanted, kind, child)
    orig[field] = _normalize_order(merged, order, current or [], key)
    patch.pop(field, None)


def _check_order(wanted: list[Any], order: list[Any], key: str | None, names: Names) -> None:
    """Items of the patch list must appear in ``$setElementOrder``, in the same order."""
    ident = _identity(key)
    plain = [w for w in wanted if not (isinstance(w, dict) and PATCH in w)]
    p = s = 0
    while p < len(plain) and s < len(order):
        if json_equal(ident(plain[p]), ident(order[s])):
            p += 1
        s += 1
    if p < len(plain):
        raise _bad(names, "the order in the patch list doesn't match the $setElementOrder list")
