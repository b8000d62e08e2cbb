"""The registry of kinds the API server serves.

A :class:`ResourceKind` describes one Kubernetes kind completely enough for the generic
handlers in ``shoal.api``: its names (for discovery and URLs), its subresources, and four
pure functions supplied by the kind's module under ``shoal.resources.kinds``:

* ``default(obj)`` fills Kubernetes' API defaults in place (``strategy``, ``protocol: TCP``,
  ``restartPolicy: Always`` ...).  It must be idempotent.
* ``validate(obj, old)`` returns :class:`~shoal.kube.errors.FieldError` s for semantic
  problems (required fields, ranges, immutable fields when ``old`` is given).  Type and
  unknown-field checks are done generically from the OpenAPI schema, not here.
* ``row(obj, now)`` gives one server-side Table row (the cells of ``columns``, the columns
  Kubernetes prints).
* ``fields(obj)`` returns the field-selector values the kind supports beyond
  ``metadata.name`` / ``metadata.namespace`` (e.g. ``status.phase``, ``spec.nodeName``).

Invariants: the functions never do I/O and never mutate anything but their argument.
Objects are plain JSON ``dict`` s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description or self.name, "priority": self.priority}


def _no_defaults(obj: Obj) -> None:
    return None


def _no_validation(obj: Obj, old: Obj | None) -> list[FieldError]:
    return []


def _no_fields(obj: Obj) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class ResourceKind:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: Subresources served, e.g. ("status", "scale").  "status" means the main resource
    #: ignores changes to ``.status`` and ``/status`` ignores everything but ``.status``.
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    columns: tuple[Column, ...] = (Column("Name", format="name"), Column("Age", "string"))
    #: One row of cells per object, matching ``columns``.
    row: Callable[[Obj, datetime], list[Any]] | None = None
    default: Callable[[Obj], None] = _no_defaults
    validate: Callable[[Obj, Obj | None], list[FieldError]] = _no_validation
    fields: Callable[[Obj], dict[str, str]] = _no_fields
    #: For kinds with a scale subresource: where replicas and the selector live.
    scale_replicas_path: tuple[str, ...] = ("spec", "replicas")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


class Registry:
    """Kinds by (group, version, plural); the order of registration is the discovery order."""

    def __init__(self, kinds: Iterable[ResourceKind] = ()) -> None:
        self._by_plural: dict[tuple[str, str, str], ResourceKind] = {}
        self._by_kind: dict[tuple[str, str], ResourceKind] = {}
        for kind in kinds:
            self.add(kind)

    def add(self, kind: ResourceKind) -> None:
        self._by_plural[(kind.group, kind.version, kind.plural)] = kind
        self._by_kind[(kind.api_version, kind.kind)] = kind

    def lookup(self, group: str, version: str, plural: str) -> ResourceKind | None:
        return self._by_plural.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceKind | None:
        return self._by_kind.get((api_version, kind))

    def __iter__(self) -> Iterator[ResourceKind]:
        return iter(self._by_plural.values())

    def group_versions(self) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for kind in self._by_plural.values():
            gv = (kind.group, kind.version)
            if gv not in seen:
                seen.append(gv)
        return seen
