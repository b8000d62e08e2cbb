"""Typed API errors and their Kubernetes ``Status`` form.

Every failure that reaches a client is an :class:`ApiError`.  ``to_status()`` renders the
``Status`` object kubectl and client-go understand: ``reason`` follows
k8s.io/apimachinery/pkg/api/errors (NotFound, AlreadyExists, Conflict, Invalid, BadRequest,
Unauthorized, Forbidden, MethodNotAllowed, Gone/Expired, UnsupportedMediaType, InternalError),
and for Invalid the message names each bad field, e.g.
``Deployment.apps "web" is invalid: spec.replicas: Invalid value: "three": must be an integer``.

Wire form (what kube-apiserver writes, byte for byte)
-----------------------------------------------------
:func:`status_object` puts a Status in the field order of Go's ``metav1.Status`` (kind,
apiVersion, metadata, status, message, reason, details, code; details: name, group, kind, uid,
causes, retryAfterSeconds; a cause: reason, message, field) and drops what Go's ``omitempty``
drops (an empty ``group``, a zero ``code``, an empty ``causes`` ...; ``metadata`` is always
there, ``{}``).  :func:`encode_status` writes it as Go's ``json.Encoder`` does: compact, ``<``
``>`` ``&`` U+2028 U+2029 escaped as ``\\u003c`` ..., and a trailing newline.  A cause's
``message`` is the field error without its path (``ErrorBody`` in Kubernetes), the Status
``message`` carries the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field.  ``type`` is Kubernetes' cause type, e.g. ``FieldValueRequired``."""

    path: str
    type: str
    detail: str
    value: Any = None

    #: Kubernetes' human word for each cause type, used in the message.
    _WORDS: ClassVar[dict[str, str]] = {
        "FieldValueRequired": "Required value",
        "FieldValueInvalid": "Invalid value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTypeInvalid": "Invalid value",
        "FieldValueUnknown": "Unknown field",
        "FieldValueNotFound": "Not found",
        "FieldValueTooMany": "Too many",
    }

    def message(self) -> str:
        """``path: body``, as in the Status message."""
        return f"{self.path}: {self.body()}"

    def body(self) -> str:
        """The error without its path (Kubernetes' ``ErrorBody``), as in a Status cause."""
        word = self._WORDS.get(self.type, "Invalid value")
        if self.type in ("FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate",
                         "FieldValueTypeInvalid", "FieldValueNotFound") and self.value is not None:
            shown = f'"{self.value}"' if isinstance(self.value, str) else repr(self.value)
            if isinstance(self.value, bool):
                shown = "true" if self.value else "false"
            if not self.detail:
                return f"{word}: {shown}"
            return f"{word}: {shown}: {self.detail}"
        if self.detail:
            return f"{word}: {self.detail}"
        return word


@dataclass(slots=True)
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        """The Status object, in kube-apiserver's field order (:func:`status_object`)."""
        return status_object({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": self.message, "reason": self.reason,
                              "details": self.details or None, "code": self.code})

    def status_body(self) -> bytes:
        """The Status as kube-apiserver writes it on the wire (:func:`encode_status`)."""
        return encode_status(self.to_status())


#: Field order of Go's metav1.Status, StatusDetails, StatusCause and ListMeta (all omitempty
#: but ``metadata``, a struct, which Go always writes).
_STATUS_KEYS = ("kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code")
_DETAILS_KEYS = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_KEYS = ("reason", "message", "field")
_LIST_META_KEYS = ("selfLink", "resourceVersion", "continue", "remainingItemCount")
#: What Go's json.Encoder escapes beyond what orjson does (SetEscapeHTML defaults to true).
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
               ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def _present(value: Any) -> bool:
    """Go's omitempty: "" / 0 / false / nil / an empty list or map are left out."""
    return value is not None and value != "" and value != 0 and value != [] and value != {}


def _ordered(source: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: source[key] for key in keys if _present(source.get(key))}


def status_object(status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` with kube-apiserver's field order and omitempty rules (see the module doc).

    Keys Go's ``metav1.Status`` does not have are dropped, as decoding into it would; a
    ``details`` mapping is kept even when empty (Go's pointer: ``"details":{}``)."""
    out: dict[str, Any] = {}
    for key in _STATUS_KEYS:
        value = status.get(key)
        if key == "metadata":
            out[key] = _ordered(value or {}, _LIST_META_KEYS)
        elif key == "details" and isinstance(value, Mapping):
            details = _ordered(value, _DETAILS_KEYS)
            if "causes" in details:
                details["causes"] = [_ordered(cause, _CAUSE_KEYS) for cause in details["causes"]]
            out[key] = details
        elif key != "details" and _present(value):
            out[key] = value
    return out


def encode_status(status: Mapping[str, Any]) -> bytes:
    """``status`` as kube-apiserver writes it: :func:`status_object`, compact JSON escaped as
    Go's ``json.Encoder`` escapes it, and the encoder's trailing newline."""
    body = orjson.dumps(status_object(status))
    for raw, escaped in _GO_ESCAPES:
        if raw in body:
            body = body.replace(raw, escaped)
    return body + b"\n"


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    {"name": name, "group": group, "kind": resource})


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    {"name": name, "group": group, "kind": resource})


def conflict(resource: str, group: str, name: str, detail: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
        {"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    text = errors[0].message() if len(errors) == 1 else "[" + ", ".join(e.message() for e in errors) + "]"
    causes = [{"reason": e.type, "message": e.body(), "field": e.path} for e in errors]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}',
                    {"name": name, "group": group, "kind": kind, "causes": causes})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                    f"accepted media types include: application/json-patch+json, "
                    f"application/merge-patch+json, application/apply-patch+yaml, "
                    f"application/strategic-merge-patch+json (got {content_type!r})")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)
