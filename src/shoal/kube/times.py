"""Time on the wire: RFC 3339 timestamps and the durations Kubernetes prints.

Formats (all UTC, ``Z`` suffix):

* :func:`format_time`: ``metav1.Time``, whole seconds: ``2024-05-01T12:00:00Z``;
* :func:`format_micro`: ``metav1.MicroTime`` (Lease ``renewTime``, Event ``eventTime``):
  ``2024-05-01T12:00:00.123456Z``;
* :func:`format_nano`: Go's ``RFC3339Nano`` with all nine digits, as CRI log lines carry it.

Each takes an aware ``datetime`` or epoch seconds (a naive ``datetime`` is taken as UTC).

Parsing: :func:`parse_rfc3339` reads any of the above and what Go and podman write (up to nine
fractional digits, ``Z`` or an offset) and raises ``ValueError`` otherwise;
:func:`parse_time` is the lenient form for reading objects: ``None`` for a missing or bad
value and for Go's zero time (``0001-01-01T00:00:00Z``, which ``metav1.Time`` treats as unset).

Durations: :func:`human_duration` and :func:`age` follow apimachinery's ``HumanDuration`` and
the printers' ``translateTimestampSince`` (the AGE column); :func:`go_duration` is Go's
``time.Duration.String`` ("10s", "5m0s", "250ms"), as kubelet messages print it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["NoZoneError", "age", "format_micro", "format_nano", "format_time", "go_duration", "human_duration",
           "parse_rfc3339", "parse_time"]

_FRACTION = re.compile(r"\.(\d+)")
_GO_ZERO = "0001-01-01T00:00:00"


def _aware(moment: datetime | float) -> datetime:
    if isinstance(moment, int | float):
        return datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_time(moment: datetime | float) -> str:
    """``metav1.Time``: RFC 3339 with whole seconds."""
    return _aware(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro(moment: datetime | float) -> str:
    """``metav1.MicroTime``: RFC 3339 with microseconds."""
    return _aware(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_nano(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds of ``ns`` epoch nanoseconds (default: now)."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


class NoZoneError(ValueError):
    """A timestamp without a time zone where one is required."""


def parse_rfc3339(text: str, *, require_zone: bool = False) -> datetime:
    """An aware datetime for an RFC 3339 timestamp; fractions beyond microseconds are cut.

    A timestamp without a zone is taken as UTC, or refused with ``require_zone``."""
    value = text.strip()
    match = _FRACTION.search(value)
    if match is not None:  # fromisoformat takes at most six fractional digits
        value = f"{value[:match.start()]}.{match.group(1)[:6].ljust(6, '0')}{value[match.end():]}"
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None and require_zone:
        raise NoZoneError(f"{text!r} has no time zone")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """A timestamp read from an object or a runtime; ``None`` when absent, bad or Go's zero time."""
    if not isinstance(value, str) or not value or value.startswith(_GO_ZERO):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, like Go's ``/`` on integers."""
    q = abs(a) // b
    return q if a >= 0 else -q


def human_duration(microseconds: int) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures, e.g. "45s", "3m20s", "5h", "3d4h"."""
    seconds = _trunc_div(microseconds, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: datetime) -> str:
    """Time since ``timestamp`` (an RFC 3339 string) as kubectl prints it; "<unknown>" if unset."""
    then = parse_time(timestamp)
    if then is None:
        return "<unknown>"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delta = now - then
    return human_duration((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` for non-negative durations, to the millisecond."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
