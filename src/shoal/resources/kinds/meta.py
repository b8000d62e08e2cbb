"""Validation building blocks shared by every kind: field errors, ObjectMeta, selectors.

The constructors (:func:`required`, :func:`invalid`, ...) build
:class:`~shoal.kube.errors.FieldError` s with Kubernetes' cause types, so a message renders as
``spec.replicas: Invalid value: -1: must be greater than or equal to 0``.  Paths are strings in
Kubernetes' ``field.Path`` notation (``spec.containers[0].image``, ``data[key]``).

:func:`validate_object_meta` follows apimachinery ``ValidateObjectMeta`` (name, namespace,
labels, annotations, ownerReferences, finalizers).  :func:`validate_label_selector`
follows ``ValidateLabelSelector``; matching is :mod:`shoal.kube.selectors`.

:class:`GoValue` carries a pre-rendered Go ``%#v`` form so that
:meth:`~shoal.kube.errors.FieldError.message` prints maps and structs the way Kubernetes does
(``map[string]string{"app":"web"}``).

Accessors (:func:`as_dict`, :func:`as_list`) tolerate wrongly typed input: type errors are
reported by the generic schema check, so here a wrong type simply reads as empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming

NameCheck = Callable[[str], list[str]]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
NOT_FOUND = "FieldValueNotFound"

NON_NEGATIVE = "must be greater than or equal to 0"
IMMUTABLE = "field is immutable"
TOTAL_ANNOTATION_SIZE = 256 * 1024


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def child(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``parent[key]`` for defaulting: created when absent or null, None when not an object."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, REQUIRED, detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, INVALID, detail, value)


def not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    quoted = ", ".join(f'"{s}"' for s in supported)
    return FieldError(path, NOT_SUPPORTED, f"supported values: {quoted}", value)


def duplicate(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(path, DUPLICATE, detail, value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, FORBIDDEN, detail)


def too_long(path: str, max_bytes: int) -> FieldError:
    return FieldError(path, TOO_LONG, f"may not be more than {max_bytes} bytes")


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(path, NOT_FOUND, "", value)


def name_errors(path: str, value: str, check: NameCheck) -> list[FieldError]:
    """One Invalid error per message of ``check`` (a ``printing.*_errors`` function)."""
    return [invalid(path, value, msg) for msg in check(value)]


def non_negative(path: str, value: Any) -> list[FieldError]:
    if is_int(value) and value < 0:
        return [invalid(path, value, NON_NEGATIVE)]
    return []


def immutable(path: str, new: Any, old: Any) -> list[FieldError]:
    return [] if new == old else [invalid(path, new, IMMUTABLE)]


def supported(path: str, value: Any, allowed: Iterable[str], *, need: bool = True) -> list[FieldError]:
    """Required (when ``need``) and one of ``allowed`` (in the order Kubernetes lists them)."""
    allowed = list(allowed)
    if value is None or value == "":
        return [required(path)] if need else []
    return [] if value in allowed else [not_supported(path, value, allowed)]


# ---------------------------------------------------------------------------- Go rendering of bad values


class GoValue:
    """A bad value whose ``repr`` is its Go ``%#v`` rendering, for FieldError messages."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoValue) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def go_string_map(value: Any) -> GoValue:
    """``map[string]string{"a":"b"}`` (keys sorted) or ``map[string]string(nil)``."""
    if not isinstance(value, Mapping):
        return GoValue("map[string]string(nil)")
    body = ", ".join(f'"{k}":"{value[k]}"' for k in sorted(value))
    return GoValue("map[string]string{" + body + "}")


def go_intstr(value: Any) -> GoValue:
    """``intstr.IntOrString{Type:0, IntVal:1, StrVal:""}`` as Kubernetes prints a bad value."""
    if isinstance(value, str):
        return GoValue(f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:"{value}"}}')
    return GoValue(f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}')


def go_label_selector(selector: Any) -> GoValue:
    """``v1.LabelSelector{MatchLabels:..., MatchExpressions:...}`` as Kubernetes prints it."""
    sel = selector if isinstance(selector, Mapping) else {}
    exprs = sel.get("matchExpressions")
    if exprs:
        items = []
        for e in exprs:
            vals = e.get("values")
            vtext = ("[]string{" + ", ".join(f'"{v}"' for v in vals) + "}") if vals else "[]string(nil)"
            items.append(f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", '
                         f'Operator:"{e.get("operator", "")}", Values:{vtext}}}')
        etext = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    else:
        etext = "[]v1.LabelSelectorRequirement(nil)"
    return GoValue(f"v1.LabelSelector{{MatchLabels:{go_string_map(sel.get('matchLabels')).text}, "
                   f"MatchExpressions:{etext}}}")


# ---------------------------------------------------------------------------- labels & meta


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in as_dict(labels).items():
        errs += name_errors(path, key, naming.qualified_name_errors)
        if isinstance(value, str):
            errs += name_errors(path, value, naming.label_value_errors)
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for key, value in as_dict(annotations).items():
        errs += name_errors(path, key, lambda k: naming.qualified_name_errors(k.lower()))
        total += len(key) + len(value if isinstance(value, str) else "")
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def _validate_owner_references(refs: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    controllers: list[str] = []
    for i, ref in enumerate(refs):
        ref = as_dict(ref)
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errs.append(required(f"{path}[{i}].{key}", f"{key} must not be empty"))
        if ref.get("controller") is True:
            controllers.append(str(ref.get("name", "")))
    if len(controllers) > 1:
        errs.append(invalid(path, GoValue("[]v1.OwnerReference{...}"),
                            "Only one reference can have Controller set to true. Found \"true\" in "
                            f"references for {' and '.join(controllers)}"))
    return errs


def validate_object_meta(obj: Obj, name_check: NameCheck, *, namespaced: bool) -> list[FieldError]:
    """apimachinery ``ValidateObjectMeta`` for ``obj['metadata']`` (paths ``metadata.*``)."""
    meta = as_dict(obj.get("metadata"))
    errs: list[FieldError] = []
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            errs.append(required("metadata.name", "name or generateName is required"))
    elif isinstance(name, str):
        errs += name_errors("metadata.name", name, name_check)
    if namespaced:
        namespace = meta.get("namespace")
        if not namespace:
            errs.append(required("metadata.namespace"))
        elif isinstance(namespace, str):
            errs += name_errors("metadata.namespace", namespace, naming.dns1123_label_errors)
    errs += validate_labels(meta.get("labels"), "metadata.labels")
    errs += validate_annotations(meta.get("annotations"), "metadata.annotations")
    errs += _validate_owner_references(as_list(meta.get("ownerReferences")), "metadata.ownerReferences")
    for i, fin in enumerate(as_list(meta.get("finalizers"))):
        if isinstance(fin, str):
            errs += name_errors(f"metadata.finalizers[{i}]", fin, naming.qualified_name_errors)
    return errs


# ---------------------------------------------------------------------------- selectors

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(selector: Any, path: str) -> list[FieldError]:
    """``ValidateLabelSelector``: valid keys/values and well-formed expressions."""
    sel = as_dict(selector)
    errs = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(as_list(sel.get("matchExpressions"))):
        expr = as_dict(expr)
        epath = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator"), as_list(expr.get("values"))
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{epath}.values",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{epath}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{epath}.operator", op, "not a valid selector operator"))
        errs += name_errors(f"{epath}.key", str(expr.get("key", "")), naming.qualified_name_errors)
    return errs
