"""The scheduling queue: pods waiting for a decision, with backoff for the unschedulable.

A pod key is in exactly one of three places:

* **active** — ready to be scheduled; popped highest ``spec.priority`` first, then first in;
* **backoff** — failed ``n`` times, retried at ``failure time + min(initial * 2^(n-1), max)``
  (default 1 s, 2 s, 4 s, 8 s, 10 s, 10 s ...: Kubernetes' podInitialBackoffSeconds /
  podMaxBackoffSeconds);
* **in flight** — handed out by :meth:`SchedulingQueue.pop` and not yet reported back with
  :meth:`~SchedulingQueue.done` (bound: the attempt count resets) or
  :meth:`~SchedulingQueue.failed` (goes to backoff).

Cluster events that may make pods schedulable (a node added or changed, an assigned pod
deleted) call :meth:`SchedulingQueue.move_all_to_active`: every backing-off pod becomes active
at once, and a pod in flight at that moment is retried at once if its attempt then fails
(Kubernetes' "move request cycle": the event may have come too late for the decision).

Adding a key that is already queued or in flight does nothing (stingy); :meth:`activate`
moves one backing-off key forward (its spec changed).  :meth:`delete` forgets a key
everywhere; a ``done``/``failed`` for a key no longer in flight is ignored, so a pod deleted
mid-attempt is not resurrected.  After :meth:`close`, ``pop`` raises
:class:`QueueClosedError`.  Time comes from the injected :class:`Clock` (FakeClock in tests).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from shoal.kube.clock import Clock, MonotonicClock

__all__ = ["QueueClosedError", "SchedulingQueue"]


class QueueClosedError(Exception):
    """Raised by :meth:`SchedulingQueue.pop` after :meth:`SchedulingQueue.close`."""


class SchedulingQueue:
    def __init__(self, clock: Clock | None = None, *, initial_backoff: float = 1.0,
                 max_backoff: float = 10.0) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._seq = itertools.count()
        # Heaps with lazy deletion: an entry is live only if its seq is the key's current one.
        self._active: list[tuple[int, int, str]] = []
        self._active_seq: dict[str, int] = {}
        self._backoff: list[tuple[float, int, str]] = []
        self._backoff_seq: dict[str, int] = {}
        self._priority: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._in_flight: set[str] = set()
        self._moved: set[str] = set()
        self._changed = asyncio.Event()
        self._closed = False

    # -- what is where -------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return key in self._active_seq or key in self._backoff_seq or key in self._in_flight

    @property
    def active(self) -> int:
        return len(self._active_seq)

    @property
    def backing_off(self) -> int:
        return len(self._backoff_seq)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def attempts(self, key: str) -> int:
        return self._attempts.get(key, 0)

    def backoff_for(self, attempts: int) -> float:
        """The delay after the ``attempts``-th failure."""
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff * 2.0 ** min(attempts - 1, 64), self.max_backoff)

    # -- producers -----------------------------------------------------------------------

    def add(self, key: str, priority: int = 0) -> None:
        """A pod that needs scheduling; no-op if it is already queued or in flight."""
        if self._closed or key in self:
            return
        self._priority[key] = priority
        self._push_active(key)

    def activate(self, key: str) -> None:
        """Retry ``key`` now rather than after its backoff (its spec changed)."""
        if key in self._in_flight:
            self._moved.add(key)
        elif key in self._backoff_seq:
            del self._backoff_seq[key]
            self._push_active(key)

    def move_all_to_active(self) -> None:
        """A cluster event: every backing-off pod is retried now (see the module docstring)."""
        for key in list(self._backoff_seq):
            self._push_active(key)
        self._backoff_seq.clear()
        self._backoff.clear()
        self._moved.update(self._in_flight)

    def delete(self, key: str) -> None:
        """Forget ``key`` (pod deleted, bound elsewhere, or no longer ours)."""
        self._active_seq.pop(key, None)
        self._backoff_seq.pop(key, None)
        self._in_flight.discard(key)
        self._moved.discard(key)
        self._attempts.pop(key, None)
        self._priority.pop(key, None)

    # -- the consumer --------------------------------------------------------------------

    async def pop(self) -> str:
        """The next key to schedule, waiting for one (or for a backoff to expire)."""
        while True:
            if self._closed:
                raise QueueClosedError()
            self._promote_due()
            while self._active:
                _, seq, key = heapq.heappop(self._active)
                if self._active_seq.get(key) == seq:
                    del self._active_seq[key]
                    self._in_flight.add(key)
                    return key
            self._changed.clear()
            if not self._backoff:
                await self._changed.wait()
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep(self._backoff[0][0] - self.clock.now()))
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                changed.cancel()
                await asyncio.wait((sleeper, changed))

    def done(self, key: str) -> None:
        """The attempt bound the pod (or found nothing to do): forget its failures."""
        if key in self._in_flight:
            self._in_flight.discard(key)
            self._moved.discard(key)
            self._attempts.pop(key, None)
            self._priority.pop(key, None)

    def failed(self, key: str) -> float:
        """The attempt failed: back off (or retry now after a concurrent event).

        Returns the delay chosen (0 for an immediate retry, or when ``key`` was not in flight)."""
        if key not in self._in_flight:
            return 0.0
        self._in_flight.discard(key)
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        if key in self._moved:
            self._moved.discard(key)
            self._push_active(key)
            return 0.0
        delay = self.backoff_for(attempts)
        seq = next(self._seq)
        self._backoff_seq[key] = seq
        heapq.heappush(self._backoff, (self.clock.now() + delay, seq, key))
        self._changed.set()
        return delay

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    # -- internals -----------------------------------------------------------------------

    def _push_active(self, key: str) -> None:
        seq = next(self._seq)
        self._active_seq[key] = seq
        heapq.heappush(self._active, (-self._priority.get(key, 0), seq, key))
        self._changed.set()

    def _promote_due(self) -> None:
        now = self.clock.now()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            if self._backoff_seq.get(key) == seq:
                del self._backoff_seq[key]
                self._push_active(key)
