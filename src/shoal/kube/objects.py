"""Kubernetes objects as JSON dicts, their typed metadata, and read-only accessors.

Every component holds objects the way they come off the wire: :data:`Obj`, a ``dict`` of JSON
values.  The parts that every component reads are typed as ``TypedDict`` s
(:class:`ObjectMeta`, :class:`OwnerReference`), and read through the accessors here.

Invariants of the accessors:

1. They never raise on a malformed object: a missing or wrongly typed part reads as empty
   (``{}``, ``""``, ``[]``, ``None``), also for ``obj=None``.
2. ``meta``/``spec``/``status`` (reading) return the object's own map when it is there, so writing to
   it changes the object; the empty map returned otherwise is a fresh one, so writing to it
   never changes ``obj``.  :func:`ensure` is the writing form: it stores the new empty map.
"""


from typing import Any, TypedDict, cast

__all__ = ["SERVICE_NAME_LABEL", "Obj", "ObjectMeta", "OwnerReference", "annotations", "controller_of", "deleting",
           "ensure", "labels", "meta", "name", "namespace", "owner_references", "revision", "slice_service_key",
           "spec", "status", "typed_meta", "uid"]

#: The label an EndpointSlice names its Service with (discovery.k8s.io/v1).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Obj = dict[str, Any]


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    deletionGracePeriodSeconds: int
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]
    finalizers: list[str]
    managedFields: list[dict[str, Any]]


def _part(obj: Obj | None, part: str) -> dict[str, Any]:
    value = obj.get(part) if obj is not None else None
    return value if isinstance(value, dict) else {}


def meta(obj: Obj | None) -> dict[str, Any]:
    return _part(obj, "metadata")


def ensure(obj: Obj, part: str) -> dict[str, Any]:
    """The object's ``part`` map for writing: created in ``obj`` when missing or malformed."""
    value = obj.get(part)
    if not isinstance(value, dict):
        value = obj[part] = {}
    return value


def typed_meta(obj: Obj | None) -> ObjectMeta:
    """``metadata`` as :class:`ObjectMeta` (the same map as :func:`meta`, typed for reading)."""
    return cast(ObjectMeta, _part(obj, "metadata"))


def spec(obj: Obj | None) -> dict[str, Any]:
    return _part(obj, "spec")


def status(obj: Obj | None) -> dict[str, Any]:
    return _part(obj, "status")


def _text(obj: Obj | None, field: str) -> str:
    value = meta(obj).get(field)
    return value if isinstance(value, str) else ""


def name(obj: Obj | None) -> str:
    return _text(obj, "name")


def namespace(obj: Obj | None) -> str:
    return _text(obj, "namespace")


def uid(obj: Obj | None) -> str:
    return _text(obj, "uid")


def _string_map(obj: Obj | None, field: str) -> dict[str, str]:
    value = meta(obj).get(field)
    return value if isinstance(value, dict) else {}


def labels(obj: Obj | None) -> dict[str, str]:
    return _string_map(obj, "labels")


def annotations(obj: Obj | None) -> dict[str, str]:
    return _string_map(obj, "annotations")


def revision(obj: Obj | None) -> int:
    """``metadata.resourceVersion`` as the number it is (the store's global revision, so it
    orders writes across objects); 0 when absent or not a number."""
    try:
        return int(str(meta(obj).get("resourceVersion") or 0))
    except ValueError:
        return 0


def slice_service_key(obj: Obj | None) -> list[str]:
    """``["namespace/service"]`` of the Service an EndpointSlice belongs to (its
    :data:`SERVICE_NAME_LABEL`), ``[]`` without one: an informer index function."""
    service, ns = labels(obj).get(SERVICE_NAME_LABEL), namespace(obj)
    return [f"{ns}/{service}"] if service and ns else []


def deleting(obj: Obj | None) -> bool:
    """Whether the object has a ``deletionTimestamp`` (graceful deletion or finalizers pending)."""
    return bool(meta(obj).get("deletionTimestamp"))


def owner_references(obj: Obj | None) -> list[OwnerReference]:
    refs = meta(obj).get("ownerReferences")
    return [cast(OwnerReference, r) for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def controller_of(obj: Obj | None) -> OwnerReference | None:
    """The ``ownerReferences`` entry with ``controller: true``, or None (there is at most one)."""
    for ref in owner_references(obj):
        if ref.get("controller") is True:
            return ref
    return None

