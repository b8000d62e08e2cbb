"""Tests for shoal.kube.remotecommand: pods/log and pods/exec query parsing and channel framing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from starlette.datastructures import QueryParams

from shoal.kube import remotecommand
from shoal.kube.errors import ApiError


def log_options(query: str) -> remotecommand.LogOptions:
    return remotecommand.parse_log_options(QueryParams(query), "web-1")


def error_of(query: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        log_options(query)
    return info.value


def test_log_options_as_kubectl_sends_them() -> None:
    options = log_options("container=app&follow=true&tailLines=2&timestamps=true&previous=1"
                          "&limitBytes=100&sinceSeconds=10")
    assert options == remotecommand.LogOptions(container="app", follow=True, previous=True, timestamps=True,
                                           tail_lines=2, limit_bytes=100, since_seconds=10)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert options.since(now) == now - timedelta(seconds=10)


def test_log_options_defaults_and_since_time() -> None:
    assert log_options("") == remotecommand.LogOptions()
    assert log_options("").since(datetime.now(UTC)) is None
    options = log_options("sinceTime=2025-01-01T00:00:00Z&follow=false")
    assert options.since_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert options.follow is False


def test_log_options_round_trip_through_the_agent_query() -> None:
    original = log_options("container=app&follow=true&tailLines=0&timestamps=true&limitBytes=5"
                           "&sinceTime=2025-01-01T00:00:00Z")
    again = remotecommand.parse_log_options(QueryParams(original.to_query()), "web-1")
    assert again == remotecommand.LogOptions(follow=True, timestamps=True, tail_lines=0, limit_bytes=5,
                                         since_time=datetime(2025, 1, 1, tzinfo=UTC))
    assert ("container", "app") not in original.to_query()  # the agent has it in its path


@pytest.mark.parametrize(("query", "message"), [
    ("tailLines=two", 'tailLines: invalid integer value "two"'),
    ("follow=yes", 'follow: invalid boolean value "yes"'),
    ("sinceTime=yesterday", 'sinceTime: invalid RFC 3339 time "yesterday"'),
    ("sinceTime=2025-01-01T00:00:00", 'sinceTime: invalid RFC 3339 time "2025-01-01T00:00:00" (no time zone)'),
])
def test_log_options_that_do_not_parse_are_bad_requests(query: str, message: str) -> None:
    error = error_of(query)
    assert (error.code, error.reason, error.message) == (400, "BadRequest", message)


def test_log_options_out_of_range_are_invalid() -> None:
    error = error_of("tailLines=-1")
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message == 'PodLogOptions "web-1" is invalid: tailLines: Invalid value: -1: ' \
                            'must be greater than or equal to 0'
    error = error_of("limitBytes=0&sinceSeconds=0")
    assert [c["field"] for c in error.details["causes"]] == ["limitBytes", "sinceSeconds"]
    error = error_of("sinceSeconds=5&sinceTime=2025-01-01T00:00:00Z")
    assert "at most one of `sinceTime` or `sinceSeconds` may be specified" in error.message


def test_exec_options_as_kubectl_sends_them() -> None:
    params = QueryParams("command=sh&command=-c&command=exit+3&container=app&stderr=true&stdout=true&stdin=true")
    options = remotecommand.parse_exec_options(params)
    assert options == remotecommand.ExecOptions(command=("sh", "-c", "exit 3"), container="app", stdin=True,
                                            stdout=True, stderr=True)
    assert remotecommand.parse_exec_options(QueryParams(options.to_query())) == remotecommand.ExecOptions(
        command=("sh", "-c", "exit 3"), stdin=True, stdout=True, stderr=True)


@pytest.mark.parametrize(("query", "message"), [
    ("stdout=true", "you must specify at least one command for the container"),
    ("command=ls", "you must specify at least 1 of stdin, stdout, stderr"),
    ("command=ls&tty=maybe&stdout=true", 'tty: invalid boolean value "maybe"'),
])
def test_exec_options_errors(query: str, message: str) -> None:
    with pytest.raises(ApiError) as info:
        remotecommand.parse_exec_options(QueryParams(query))
    assert (info.value.code, info.value.message) == (400, message)


def test_subprotocol_choice_prefers_v5() -> None:
    assert remotecommand.choose_subprotocol(["v4.channel.k8s.io", "v5.channel.k8s.io"]) == "v5.channel.k8s.io"
    assert remotecommand.choose_subprotocol(["v4.channel.k8s.io"]) == "v4.channel.k8s.io"
    assert remotecommand.choose_subprotocol(["channel.k8s.io", "base64.channel.k8s.io"]) is None
    assert remotecommand.choose_subprotocol([]) is None


def test_frames_carry_the_channel_in_the_first_byte() -> None:
    assert remotecommand.encode(remotecommand.STDOUT, b"hi\n") == b"\x01hi\n"
    assert remotecommand.encode(remotecommand.CLOSE, b"\x00") == b"\xff\x00"
    assert remotecommand.decode(b"\x00data") == (remotecommand.STDIN, b"data")
    assert remotecommand.decode(b"\x02") == (remotecommand.STDERR, b"")
    with pytest.raises(remotecommand.FrameError):
        remotecommand.decode(b"")
    with pytest.raises(remotecommand.FrameError):
        remotecommand.encode(256, b"")


def test_resize_payload() -> None:
    assert remotecommand.decode_resize(b'{"Width":80,"Height":24}') == (80, 24)
    for bad in (b"80x24", b'{"Width":80}', b'{"Width":"80","Height":24}', b'{"Width":-1,"Height":2}', b"[]"):
        with pytest.raises(remotecommand.FrameError):
            remotecommand.decode_resize(bad)


def test_exit_status_is_what_kubectl_turns_into_its_exit_code() -> None:
    assert remotecommand.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}
    status = remotecommand.exit_status(3, ["sh", "-c", "exit 3"])
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert status["message"].startswith("command terminated with non-zero exit code: ")
    frame = remotecommand.status_frame(status)
    assert frame[0] == remotecommand.ERROR
    assert orjson.loads(frame[1:]) == status


def test_error_status_for_a_command_that_never_ran() -> None:
    status = remotecommand.error_status('exec: "nosuch": executable file not found')
    assert status["reason"] == "InternalError"
    assert status["message"] == 'Internal error occurred: exec: "nosuch": executable file not found'
