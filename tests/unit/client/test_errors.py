"""Mapping server answers to the client's typed errors (pure, no network)."""

from __future__ import annotations

import pytest

from shoal.client import errors
from shoal.client.errors import error_from_status


def status(code: int, reason: str, message: str = "boom", **extra: object) -> dict[str, object]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code, **extra}


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        pytest.param(400, "BadRequest", errors.BadRequestError, id="400"),
        pytest.param(401, "Unauthorized", errors.UnauthorizedError, id="401"),
        pytest.param(403, "Forbidden", errors.ForbiddenError, id="403"),
        pytest.param(404, "NotFound", errors.NotFoundError, id="404"),
        pytest.param(409, "Conflict", errors.ConflictError, id="409-conflict"),
        pytest.param(409, "AlreadyExists", errors.AlreadyExistsError, id="409-exists"),
        pytest.param(410, "Expired", errors.GoneError, id="410"),
        pytest.param(422, "Invalid", errors.InvalidError, id="422"),
        pytest.param(500, "InternalError", errors.ServerError, id="500"),
        pytest.param(503, "ServiceUnavailable", errors.ServerError, id="503"),
        pytest.param(405, "MethodNotAllowed", errors.ApiClientError, id="405-generic"),
    ],
)
def test_each_code_maps_to_its_class_and_keeps_the_status(code: int, reason: str,
                                                          cls: type[errors.ApiClientError]) -> None:
    body = status(code, reason, f"{reason} happened")
    error = error_from_status(code, body)
    assert type(error) is cls
    assert isinstance(error, errors.ApiClientError)
    assert error.status is body
    assert (error.code, error.reason, error.message) == (code, reason, f"{reason} happened")
    assert str(error) == f"{reason} happened"


def test_a_watch_error_event_uses_the_status_code() -> None:
    error = error_from_status(None, status(410, "Expired", "too old resource version: 5 (10)"))
    assert isinstance(error, errors.GoneError)
    assert error.code == 410


def test_a_non_status_body_is_replaced_by_a_synthesized_status() -> None:
    error = error_from_status(404, "")
    assert isinstance(error, errors.NotFoundError)
    assert error.status["kind"] == "Status"
    assert error.reason == "NotFound"
    assert "404" in error.message
    text = error_from_status(502, "bad gateway from proxy")
    assert isinstance(text, errors.ServerError)
    assert text.message == "bad gateway from proxy"
    odd = error_from_status(418, {"unexpected": True})
    assert type(odd) is errors.ApiClientError
    assert odd.code == 418


def test_a_status_without_a_code_gets_the_http_code() -> None:
    error = error_from_status(409, {"kind": "Status", "reason": "Conflict", "message": "stale"})
    assert isinstance(error, errors.ConflictError)
    assert error.status["code"] == 409


def test_invalid_exposes_the_field_causes() -> None:
    causes = [{"reason": "FieldValueRequired", "message": "spec.selector: Required value",
               "field": "spec.selector"}]
    error = error_from_status(422, status(422, "Invalid", details={"kind": "deployments", "causes": causes}))
    assert isinstance(error, errors.InvalidError)
    assert error.causes == causes
    assert error.details["kind"] == "deployments"


def test_transport_error_has_a_status_with_code_zero() -> None:
    error = errors.TransportError("connection refused")
    assert isinstance(error, errors.ApiClientError)
    assert error.code == 0
    assert error.status["reason"] == "TransportError"
    assert str(error) == "connection refused"


def test_errors_can_be_raised_from_a_cause() -> None:
    cause = ValueError("underlying")
    with pytest.raises(errors.NotFoundError) as info:
        try:
            raise cause
        except ValueError as exc:
            raise error_from_status(404, status(404, "NotFound")) from exc
    assert info.value.__cause__ is cause


def test_the_exported_names_are_the_public_ones() -> None:
    public = {name for name in vars(errors) if not name.startswith("_")
              and (isinstance(getattr(errors, name), type) or callable(getattr(errors, name)))
              and getattr(getattr(errors, name), "__module__", "") == errors.__name__}
    assert set(errors.__all__) == public
