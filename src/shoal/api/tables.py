"""Server-side Table printing (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``).

kubectl prints the cells verbatim, so ages and every other column are formatted here with
the kind's ``columns``/``row``.  Each row carries the object as ``PartialObjectMetadata``
(``includeObject=Metadata``, the default), the full object (``Object``) or nothing
(``None``): kubectl needs the metadata for the NAMESPACE column and ``--show-labels``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shoal.kube.objects import Obj
from shoal.kube.times import age
from shoal.resources.registry import ResourceKind

Filter = Callable[[Obj], bool]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def cells(kind: ResourceKind, obj: Obj, now: datetime) -> list[Any]:
    if kind.row is not None:
        return kind.row(obj, now)
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), age(meta.get("creationTimestamp"), now)]


def table(kind: ResourceKind, objs: list[Obj], now: datetime, include: str,
          metadata: dict[str, Any], with_columns: bool = True) -> dict[str, Any]:
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": cells(kind, obj, now)}
        partial = _row_object(obj, include)
        if partial is not None:
            row["object"] = partial
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [c.definition() for c in kind.columns] if with_columns else [],
        "rows": rows,
    }
