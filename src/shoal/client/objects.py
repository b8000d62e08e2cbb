"""Read-only accessors for the parts of a Kubernetes object held as a JSON dict.

``meta(obj)``, ``spec(obj)`` and ``status(obj)`` return the object's ``metadata``, ``spec`` or
``status`` map, or an empty dict when it is missing or malformed (also for ``obj=None``).  The
empty dict is a fresh one: writing to it never changes ``obj``.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _part(obj: Obj | None, key: str) -> dict[str, Any]:
    value = obj.get(key) if obj is not None else None
    return value if isinstance(value, dict) else {}


def meta(obj: Obj | None) -> dict[str, Any]:
    return _part(obj, "metadata")


def spec(obj: Obj | None) -> dict[str, Any]:
    return _part(obj, "spec")


def status(obj: Obj | None) -> dict[str, Any]:
    return _part(obj, "status")
