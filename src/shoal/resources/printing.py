"""Shared printing helpers of the kinds: the columns and cells of server-side Tables.

Everything here is a pure function over plain values and mirrors a Kubernetes printer helper:

* :func:`age_of` is the AGE column (apimachinery ``HumanDuration`` through
  :func:`shoal.kube.times.age`: "<unknown>" for no timestamp, "<invalid>" for a timestamp more
  than 1 s in the future).
* :func:`format_labels` follows ``labels.FormatLabels``; selectors print through
  :func:`shoal.kube.selectors.format_label_selector`.
* :func:`container_cells`, :func:`none_if_empty`, :func:`list_with_more` are the printers'
  cell layouts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shoal.kube import times
from shoal.resources.registry import Column

NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, although some "
             "resources may allow a client to request the generation of an appropriate name automatically. "
             "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
             "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
            "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
            "not set this value. It is represented in RFC3339 form and is in UTC.\n\n"
            "Populated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/"
            "sig-architecture/api-conventions.md#metadata")
#: The first and the age column every printer uses.
NAME_COLUMN = Column("Name", format="name", description=NAME_DESC)
AGE_COLUMN = Column("Age", description=AGE_DESC)
CONTAINERS_COLUMN = Column("Containers", priority=1,
                           description="Names of each container in the template.")
IMAGES_COLUMN = Column("Images", priority=1,
                       description="Images referenced by each container in the template.")


def name_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""


def age_of(obj: Mapping[str, Any], now: datetime) -> str:
    metadata = obj.get("metadata")
    return times.age(metadata.get("creationTimestamp") if isinstance(metadata, Mapping) else None, now)



def none_if_empty(value: Any, empty: str = "<none>") -> str:
    """``value`` as a string, or ``<none>`` (or ``empty``) when it is None or ""."""
    if value is None or value == "":
        return empty
    return str(value)


def join(values: Iterable[Any], sep: str = ",") -> str:
    return sep.join(str(v) for v in values)


def list_with_more(items: list[str], limit: int = 3, empty: str = "<unset>") -> str:
    """Printers' ``listWithMoreString``: first ``limit`` items, then " + N more..."."""
    if len(items) > limit:
        return f"{','.join(items[:limit])} + {len(items) - limit} more..."
    return ",".join(items) or empty


def format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: "k=v,k2=v2" sorted by key, "<none>" when empty."""
    if not isinstance(labels, Mapping) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def container_cells(containers: Any) -> tuple[str, str]:
    """Printers' ``layoutContainerCells``: comma-joined container names and images."""
    items = [c for c in containers or [] if isinstance(c, Mapping)]
    return (",".join(str(c.get("name", "")) for c in items),
            ",".join(str(c.get("image", "")) for c in items))
