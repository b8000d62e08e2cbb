"""Time for the node agent: an injectable clock, kubelet's per-key backoff, Go-style durations.

* :class:`Clock` is wall-clock seconds since the epoch plus a way to wait.  The agent compares
  its clock with timestamps the runtime reports (a container's ``finished_at``), so the real
  clock is :class:`WallClock` (``time.time``); ``shoal.controllers.workqueue.FakeClock`` started
  at an epoch value is a valid test clock (virtual time moves only on ``advance``).
* :class:`Backoff` is kubelet's ``flowcontrol.Backoff`` as used for CrashLoopBackOff and image
  pulls: each key has a delay that starts at ``initial``, doubles on every :meth:`Backoff.next`
  up to ``maximum``, and is forgotten once ``2 * maximum`` has passed since its last update
  (a container that ran ten minutes without crashing starts again at ``initial``).

  Worked example (initial 10 s, maximum 300 s), a container that crashes at once each time:
  crash 1 at t=0: no entry, so not in backoff -> ``next`` sets 10 s, restart now;
  crash 2 at t=1: in backoff until t=11 -> "back-off 10s", restart at t=11, ``next`` -> 20 s;
  crash 3 at t=12: in backoff until t=32 -> "back-off 20s"; ... then 40, 80, 160, 300, 300 s.
* :func:`go_duration` formats seconds like Go's ``time.Duration.String`` ("10s", "5m0s",
  "1.5s", "250ms"), because kubelet messages users know ("back-off 5m0s restarting ...")
  are printed that way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

__all__ = ["Backoff", "Clock", "WallClock", "go_duration", "race_sleep", "rfc3339", "rfc3339_micro",
           "to_epoch"]

T = TypeVar("T")


class Clock(Protocol):
    """Epoch seconds and a way to wait for them."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    """The real clock: ``time.time`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def to_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def rfc3339(seconds: float) -> str:
    """``2024-05-01T12:00:00Z`` (metav1.Time: whole seconds, UTC)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(seconds: float) -> str:
    """``2024-05-01T12:00:00.123456Z`` (metav1.MicroTime, as Lease ``renewTime`` uses)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


async def race_sleep(clock: Clock, seconds: float, awaitable: Awaitable[T]) -> tuple[bool, T | None]:
    """Await ``awaitable`` or ``clock.sleep(seconds)``, whichever ends first.

    Returns ``(True, result)`` if the awaitable finished first, else ``(False, None)`` (and the
    awaitable is cancelled).  Exceptions of the awaitable propagate."""
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait((work, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, timer):
            if not task.done():
                task.cancel()
        await asyncio.wait((work, timer))
    if work.cancelled():
        return False, None
    return True, work.result()


@dataclass(slots=True)
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Per-key exponential backoff with expiry (kubelet ``flowcontrol.Backoff``)."""

    def __init__(self, initial: float, maximum: float, clock: Clock) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, at: float) -> bool:
        return at - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        """The current delay of ``key`` (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def next(self, key: str, event_time: float | None = None) -> float:
        """Count one more failure of ``key`` at ``event_time`` (default now); returns the delay."""
        at = self.clock.now() if event_time is None else event_time
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, at):
            entry = self._entries[key] = _Entry(self.initial, at)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = at
        return entry.delay

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds left until ``event_time + delay(key)``; 0 when ``key`` is not backing off.

        ``remaining(...) > 0`` is kubelet's ``IsInBackOffSince(key, event_time)``."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return 0.0
        return max(0.0, event_time + entry.delay - self.clock.now())

    def remaining_since_update(self, key: str) -> float:
        """Seconds left of the delay counted from the last :meth:`next` (kubelet's
        ``IsInBackOffSinceUpdate``, used for image pulls); 0 when ``key`` is not backing off."""
        entry = self._entries.get(key)
        now = self.clock.now()
        if entry is None or self._expired(entry, now):
            return 0.0
        return max(0.0, entry.last_update + entry.delay - now)

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def reset_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        """Forget every expired key."""
        now = self.clock.now()
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]
