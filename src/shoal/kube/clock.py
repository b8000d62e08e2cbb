"""The injected clock: every component reads time and waits through one of these.

A :class:`Clock` has two operations: ``now()`` (seconds on the clock's scale) and
``sleep(seconds)``.  Components take a clock argument and never call ``time`` or
``asyncio.sleep`` for their timing logic, so tests drive them on a :class:`FakeClock`.

* :class:`MonotonicClock` (``time.monotonic``) is for intervals: work-queue delays, rate
  limits, leader-election renewals.
* :class:`WallClock` (``time.time``) is for code that compares its clock with timestamps
  written by others (a container's ``finished_at``, an object's ``creationTimestamp``): the
  node agent's back-offs.
* :class:`FakeClock` is virtual time for tests: ``now()`` moves only on :meth:`FakeClock.advance`,
  which wakes the due sleepers in deadline order.  Started at an epoch value it stands in for
  a :class:`WallClock`.
* :data:`WallTime` is a callable giving the current time as an aware UTC ``datetime``
  (:func:`utcnow` for real), for code that writes timestamps into objects.
* :func:`race_sleep` awaits something or a clock's sleep, whichever ends first.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

__all__ = ["Clock", "FakeClock", "MonotonicClock", "WallClock", "WallTime", "race_sleep", "utcnow"]

T = TypeVar("T")

#: The current time as an aware UTC datetime.
WallTime = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    """Seconds on a scale of the clock's choosing, and a way to wait for them."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real interval clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class WallClock:
    """The real wall clock: ``time.time`` (epoch seconds) and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time for tests: ``sleep`` returns only when :meth:`advance` passes its deadline."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many ``sleep`` calls are still waiting."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and wake, in deadline order, every sleeper that is due."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


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
