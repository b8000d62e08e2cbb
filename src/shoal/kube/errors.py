"""Typed API errors and their Kubernetes ``Status`` form.

Every failure that reaches a client is an :class:`ApiError`.  ``to_status()`` renders the
``Status`` object kubectl and client-go understand: ``reason`` follows
k8s.io/apimachinery/pkg/api/errors (NotFound, AlreadyExists, Conflict, Invalid, BadRequest,
Unauthorized, Forbidden, MethodNotAllowed, Gone/Expired, UnsupportedMediaType, InternalError),
and for Invalid the message names each bad field, e.g.
``Deployment.apps "web" is invalid: spec.replicas: Invalid value: "three": must be an integer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


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
        word = self._WORDS.get(self.type, "Invalid value")
        if self.type in ("FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate",
                         "FieldValueTypeInvalid", "FieldValueNotFound") and self.value is not None:
            shown = f'"{self.value}"' if isinstance(self.value, str) else repr(self.value)
            if isinstance(self.value, bool):
                shown = "true" if self.value else "false"
            if not self.detail:
                return f"{self.path}: {word}: {shown}"
            return f"{self.path}: {word}: {shown}: {self.detail}"
        if self.detail:
            return f"{self.path}: {word}: {self.detail}"
        return f"{self.path}: {word}"


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
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


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
    causes = [{"reason": e.type, "message": e.message(), "field": e.path} for e in errors]
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
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)
