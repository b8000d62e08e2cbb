"""Typed errors raised by :mod:`shoal.client`.

The API server answers every failure with a Kubernetes ``Status`` object; the client turns
that back into an exception whose class says what happened, so callers write
``except NotFoundError`` instead of comparing codes.  Every error keeps the ``Status`` dict it
was built from (``.status``) and is raised with ``raise ... from`` the transport exception
that carried it.

Exception tree::

    ApiClientError                 any failure talking to the API server
    ├── BadRequestError            400
    ├── UnauthorizedError          401 (bad or missing token)
    ├── ForbiddenError             403
    ├── NotFoundError              404
    ├── ConflictError              409 reason Conflict (resourceVersion / uid precondition)
    ├── AlreadyExistsError         409 reason AlreadyExists
    ├── GoneError                  410 (resourceVersion expired: relist)
    ├── InvalidError               422 (``causes`` lists the bad fields)
    ├── ServerError                5xx
    └── TransportError             no HTTP answer (connection refused, TLS, timeout)

:func:`error_from_status` is the single mapping from ``(HTTP code, Status)`` to a class.
A watch ``ERROR`` event carries a ``Status`` without an HTTP code; its ``code`` field is used.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExistsError",
    "ApiClientError",
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "NotFoundError",
    "ServerError",
    "TransportError",
    "UnauthorizedError",
    "error_from_status",
    "make_status",
]

Status = dict[str, Any]


def make_status(code: int, reason: str, message: str) -> Status:
    """A failure ``Status`` dict, for answers that did not carry one (empty or non-JSON body)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class ApiClientError(Exception):
    """A failed API call.  ``status`` is the server's ``Status`` object (or one made up for it)."""

    def __init__(self, status: Status) -> None:
        self.status: Status = status
        super().__init__(self.message)

    @property
    def code(self) -> int:
        code = self.status.get("code", 0)
        return code if isinstance(code, int) else 0

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.status.get("message", "")) or f"HTTP {self.code} {self.reason}".strip()

    @property
    def details(self) -> dict[str, Any]:
        details = self.status.get("details")
        return details if isinstance(details, dict) else {}

    def __str__(self) -> str:
        return self.message


class BadRequestError(ApiClientError):
    """400: the request was malformed."""


class UnauthorizedError(ApiClientError):
    """401: the credential was missing or rejected."""


class ForbiddenError(ApiClientError):
    """403: authenticated but not allowed."""


class NotFoundError(ApiClientError):
    """404: the object (or the resource type) does not exist."""


class ConflictError(ApiClientError):
    """409 Conflict: a resourceVersion or uid precondition did not hold; re-read and retry."""


class AlreadyExistsError(ApiClientError):
    """409 AlreadyExists: create of a name that is taken."""


class GoneError(ApiClientError):
    """410: the requested resourceVersion is too old (compacted); list again."""


class InvalidError(ApiClientError):
    """422: the object failed validation."""

    @property
    def causes(self) -> list[dict[str, Any]]:
        causes = self.details.get("causes")
        return [c for c in causes if isinstance(c, dict)] if isinstance(causes, list) else []


class ServerError(ApiClientError):
    """5xx: the server failed; usually worth retrying with backoff."""


class TransportError(ApiClientError):
    """No HTTP answer at all.  The ``Status`` is synthesized with ``code`` 0."""

    def __init__(self, message: str) -> None:
        super().__init__(make_status(0, "TransportError", message))


_BY_CODE: dict[int, type[ApiClientError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    410: GoneError,
    422: InvalidError,
}


def error_from_status(http_code: int | None, status: Any) -> ApiClientError:
    """Build the typed error for a failed answer.

    ``http_code`` is the HTTP status (``None`` for a watch ERROR event, where the Status'
    own ``code`` is used).  ``status`` is the decoded body; anything that is not a ``Status``
    dict is replaced by a synthesized one so every error has the same shape.
    """
    if isinstance(status, dict) and status.get("kind") == "Status":
        body: Status = status
    else:
        code = http_code or 0
        text = status if isinstance(status, str) and status else f"the server responded with HTTP {code}"
        body = make_status(code, _default_reason(code), text)
    raw_code = http_code if http_code is not None else body.get("code")
    code = raw_code if isinstance(raw_code, int) else 0
    if "code" not in body:
        body = {**body, "code": code}
    if code == 409:
        exists = body.get("reason") == "AlreadyExists"
        cls: type[ApiClientError] = AlreadyExistsError if exists else ConflictError
    elif code >= 500:
        cls = ServerError
    else:
        cls = _BY_CODE.get(code, ApiClientError)
    return cls(body)


def _default_reason(code: int) -> str:
    return {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        409: "Conflict",
        410: "Expired",
        415: "UnsupportedMediaType",
        422: "Invalid",
        429: "TooManyRequests",
        503: "ServiceUnavailable",
        504: "Timeout",
    }.get(code, "InternalError" if code >= 500 else "Unknown")
