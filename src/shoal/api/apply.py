"""Server-side apply and ``metadata.managedFields`` bookkeeping, as pure functions on dicts.

Field sets: a field is a path of Kubernetes ``fieldsV1`` keys, e.g.
``("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image")``;
``k:`` names an item of an associative list by its ``listMapKeys`` (JSON, sorted keys),
``v:`` an item of a set list, and a node that is itself owned and has owned children is
written with a ``".": {}`` marker.  List types come from :data:`shoal.api.strategic.LIST_TYPES`.

Managers are identified by (manager, operation, subresource) plus apiVersion for Update
entries, as Kubernetes does.  Never tracked: ``apiVersion``, ``kind``, the ``metadata``,
``spec`` and ``status`` nodes themselves, server-owned metadata (name, namespace, uid,
resourceVersion, generation, creationTimestamp, deletion*, managedFields ...), and all of
``status`` when the caller passes ``track_status=False`` (main-resource writes of kinds with a
status subresource).

:func:`server_side_apply` follows structured-merge-diff's ``Updater.Apply``:

1. merge the applied config into the live object (maps recursively, associative and set
   lists item by item, everything else replaced);
2. the manager's set becomes exactly the applied config's fields;
3. prune: fields the manager applied last time, omits now and nobody else owns are removed
   (containers left empty by this are removed too);
4. fields changed or added relative to live and owned by another manager are conflicts:
   409 ``Conflict`` with ``FieldManagerConflict`` causes unless ``force``, in which case
   the other managers lose them.

:func:`record_update` follows ``Updater.Update``: the writer gains every field it added or
changed, every other manager loses those, and removed fields leave every set.  The
managedFields sent with the new object are used when non-empty (so ``kubectl`` can rewrite
them, e.g. when upgrading client-side apply), else the old object's; ``[{}]`` clears them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import orjson

from shoal.api import fieldsets
from shoal.api.fieldsets import Path
from shoal.api.strategic import is_atomic_map, json_equal, list_type
from shoal.kube import errors
from shoal.kube.objects import Obj

__all__ = ["record_update", "server_side_apply"]

Names = tuple[str, ...]

_UNTRACKED_META = frozenset({
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields", "clusterName",
})
_ROOT_NODES = frozenset({("f:metadata",), ("f:spec",), ("f:status",)})
BEFORE_FIRST_APPLY = "before-first-apply"


@dataclass(slots=True)
class _Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: set[Path]

    @property
    def ident(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, self.subresource, version)

    def who(self) -> str:
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return text if self.operation == "Apply" else f"{text} using {self.api_version}"

    def encode(self) -> Obj:
        entry: Obj = {"manager": self.manager, "operation": self.operation,
                      "apiVersion": self.api_version}
        if self.time is not None:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = fieldsets.encode(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


Managers = dict[tuple[str, str, str, str], _Entry]


def _decode_managers(raw: Any) -> Managers | None:
    """Managers from a managedFields list; None if it is malformed."""
    if not isinstance(raw, list):
        return None
    out: Managers = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("manager", ""), str):
            return None
        fields = fieldsets.decode(item.get("fieldsV1", {}))
        operation = item.get("operation")
        if fields is None or operation not in ("Apply", "Update"):
            return None
        entry = _Entry(item.get("manager", ""), operation, str(item.get("apiVersion", "")),
                       str(item.get("subresource", "")), item.get("time"), fields)
        if entry.ident in out:
            out[entry.ident].fields |= entry.fields
        else:
            out[entry.ident] = entry
    return out


def _encode_managers(managers: Managers) -> list[Obj]:
    entries = [e for e in managers.values() if e.fields]
    entries.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.encode() for e in entries]


def _trackable(obj: Obj, track_status: bool) -> Obj:
    out = {k: v for k, v in obj.items()
           if k not in ("apiVersion", "kind") and (track_status or k != "status")}
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _UNTRACKED_META}
    return out


def _unprocessable(message: str) -> errors.ApiError:
    return errors.ApiError(422, "Invalid", message)


def _items(value: list[Any], kind: str, names: Names, strict: bool) -> list[tuple[str, Any]] | None:
    """(path element, item) pairs of an associative or set list; None if the list is atomic.

    A list whose items lack their keys or repeat them is atomic when ``strict`` is false
    (live data) and a 422 when it is true (an applied configuration).
    """
    ltype = list_type(kind, names)
    if not (ltype.keys or ltype.is_set):
        return None
    pairs: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for item in value:
        elem = fieldsets.item_element(item, ltype)
        if elem is None or elem in seen:
            if not strict:
                return None
            where = "." + ".".join(names)
            if elem is None:
                raise _unprocessable(f"{where}: an item lacks the key fields {list(ltype.keys)}")
            raise _unprocessable(f"{where}: duplicate entries for key {fieldsets.path_string((elem,))}")
        seen.add(elem)
        pairs.append((elem, item))
    return pairs


def _applied_fields(obj: Obj, kind: str, names: Names = (), path: Path = ()) -> set[Path]:
    """The fields an applied configuration sets (structured-merge-diff's ToFieldSet)."""
    out: set[Path] = set()
    for key, value in obj.items():
        child, cpath = (*names, key), (*path, f"f:{key}")
        if isinstance(value, dict) and value and not is_atomic_map(kind, child):
            out |= _applied_fields(value, kind, child, cpath)
            continue
        pairs = _items(value, kind, child, strict=True) if isinstance(value, list) else None
        if pairs is None:
            out.add(cpath)
            continue
        for elem, item in pairs:
            out.add((*cpath, elem))
            if isinstance(item, dict):
                out |= _applied_fields(item, kind, child, (*cpath, elem))
    return out - _ROOT_NODES


def _all_paths(value: Any, kind: str, names: Names, path: Path, out: set[Path]) -> None:
    """Every node at and under ``path``: what a value appearing or vanishing touches."""
    out.add(path)
    if isinstance(value, dict) and not is_atomic_map(kind, names):
        for key, child in value.items():
            _all_paths(child, kind, (*names, key), (*path, f"f:{key}"), out)
    elif isinstance(value, list):
        for elem, item in _items(value, kind, names, strict=False) or []:
            _all_paths(item, kind, names, (*path, elem), out)


@dataclass(slots=True)
class _Diff:
    added: set[Path]
    modified: set[Path]
    removed: set[Path]


def _compare(old: Any, new: Any, kind: str, names: Names, path: Path, diff: _Diff) -> None:
    if isinstance(old, dict | list) and _identical(old, new):
        return  # an unchanged subtree (most of an object on most writes) adds nothing
    if isinstance(old, dict) and isinstance(new, dict) and not is_atomic_map(kind, names):
        for key in [*old, *(k for k in new if k not in old)]:
            child, cpath = (*names, key), (*path, f"f:{key}")
            if key not in new:
                _all_paths(old[key], kind, child, cpath, diff.removed)
            elif key not in old:
                _all_paths(new[key], kind, child, cpath, diff.added)
            else:
                _compare(old[key], new[key], kind, child, cpath, diff)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_items = _items(old, kind, names, strict=False)
        new_items = _items(new, kind, names, strict=False)
        if old_items is not None and new_items is not None:
            olds, news = dict(old_items), dict(new_items)
            for elem in [*olds, *(e for e in news if e not in olds)]:
                epath = (*path, elem)
                if elem not in news:
                    _all_paths(olds[elem], kind, names, epath, diff.removed)
                elif elem not in olds:
                    _all_paths(news[elem], kind, names, epath, diff.added)
                else:
                    _compare(olds[elem], news[elem], kind, names, epath, diff)
            return
    if not json_equal(old, new):
        diff.modified.add(path)
        if isinstance(old, dict | list) or isinstance(new, dict | list):
            _all_paths(old, kind, names, path, diff.removed)
            _all_paths(new, kind, names, path, diff.added)
            diff.removed.discard(path)
            diff.added.discard(path)


def _identical(old: Any, new: Any) -> bool:
    """Exactly the same JSON (``==`` alone would take ``true`` for ``1``)."""
    try:
        return bool(old == new) and orjson.dumps(old) == orjson.dumps(new)
    except TypeError:  # not JSON-encodable (a YAML date in a body): compare the slow way
        return False


def _diff(old: Obj, new: Obj, kind: str, track_status: bool) -> _Diff:
    diff = _Diff(set(), set(), set())
    _compare(_trackable(old, track_status), _trackable(new, track_status), kind, (), (), diff)
    diff.added -= _ROOT_NODES
    diff.modified -= _ROOT_NODES
    diff.removed -= _ROOT_NODES
    return diff


def _merge(live: Obj, applied: Obj, kind: str, names: Names = ()) -> Obj:
    """``applied`` merged over ``live`` (a new dict; ``live`` is not modified)."""
    out = dict(live)
    for key, value in applied.items():
        child = (*names, key)
        current = out.get(key)
        if value is None:
            out.pop(key, None)
        elif isinstance(current, dict) and isinstance(value, dict) and not is_atomic_map(kind, child):
            out[key] = _merge(current, value, kind, child)
        elif isinstance(current, list) and isinstance(value, list):
            out[key] = _merge_list(current, value, kind, child)
        elif isinstance(value, dict) and not is_atomic_map(kind, child):
            out[key] = _merge({}, value, kind, child)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(live: list[Any], applied: list[Any], kind: str, names: Names) -> list[Any]:
    """Item-wise merge: applied items in applied order, live-only items keep their place."""
    right = _items(applied, kind, names, strict=True)
    left = _items(live, kind, names, strict=False)
    if right is None or left is None:
        return copy.deepcopy(applied)
    lefts, rights = dict(left), dict(right)
    lkeys, rkeys = [e for e, _ in left], [e for e, _ in right]
    out: list[Any] = []
    done: set[str] = set()

    def emit(elem: str) -> None:
        done.add(elem)
        if elem not in rights:
            out.append(lefts[elem])
        elif isinstance(rights[elem], dict):
            out.append(_merge(lefts.get(elem, {}), rights[elem], kind, names))
        else:
            out.append(copy.deepcopy(rights[elem]))

    i = j = 0
    while i < len(lkeys) or j < len(rkeys):
        if i < len(lkeys) and lkeys[i] in done:
            i += 1
        elif j < len(rkeys) and rkeys[j] in done:
            j += 1
        elif j >= len(rkeys) or (i < len(lkeys) and lkeys[i] not in rights):
            emit(lkeys[i])
        else:
            emit(rkeys[j])
    return out


def _prune(value: Any, kind: str, names: Names, path: Path, remove: set[Path], keep: set[Path],
           descend: set[Path]) -> None:
    """Remove nodes in ``remove`` (unless an owned field lies under them) from ``value``."""
    if isinstance(value, dict):
        for key in list(value):
            child, cpath = (*names, key), (*path, f"f:{key}")
            if cpath in remove and cpath not in keep:
                del value[key]
            elif cpath in descend:
                had = bool(value[key]) if isinstance(value[key], dict | list) else False
                _prune(value[key], kind, child, cpath, remove, keep, descend)
                if had and not value[key]:
                    del value[key]
    elif isinstance(value, list):
        pairs = _items(value, kind, names, strict=False)
        if pairs is None:
            return
        kept: list[Any] = []
        for elem, item in pairs:
            epath = (*path, elem)
            if epath in remove and epath not in keep:
                continue
            if epath in descend:
                _prune(item, kind, names, epath, remove, keep, descend)
            kept.append(item)
        value[:] = kept


def _prefixes(paths: set[Path]) -> set[Path]:
    return {p[:i] for p in paths for i in range(1, len(p))}


def _conflict_error(conflicts: list[tuple[_Entry, Path]]) -> errors.ApiError:
    rows = sorted((entry.who(), fieldsets.path_string(p)) for entry, p in conflicts)
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": field}
              for who, field in rows]
    if len(rows) == 1:
        who, field = rows[0]
        return errors.ApiError(409, "Conflict",
                               f"Apply failed with 1 conflict: conflict with {who}: {field}",
                               {"causes": causes})
    lines: list[str] = []
    for who in sorted({w for w, _ in rows}):
        lines.append(f"conflicts with {who}:")
        lines.extend(f"- {field}" for w, field in rows if w == who)
    return errors.ApiError(409, "Conflict",
                           f"Apply failed with {len(rows)} conflicts: " + "\n".join(lines),
                           {"causes": causes})


def server_side_apply(live: Obj | None, applied: Obj, manager: str, force: bool, kind: str, now: str,
                      *, track_status: bool = True, subresource: str = "") -> Obj:
    """The object after ``manager`` applies ``applied`` to ``live`` (None: create).

    Returns a new object whose ``metadata.managedFields`` is updated; inputs are not mutated.
    Raises ApiError 409 Conflict (see module docstring), 400 if ``applied`` carries
    managedFields, 422 for list items without their keys.
    """
    if not isinstance(applied, dict):
        raise errors.bad_request("the applied configuration must be a JSON object")
    applied = copy.deepcopy(applied)
    applied_meta = applied.get("metadata")
    if isinstance(applied_meta, dict):
        if applied_meta.get("managedFields"):
            raise errors.bad_request("metadata.managedFields must be nil")
        applied_meta.pop("managedFields", None)
    if not track_status:
        applied.pop("status", None)
    base = copy.deepcopy(live) if live is not None else {}
    base_meta = base.setdefault("metadata", {})
    managers = _decode_managers(base_meta.pop("managedFields", None) or []) or {}
    api_version = str(applied.get("apiVersion") or base.get("apiVersion") or "")
    if live is not None and not managers:
        # An object nobody tracked yet: its current fields belong to one Update manager.
        seeded = _diff({}, base, kind, track_status).added
        if seeded:
            first = _Entry(BEFORE_FIRST_APPLY, "Update", api_version, "", None, seeded)
            managers[first.ident] = first
    mine = _Entry(manager, "Apply", api_version, subresource, None,
                  _applied_fields(_trackable(applied, track_status), kind))
    previous = managers.get(mine.ident)
    mine.time = previous.time if previous else None
    managers[mine.ident] = mine
    merged = _merge(base, applied, kind)
    if previous is not None:
        owned = set().union(*(e.fields for e in managers.values()))
        remove = previous.fields - owned
        if remove:
            _prune(merged, kind, (), (), remove, _prefixes(owned), _prefixes(remove))
    diff = _diff(base, merged, kind, track_status)
    changed = diff.added | diff.modified
    conflicts = [(e, p) for e in managers.values() if e is not mine for p in e.fields & changed]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for entry in managers.values():
        if entry is not mine:
            entry.fields -= changed | diff.removed
    if mine.time is None or not json_equal(base, merged):
        mine.time = now
    merged.setdefault("metadata", {})["managedFields"] = _encode_managers(managers)
    return merged


def record_update(old: Obj | None, new: Obj, manager: str, operation: str, now: str, *,
                  kind: str | None = None, subresource: str = "", track_status: bool = True) -> None:
    """Update ``new["metadata"]["managedFields"]`` in place for a create/update/patch by ``manager``.

    ``old`` is the stored object (None on create).  ``kind`` defaults to ``new["kind"]``.
    """
    kind = kind if kind is not None else str(new.get("kind", ""))
    meta = new.setdefault("metadata", {})
    supplied = meta.get("managedFields")
    if supplied == [{}]:
        meta.pop("managedFields")
        return
    managers = _decode_managers(supplied) if supplied and not subresource else None
    if managers is None:
        old_meta = (old or {}).get("metadata") or {}
        managers = _decode_managers(old_meta.get("managedFields") or []) or {}
    diff = _diff(old or {}, new, kind, track_status)
    changed = diff.added | diff.modified
    mine = _Entry(manager, operation, str(new.get("apiVersion", "")), subresource, None, set())
    previous = managers.pop(mine.ident, None)
    for entry in managers.values():
        entry.fields -= changed | diff.removed
    if previous is not None:
        mine.fields, mine.time = previous.fields - diff.removed, previous.time
    mine.fields |= changed
    if changed or diff.removed or mine.time is None:
        mine.time = now
    managers[mine.ident] = mine
    encoded = _encode_managers(managers)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)
