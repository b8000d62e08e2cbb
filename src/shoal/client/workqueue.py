"""The controller work queue, with client-go's semantics, for asyncio.

Guarantees (client-go ``util/workqueue``):

* **Stingy**: an item is in the queue at most once.  Adding an item that is already waiting
  (``dirty``) does nothing; repeated adds collapse into one processing.
* **One at a time**: an item handed out by :meth:`WorkQueue.get` is ``processing`` until
  :meth:`WorkQueue.done`.  Adding it meanwhile only marks it dirty; ``done`` puts it back, so it
  is processed again, after the current pass, never concurrently.
* **Fair**: items come out in the order they were (first) added.
* **Delayed adds**: :meth:`WorkQueue.add_after` adds the item once ``delay`` has passed on the
  injected :class:`Clock`.  If the item is already waiting, the earlier time wins.
* **Rate-limited requeue**: :meth:`WorkQueue.add_rate_limited` delays by the rate limiter's
  ``when(item)``; the default is the max of a per-item exponential backoff
  (5 ms · 2^failures, capped at 1000 s) and an overall token bucket (10 qps, burst 100).
  :meth:`WorkQueue.forget` resets the item's backoff (call it after a success).
* **Shutdown**: after :meth:`WorkQueue.shutdown`, adds are dropped (and counted), ``get``
  still hands out what is queued and then raises :class:`ShutDownError`;
  :meth:`WorkQueue.shutdown_with_drain` also waits until every handed-out item is ``done``.

Time comes only from the injected :class:`shoal.kube.clock.Clock` (``now`` and ``sleep``);
tests use :class:`~shoal.kube.clock.FakeClock`, whose time moves only on ``advance``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "ShutDownError",
    "WorkQueue",
    "default_rate_limiter",
]

from shoal.kube.clock import Clock, MonotonicClock

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class RateLimiter(Protocol[T_contra]):
    def when(self, item: T_contra) -> float:
        """The delay before ``item`` may be retried; counts one more failure."""
        ...

    def forget(self, item: T_contra) -> None: ...

    def num_requeues(self, item: T_contra) -> int: ...


class ItemExponentialRateLimiter(Generic[T]):
    """``base · 2^failures(item)``, capped at ``maximum``: 5 ms, 10 ms, 20 ms ... 1000 s."""

    def __init__(self, base: float = 0.005, maximum: float = 1000.0) -> None:
        self.base = base
        self.maximum = maximum
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        failures = self._failures.get(item, 0)
        self._failures[item] = failures + 1
        if failures > 64:  # 2^64 · base is beyond any sane maximum; avoid float overflow
            return self.maximum
        return min(self.base * float(2**failures), self.maximum)

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter(Generic[T]):
    """An overall token bucket: ``burst`` tokens refilled at ``qps``; each ``when`` takes one.

    Worked example (qps 10, burst 100): 100 calls at the same instant get delay 0, the
    101st gets 0.1 s, the 102nd 0.2 s: the tokens they reserve arrive one every 1/qps s.
    """

    def __init__(self, clock: Clock, qps: float = 10.0, burst: int = 100) -> None:
        self._clock = clock
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._last = clock.now()

    def when(self, item: T) -> float:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, item: T) -> None:
        return None

    def num_requeues(self, item: T) -> int:
        return 0


class MaxOfRateLimiter(Generic[T]):
    """The longest delay of several limiters (each still counts the failure)."""

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        self._limiters = limiters

    def when(self, item: T) -> float:
        return max(limiter.when(item) for limiter in self._limiters)

    def forget(self, item: T) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


def default_rate_limiter(clock: Clock) -> MaxOfRateLimiter[T]:
    """client-go's ``DefaultControllerRateLimiter``: max(5 ms → 1000 s per item, 10 qps / 100 burst)."""
    return MaxOfRateLimiter(ItemExponentialRateLimiter(0.005, 1000.0), BucketRateLimiter(clock, 10.0, 100))


class ShutDownError(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and empty."""


class WorkQueue(Generic[T]):
    """A stingy, fair, delaying, rate-limited work queue (see the module docstring)."""

    def __init__(self, name: str = "", *, clock: Clock | None = None,
                 rate_limiter: RateLimiter[T] | None = None) -> None:
        self.name = name
        self.clock: Clock = clock or MonotonicClock()
        self.rate_limiter: RateLimiter[T] = rate_limiter or default_rate_limiter(self.clock)
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._idle = asyncio.Event()
        self._idle.set()
        # Delayed items: a heap of (ready_at, seq, item); _waiting holds each item's live entry.
        self._heap: list[tuple[float, int, T]] = []
        self._waiting: dict[T, tuple[float, int]] = {}
        self._seq = itertools.count()
        self._waiting_changed = asyncio.Event()
        self._waiting_task: asyncio.Task[None] | None = None
        #: Adds refused because the queue was shutting down.
        self.dropped = 0

    def __len__(self) -> int:
        """Items ready to be handed out (not counting delayed or processing ones)."""
        return len(self._queue)

    @property
    def waiting(self) -> int:
        """Items scheduled by ``add_after`` that are not due yet."""
        return len(self._waiting)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, item: T) -> None:
        if self._shutting_down:
            self._drop(item)
            return
        if item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return
        self._queue.append(item)
        self._wake_one()

    async def get(self) -> T:
        """The next item; it stays ``processing`` until :meth:`done`.  Raises ShutDownError."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDownError(self.name)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the wake-up this getter will not use
                else:
                    self._getters.remove(waiter)
                raise
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        self._idle.clear()
        return item

    def done(self, item: T) -> None:
        """Mark ``item`` processed; if it was added meanwhile, queue it again."""
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
            self._wake_one()
        if not self._processing:
            self._idle.set()

    def add_after(self, item: T, delay: float) -> None:
        if self._shutting_down:
            self._drop(item)
            return
        if delay <= 0:
            self.add(item)
            return
        ready_at = self.clock.now() + delay
        current = self._waiting.get(item)
        if current is not None and current[0] <= ready_at:
            return
        seq = next(self._seq)
        self._waiting[item] = (ready_at, seq)
        heapq.heappush(self._heap, (ready_at, seq, item))
        if self._waiting_task is None:
            self._waiting_task = asyncio.get_running_loop().create_task(
                self._waiting_loop(), name=f"workqueue-{self.name}-delays")
        self._waiting_changed.set()

    def add_rate_limited(self, item: T) -> None:
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)

    def shutdown(self) -> None:
        """Refuse new adds, drop delayed items, wake every getter.  Queued items still come out."""
        self._shutting_down = True
        self._waiting_changed.set()
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def shutdown_with_drain(self) -> None:
        """:meth:`shutdown`, then wait until every handed-out item is :meth:`done`."""
        self.shutdown()
        await self._idle.wait()
        if self._waiting_task is not None:
            await self._waiting_task

    def _drop(self, item: T) -> None:
        self.dropped += 1
        log.debug("workqueue %s: shutting down, dropped %r", self.name, item)

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _waiting_loop(self) -> None:
        while not self._shutting_down:
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now:
                ready_at, seq, item = heapq.heappop(self._heap)
                if self._waiting.get(item) == (ready_at, seq):
                    del self._waiting[item]
                    self.add(item)
            self._waiting_changed.clear()
            if not self._heap:
                await self._waiting_changed.wait()
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep(self._heap[0][0] - now))
            changed = asyncio.ensure_future(self._waiting_changed.wait())
            try:
                await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                changed.cancel()
                await asyncio.wait((sleeper, changed))
        self._heap.clear()
        self._waiting.clear()
