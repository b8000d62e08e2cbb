"""RFC 3339 on the wire and the durations Kubernetes prints (shoal.kube.times).

Expected strings are what Go prints: ``time.RFC3339`` for ``metav1.Time``, ``RFC3339Micro`` for
``metav1.MicroTime``, ``RFC3339Nano`` with all nine digits for CRI log lines, apimachinery's
``HumanDuration`` for ages and ``time.Duration.String`` for back-off delays.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shoal.kube import times

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_formats_of_metav1_time_microtime_and_nanoseconds() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert times.format_time(moment) == "2024-05-01T12:00:00Z"
    assert times.format_micro(moment) == "2024-05-01T12:00:00.123456Z"
    assert times.format_time(moment.timestamp()) == "2024-05-01T12:00:00Z"
    assert times.format_nano(1_714_564_800_000_000_007) == "2024-05-01T12:00:00.000000007Z"


def test_formats_convert_to_utc() -> None:
    two_hours_east = timezone(timedelta(hours=2))
    assert times.format_time(datetime(2024, 5, 1, 14, 0, tzinfo=two_hours_east)) == "2024-05-01T12:00:00Z"
    assert times.format_time(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00Z"  # naive is UTC


@pytest.mark.parametrize("text", [
    "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456Z", "2024-05-01T12:00:00.123456789Z",
    "2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00.5z",
])
def test_parse_reads_what_go_and_podman_write(text: str) -> None:
    parsed = times.parse_rfc3339(text)
    assert parsed.tzinfo is not None
    assert parsed.replace(microsecond=0) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_parse_cuts_nanoseconds_to_microseconds() -> None:
    assert times.parse_rfc3339("2024-05-01T12:00:00.123456789Z").microsecond == 123456


def test_parse_without_zone_is_utc_unless_a_zone_is_required() -> None:
    assert times.parse_rfc3339("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(times.NoZoneError):
        times.parse_rfc3339("2024-05-01T12:00:00", require_zone=True)


@pytest.mark.parametrize("value", [None, "", "yesterday", 12, "0001-01-01T00:00:00Z"])
def test_parse_time_reads_missing_bad_and_go_zero_times_as_unset(value: object) -> None:
    assert times.parse_time(value) is None


def test_a_formatted_time_parses_back() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert times.parse_time(times.format_micro(moment)) == moment
    assert times.parse_time(times.format_time(moment)) == moment.replace(microsecond=0)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=-5), "<invalid>"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(milliseconds=-1500), "0s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=119, milliseconds=999), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=3, seconds=20), "3m20s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=5, minutes=30), "5h30m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=3, hours=4), "3d4h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8, hours=5), "8d"),
        (timedelta(days=400), "400d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=800), "2y70d"),
        (timedelta(days=3000), "8y"),
    ],
)
def test_age_follows_kubernetes_human_duration(delta: timedelta, expected: str) -> None:
    created = (NOW - delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert times.age(created, NOW) == expected


def test_age_of_missing_or_bad_timestamp_is_unknown() -> None:
    assert times.age(None, NOW) == "<unknown>"
    assert times.age("", NOW) == "<unknown>"
    assert times.age("yesterday", NOW) == "<unknown>"


def test_age_accepts_naive_now_and_offsets() -> None:
    assert times.age("2025-06-01T13:00:00+02:00", NOW.replace(tzinfo=None)) == "60m"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.25, "250ms"), (1, "1s"), (1.5, "1.5s"), (10, "10s"), (60, "1m0s"), (80, "1m20s"),
    (300, "5m0s"), (3725.5, "1h2m5.5s"), (2.125, "2.125s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert times.go_duration(seconds) == text


def test_epoch_seconds_format() -> None:
    start = 1_700_000_000.0
    assert times.format_time(start) == "2023-11-14T22:13:20Z"
    assert times.format_micro(start + 0.123456) == "2023-11-14T22:13:20.123456Z"
