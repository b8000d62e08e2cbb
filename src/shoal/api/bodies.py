"""Request body decoding and response encoding.

Request bodies arrive as JSON (also when no Content-Type is sent: the Python client omits
it), YAML (``application/yaml``) or Kubernetes protobuf (``application/vnd.kubernetes.protobuf``,
sent by ``kubectl create secret|configmap|namespace|deployment|service|serviceaccount``).
Every decoder here is bounded (size, depth, duplicate keys): see :mod:`shoal.api.decode`.
Responses are always JSON (``application/json``), which every client accepts, or a Table when
the client asks for ``as=Table``; a ``Status`` is written byte for byte as kube-apiserver
writes it (:func:`json_response`).

:func:`clone` deep-copies a JSON value through orjson (about ten times faster than
``copy.deepcopy`` on a Pod); use it only on values that came from JSON, such as stored objects
(a YAML body may hold dates, which JSON would turn into strings).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from shoal.api import decode, decode_yaml
from shoal.api.decode import FieldValidation, report_duplicates
from shoal.api.protobuf import decode_k8s_protobuf
from shoal.kube import errors

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, str, int, float, bool, None)."""
    return orjson.loads(orjson.dumps(value))


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_json(body: bytes, request: FieldValidation | None = None) -> Any:
    """A JSON body, bounded (see :mod:`shoal.api.decode`); duplicate keys reported to ``request``."""
    return report_duplicates(decode.decode_json(body), request)


def decode_yaml_or_json(body: bytes, request: FieldValidation | None = None) -> Any:
    """A YAML (or JSON) body, bounded (see :mod:`shoal.api.decode_yaml`)."""
    return report_duplicates(decode_yaml.decode_yaml_or_json(body), request)


def decode_body(body: bytes, content_type: str | None, request: FieldValidation | None = None) -> Any:
    """A create, update or subresource body in the format its Content-Type names.

    ``request`` (a ``WriteContext``) decides what duplicate keys do (``fieldValidation``);
    without it they are ignored, last value winning."""
    kind = media_type(content_type)
    if not body:
        raise errors.bad_request("the request body is empty")
    if kind in ("", JSON, "*/*"):
        return decode_json(body, request)
    if kind in ("application/yaml", "application/x-yaml", "text/yaml"):
        return decode_yaml_or_json(body, request)
    if kind == PROTOBUF:
        obj = decode_k8s_protobuf(body)
        where = decode.too_deep_at(obj)
        if where is not None:
            raise decode.depth_error("protobuf request body", where)
        return obj
    raise errors.ApiError(415, "UnsupportedMediaType",
                          f"the body of the request was in an unknown format - accepted media types "
                          f"include: application/json, application/yaml, {PROTOBUF}")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as JSON; a ``Status`` object exactly as kube-apiserver writes it
    (:func:`shoal.kube.errors.encode_status`: Go's field order, omitempty, trailing newline)."""
    is_status = isinstance(data, dict) and data.get("kind") == "Status"
    body = errors.encode_status(data) if is_status else orjson.dumps(data)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in str(accept)
