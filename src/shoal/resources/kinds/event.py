"""core/v1 Event and coordination.k8s.io/v1 Lease: validation, rows, field selectors.

Event (no API defaults in Kubernetes): validation follows ``legacyValidateEvent`` for core/v1
(``involvedObject.namespace`` must match the event's namespace; events with ``eventTime``
need ``reportingComponent``, ``reportingInstance``, ``action`` and ``reason``).  The row is
``printEvent`` with all wide cells: Last Seen, Type, Reason, Object ("kind/name", kind lower
case), Subobject, Source, Message, First Seen, Count, Name.  Field selectors:
``involvedObject.*``, ``reason``, ``reportingComponent``, ``source``, ``type``.

Lease (no defaults): ``leaseDurationSeconds`` > 0, ``leaseTransitions`` >= 0, times parse,
``preferredHolder`` only with ``strategy``.  Row: Name, Holder, Age.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shoal.kube import times
from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming, printing
from shoal.resources.kinds import meta
from shoal.resources.kinds.meta import as_dict, invalid, required
from shoal.resources.registry import Column, ResourceKind

REASON_LIMIT = 128
ACTION_LIMIT = 128
INSTANCE_LIMIT = 128
NOTE_LIMIT = 1024

# ---------------------------------------------------------------------------- Event


def _too_many_chars(path: str, value: Any, limit: int) -> list[FieldError]:
    if isinstance(value, str) and len(value) > limit:
        return [invalid(path, "", f"can have at most {limit} characters")]
    return []


def validate_event(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    namespace = as_dict(obj.get("metadata")).get("namespace") or ""
    involved = as_dict(obj.get("involvedObject"))
    involved_ns = involved.get("namespace") or ""
    mismatch = invalid("involvedObject.namespace", involved_ns, "does not match event.namespace")
    if not obj.get("eventTime"):
        if namespace != involved_ns and (involved_ns or namespace != "default"):
            errs.append(mismatch)
        return errs
    if not involved_ns and namespace not in ("default", "kube-system"):
        errs.append(mismatch)
    controller = obj.get("reportingComponent") or ""
    if not controller:
        errs.append(required("reportingComponent"))
    errs += meta.name_errors("reportingComponent", str(controller), naming.qualified_name_errors)
    for key, limit in (("reportingInstance", INSTANCE_LIMIT), ("action", ACTION_LIMIT),
                       ("reason", REASON_LIMIT)):
        if not obj.get(key):
            errs.append(required(key))
        errs += _too_many_chars(key, obj.get(key), limit)
    errs += _too_many_chars("message", obj.get("message"), NOTE_LIMIT)
    return errs


def event_source(obj: Obj) -> str:
    """Printers' ``formatEventSource``: "component, host" (reporting fields as fallbacks)."""
    source = as_dict(obj.get("source"))
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return f"{component}, {host}" if host else str(component)


def event_row(obj: Obj, now: datetime) -> list[Any]:
    first = obj.get("firstTimestamp")
    first_seen = times.age(first, now) if first else times.age(obj.get("eventTime"), now)
    last = obj.get("lastTimestamp")
    last_seen = times.age(last, now) if last else first_seen
    count = obj.get("count") or 0
    series = obj.get("series")
    if isinstance(series, dict):
        last_seen = times.age(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif count == 0:
        count = 1
    involved = as_dict(obj.get("involvedObject"))
    kind, name = str(involved.get("kind") or "").lower(), involved.get("name")
    target = f"{kind}/{name}" if name else kind
    return [last_seen, str(obj.get("type") or ""), str(obj.get("reason") or ""), target,
            str(involved.get("fieldPath") or ""), event_source(obj), str(obj.get("message") or "").strip(),
            first_seen, count, printing.name_of(obj)]


def event_fields(obj: Obj) -> dict[str, str]:
    involved = as_dict(obj.get("involvedObject"))
    fields = {f"involvedObject.{key}": str(involved.get(key) or "")
              for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
    source = as_dict(obj.get("source")).get("component") or obj.get("reportingComponent") or ""
    fields.update({"reason": str(obj.get("reason") or ""),
                   "reportingComponent": str(obj.get("reportingComponent") or ""),
                   "source": str(source), "type": str(obj.get("type") or "")})
    return fields


EVENT = ResourceKind(
    group="", version="v1", kind="Event", plural="events", singular="event", namespaced=True,
    short_names=("ev",),
    columns=(
        Column("Last Seen", description="The time at which the most recent occurrence of this event was "
               "recorded."),
        Column("Type", description="Type of this event (Normal, Warning), new types could be added in the "
               "future"),
        Column("Reason", description="This should be a short, machine understandable string that gives the "
               "reason for the transition into the object's current status."),
        Column("Object", description="The object that this event is about."),
        Column("Subobject", priority=1, description="If referring to a piece of an object instead of an "
               "entire object, this string should contain a valid JSON/Go field access statement."),
        Column("Source", priority=1, description="The component reporting this event. Should be a short "
               "machine understandable string."),
        Column("Message", description="A human-readable description of the status of this operation."),
        Column("First Seen", priority=1, description="The time at which the event was first recorded. "
               "(Time of server receipt is in TypeMeta.)"),
        Column("Count", priority=1, description="The number of times this event has occurred."),
        Column("Name", format="name", priority=1, description=printing.NAME_DESC),
    ),
    row=event_row, validate=validate_event, fields=event_fields,
)

# ---------------------------------------------------------------------------- Lease


def validate_lease(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    spec = as_dict(obj.get("spec"))
    duration = spec.get("leaseDurationSeconds")
    if meta.is_int(duration) and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    errs += meta.non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and times.parse_time(value) is None:
            errs.append(invalid(f"spec.{key}", value, "must be an RFC 3339 date-time"))
    strategy = spec.get("strategy")
    if strategy:
        errs += meta.supported("spec.strategy", strategy, ("OldestEmulationVersion",))
    elif spec.get("preferredHolder"):
        errs.append(meta.forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
    return errs


def lease_row(obj: Obj, now: datetime) -> list[Any]:
    return [printing.name_of(obj), str(as_dict(obj.get("spec")).get("holderIdentity") or ""),
            printing.age_of(obj, now)]


LEASE = ResourceKind(
    group="coordination.k8s.io", version="v1", kind="Lease", plural="leases", singular="lease",
    namespaced=True,
    columns=(printing.NAME_COLUMN,
             Column("Holder", description="holderIdentity contains the identity of the holder of a current "
                    "lease."),
             printing.AGE_COLUMN),
    row=lease_row, validate=validate_lease,
)
