"""Kubernetes ``FieldsV1`` field sets: paths, their wire form and their printed form.

A path is a tuple of path elements written as ``FieldsV1`` keys:

* ``f:<name>`` — a map field;
* ``k:<json object>`` — an associative-list item by its key fields (keys sorted, compact JSON,
  e.g. ``k:{"containerPort":80,"protocol":"TCP"}``);
* ``v:<json value>`` — a set-list item (``v:"example.com/finalizer"``);
* ``i:<n>`` — a list item by index (read, never produced here).

:func:`encode` builds the nested ``fieldsV1`` object: a member path with no member below
it is ``{}``; a member with members below it carries ``".": {}``.  :func:`decode` is its
inverse and returns None for malformed input.  Both remember their last answers (keyed by
the path set and by the ``fieldsV1`` JSON): every Pod of a ReplicaSet has the same field sets,
so a write re-encodes what an earlier one already did.  :func:`path_string` prints a path the way
structured-merge-diff does in conflict messages:
``.spec.template.spec.containers[name="web"].image``, ``.metadata.finalizers[="x"]``.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from shoal.api.strategic import ListType

Path = tuple[str, ...]

_ORDER = {".": 0, "f": 1, "k": 2, "v": 3, "i": 4}
_MEMORY = 1024


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_element(item: Any, ltype: ListType) -> str | None:
    """The path element of a list item, or None if the item lacks its key fields."""
    if ltype.is_set:
        return None if isinstance(item, dict | list) else f"v:{_compact(item)}"
    if not isinstance(item, dict):
        return None
    defaults = dict(ltype.key_defaults)
    key: dict[str, Any] = {}
    for name in ltype.keys:
        if name in item and item[name] is not None:
            key[name] = item[name]
        elif name in defaults:
            key[name] = defaults[name]
        else:
            return None
    return f"k:{_compact(key)}"


def encode(paths: set[Path]) -> dict[str, Any]:
    """The ``fieldsV1`` object for a set of paths (a new object on every call)."""
    encoded: dict[str, Any] = orjson.loads(_encoded(frozenset(paths)))
    return encoded


@functools.lru_cache(maxsize=_MEMORY)
def _encoded(paths: frozenset[Path]) -> bytes:
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for elem in path:
            node = node.setdefault(elem, {})
        node["."] = {}
    return orjson.dumps(_finish(root))


def _finish(node: dict[str, Any]) -> dict[str, Any]:
    children = {k: _finish(v) for k, v in node.items() if k != "."}
    ordered = dict(sorted(children.items(), key=lambda kv: (_ORDER.get(kv[0][:1], 5), kv[0])))
    if "." in node and ordered:
        return {".": {}, **ordered}
    return ordered


def decode(tree: Any) -> set[Path] | None:
    """The set of paths in a ``fieldsV1`` object (a new set); None if it is not well formed."""
    try:
        raw = orjson.dumps(tree)
    except TypeError:  # not JSON (e.g. a YAML body with non-string keys): not well formed
        return None
    paths = _decoded(raw)
    return None if paths is None else set(paths)


@functools.lru_cache(maxsize=_MEMORY)
def _decoded(raw: bytes) -> frozenset[Path] | None:
    paths = _decode(orjson.loads(raw))
    return None if paths is None else frozenset(paths)


def _decode(tree: Any, path: Path = ()) -> set[Path] | None:
    if not isinstance(tree, dict):
        return None
    out: set[Path] = set()
    for key, sub in tree.items():
        if key == ".":
            if path:
                out.add(path)
            continue
        elem = _normal(key)
        if elem is None:
            return None
        if isinstance(sub, dict) and not sub:
            out.add((*path, elem))
            continue
        below = _decode(sub, (*path, elem))
        if below is None:
            return None
        out |= below
    return out


def _normal(elem: Any) -> str | None:
    """``elem`` with a canonical JSON part, or None if it is not a path element."""
    if not isinstance(elem, str) or len(elem) < 3 or elem[1] != ":" or elem[0] not in "fkvi":
        return None
    prefix, body = elem[0], elem[2:]
    if prefix == "f":
        return elem
    if prefix == "i":
        return elem if body.isdigit() else None
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None
    if prefix == "k" and not isinstance(value, dict):
        return None
    return f"{prefix}:{_compact(value)}"


def path_string(path: Path) -> str:
    """``path`` as structured-merge-diff prints it."""
    parts: list[str] = []
    for elem in path:
        prefix, body = elem[0], elem[2:]
        if prefix == "f":
            parts.append(f".{body}")
        elif prefix == "k":
            key = json.loads(body)
            parts.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in sorted(key.items())) + "]")
        elif prefix == "v":
            parts.append(f"[={body}]")
        else:
            parts.append(f"[{body}]")
    return "".join(parts)
