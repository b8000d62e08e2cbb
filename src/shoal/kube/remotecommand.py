"""Wire formats of the streaming pod subresources ``pods/log`` and ``pods/exec``.

Shared by the API server (:mod:`shoal.api.podproxy`) and the node agent's own HTTPS API
(:mod:`shoal.agent.server`), so both parse and validate the query the same way.

Query parameters (Kubernetes ``PodLogOptions`` / ``PodExecOptions``)
--------------------------------------------------------------------
* logs: ``container``, ``follow``, ``previous``, ``timestamps``, ``tailLines``, ``limitBytes``,
  ``sinceSeconds``, ``sinceTime`` (RFC 3339).  A value that does not parse is a 400
  BadRequest; a value out of range (negative ``tailLines``, ``limitBytes`` or
  ``sinceSeconds`` below 1, both ``sinceSeconds`` and ``sinceTime``) is a 422 Invalid
  ``PodLogOptions``, as the real API server answers.
* exec: ``command`` (repeated, at least one), ``container``, ``stdin``, ``stdout``, ``stderr``,
  ``tty``; at least one of the three streams must be requested.
* Booleans follow Go's ``strconv.ParseBool`` (``1 t T TRUE true True 0 f F FALSE false False``),
  an empty value is false.

Channel framing (subprotocols ``v5.channel.k8s.io`` and ``v4.channel.k8s.io``)
------------------------------------------------------------------------------
Every message is a binary WebSocket frame whose first byte is the channel: 0 stdin, 1 stdout,
2 stderr, 3 error/status (one JSON ``Status`` when the command ends), 4 resize (JSON
``{"Width": w, "Height": h}``), 255 close (v5 only: ``\\xff`` + the channel being closed, so
``\\xff\\x00`` means "stdin reached EOF").  v4 is the same without channel 255.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shoal.kube import errors, times
from shoal.kube.params import query_int64

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
#: The subprotocols served, in order of preference.
SUBPROTOCOLS = (V5, V4)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"", "0", "f", "F", "FALSE", "false", "False"})


class FrameError(ValueError):
    """A channel message that cannot be understood (empty, or a malformed resize)."""


# -- query parameters ----------------------------------------------------------------------

def parse_bool(params: QueryParams, name: str) -> bool:
    value = params.get(name)
    if value is None or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise errors.bad_request(f'{name}: invalid boolean value "{value}"')


def _parse_int(params: QueryParams, name: str) -> int | None:
    """An int64 query parameter (``strconv.ParseInt``), None when absent or empty."""
    return query_int64(params, name)


@dataclass(frozen=True, slots=True)
class LogOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None

    def since(self, now: datetime) -> datetime | None:
        """The earliest log time wanted, or None for all of it."""
        if self.since_seconds is not None:
            try:
                return now - timedelta(seconds=self.since_seconds)
            except OverflowError:  # an int64 of seconds reaches before year 1: all of it
                return datetime.min.replace(tzinfo=now.tzinfo)
        return self.since_time

    def to_query(self) -> list[tuple[str, str]]:
        """The query for the agent (``container`` is part of the agent's path, not here)."""
        query = [(name, "true") for name, on in (("follow", self.follow), ("previous", self.previous),
                                                 ("timestamps", self.timestamps)) if on]
        for name, number in (("tailLines", self.tail_lines), ("limitBytes", self.limit_bytes),
                             ("sinceSeconds", self.since_seconds)):
            if number is not None:
                query.append((name, str(number)))
        if self.since_time is not None:
            query.append(("sinceTime", times.format_time(self.since_time)))
        return query


def parse_log_options(params: QueryParams, pod: str) -> LogOptions:
    """``PodLogOptions`` from a query; raises :class:`~shoal.kube.errors.ApiError` (400 or 422)."""
    since_time: datetime | None = None
    raw_time = params.get("sinceTime")
    if raw_time:
        try:
            since_time = times.parse_rfc3339(raw_time, require_zone=True)
        except times.NoZoneError as exc:
            raise errors.bad_request(f'sinceTime: invalid RFC 3339 time "{raw_time}" (no time zone)') from exc
        except ValueError as exc:
            raise errors.bad_request(f'sinceTime: invalid RFC 3339 time "{raw_time}"') from exc
    options = LogOptions(
        container=params.get("container") or "",
        follow=parse_bool(params, "follow"), previous=parse_bool(params, "previous"),
        timestamps=parse_bool(params, "timestamps"), tail_lines=_parse_int(params, "tailLines"),
        limit_bytes=_parse_int(params, "limitBytes"), since_seconds=_parse_int(params, "sinceSeconds"),
        since_time=since_time)
    problems: list[errors.FieldError] = []
    if options.tail_lines is not None and options.tail_lines < 0:
        problems.append(errors.FieldError("tailLines", "FieldValueInvalid",
                                          "must be greater than or equal to 0", options.tail_lines))
    if options.limit_bytes is not None and options.limit_bytes < 1:
        problems.append(errors.FieldError("limitBytes", "FieldValueInvalid",
                                          "must be greater than 0", options.limit_bytes))
    if options.since_seconds is not None and options.since_seconds < 1:
        problems.append(errors.FieldError("sinceSeconds", "FieldValueInvalid",
                                          "must be greater than 0", options.since_seconds))
    if options.since_seconds is not None and options.since_time is not None:
        problems.append(errors.FieldError("sinceSeconds", "FieldValueForbidden",
                                          "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    if problems:
        raise errors.invalid("PodLogOptions", "", pod, problems)
    return options


@dataclass(frozen=True, slots=True)
class ExecOptions:
    command: tuple[str, ...]
    container: str = ""
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False

    def to_query(self) -> list[tuple[str, str]]:
        """The query for the agent (``container`` is part of the agent's path, not here)."""
        query = [("command", part) for part in self.command]
        query += [(name, "true") for name, on in (("stdin", self.stdin), ("stdout", self.stdout),
                                                 ("stderr", self.stderr), ("tty", self.tty)) if on]
        return query


def parse_exec_options(params: QueryParams) -> ExecOptions:
    """``PodExecOptions`` from a query; raises a 400 :class:`~shoal.kube.errors.ApiError`."""
    options = ExecOptions(
        command=tuple(params.getlist("command")), container=params.get("container") or "",
        stdin=parse_bool(params, "stdin"), stdout=parse_bool(params, "stdout"),
        stderr=parse_bool(params, "stderr"), tty=parse_bool(params, "tty"))
    if not options.command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not (options.stdin or options.stdout or options.stderr):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return options


# -- channel framing ------------------------------------------------------------------------

def choose_subprotocol(offered: Sequence[str]) -> str | None:
    """The most preferred of :data:`SUBPROTOCOLS` that the client offered, or None."""
    for protocol in SUBPROTOCOLS:
        if protocol in offered:
            return protocol
    return None


def encode(channel: int, data: bytes = b"") -> bytes:
    if not 0 <= channel <= 255:
        raise FrameError(f"channel {channel} out of range")
    return bytes((channel,)) + data


def decode(message: bytes) -> tuple[int, bytes]:
    """``(channel, payload)`` of one binary message."""
    if not message:
        raise FrameError("empty message: no channel byte")
    return message[0], message[1:]


def decode_resize(payload: bytes) -> tuple[int, int]:
    """``(width, height)`` from a channel-4 payload ``{"Width": .., "Height": ..}``."""
    try:
        size = orjson.loads(payload)
        width, height = size["Width"], size["Height"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise FrameError(f"malformed resize message {payload[:100]!r}") from exc
    if not (isinstance(width, int) and isinstance(height, int)) or width < 0 or height < 0:
        raise FrameError(f"malformed resize message {payload[:100]!r}")
    return width, height


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(exit_code: int, command: Sequence[str]) -> dict[str, Any]:
    """The channel-3 Status for a finished command; kubectl exits with ``exit_code``."""
    if exit_code == 0:
        return success_status()
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}


def error_status(message: str) -> dict[str, Any]:
    """The channel-3 Status when the command could not be run at all (kubectl exits 1)."""
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500}


def status_frame(status: dict[str, Any]) -> bytes:
    return encode(ERROR, orjson.dumps(status))


def status_response(error: errors.ApiError) -> Response:
    """``error`` as an HTTP response with its ``Status`` body."""
    return Response(error.status_body(), status_code=error.code, media_type="application/json")


async def deny(scope: Scope, receive: Receive, send: Send, error: errors.ApiError) -> None:
    """Answer an HTTP request, or refuse a WebSocket upgrade, with ``error`` as a Status body.

    A WebSocket is refused with a real HTTP response when the server supports the ASGI
    denial-response extension (uvicorn does), else with a close before accept (HTTP 403).
    """
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": error.message[:120]})
        return
    await status_response(error)(scope, receive, send)
