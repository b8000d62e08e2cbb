"""Shared helpers of the Table tests: the registry's kinds and their rows at a fixed NOW."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shoal.resources.kinds import build_registry
from shoal.resources.registry import ResourceKind

REGISTRY = build_registry()
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
CREATED = "2025-06-01T11:55:00Z"  # 5m before NOW


def kind(plural: str) -> ResourceKind:
    found = [k for k in REGISTRY if k.plural == plural]
    assert len(found) == 1
    return found[0]


def row(plural: str, obj: dict[str, Any]) -> list[Any]:
    k = kind(plural)
    assert k.row is not None
    cells = k.row(obj, NOW)
    assert len(cells) == len(k.columns)
    return cells


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": CREATED, **extra}
