"""The controller skeleton: informers feed keys to a work queue, workers reconcile keys.

A controller subclasses :class:`Controller` and supplies :meth:`Controller.reconcile`.  The
rules (Kubernetes' controller guidelines, level-triggered):

* **Handlers only enqueue.**  Informer event handlers compute the key(s) an event concerns
  and call :meth:`Controller.enqueue`; they never call the API.
* **Reconcile recomputes from current state.**  ``reconcile(key)`` re-reads the object from the
  informer cache (a missing object means it was deleted), deep-copies before changing
  anything, compares desired and current state and makes the difference.  It must be
  idempotent: the same key can be reconciled any number of times.
* **Errors requeue, never vanish.**  An exception from ``reconcile`` is logged with its
  traceback and the key is requeued with the queue's rate-limited backoff (5 ms doubling to
  1000 s); a :class:`~shoal.client.errors.ConflictError` (a lost write race, routine) is
  logged in one line at INFO instead.  Raise :class:`RequeueAfter` to be called again after
  a fixed delay (polling for a condition the informers do not report); it is not an error
  and resets the backoff.  A normal return also resets the backoff (``forget``).
* **One key at a time**: the work queue never hands one key to two workers at once.
* Workers start only after every informer in :attr:`Controller.informers` has synced, so
  ``reconcile`` never takes a half-filled cache for the truth.  When ``stop`` is set, each
  worker finishes the key it holds and exits; queued keys are dropped (the next start
  relists and reconciles everything anyway).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from shoal.client.errors import ConflictError
from shoal.client.informer import Informer, wait_for_sync
from shoal.client.workqueue import RateLimiter, ShutDownError, WorkQueue
from shoal.kube.clock import Clock, MonotonicClock

__all__ = ["Controller", "RequeueAfter"]

log = logging.getLogger(__name__)


class RequeueAfter(Exception):
    """Raised by ``reconcile`` to be called again for the same key after ``seconds``."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        super().__init__(f"requeue after {seconds:.3f}s" + (f": {reason}" if reason else ""))
        self.seconds = seconds
        self.reason = reason


class Controller(ABC):
    """A level-triggered controller: subclasses register informers and implement ``reconcile``."""

    def __init__(self, name: str, *, clock: Clock | None = None,
                 rate_limiter: RateLimiter[str] | None = None) -> None:
        self.name = name
        self.clock: Clock = clock or MonotonicClock()
        self.queue: WorkQueue[str] = WorkQueue(name, clock=self.clock, rate_limiter=rate_limiter)
        #: The caches ``reconcile`` reads; workers wait until all of them have synced.
        self.informers: list[Informer] = []
        #: Reconciles that raised (each one was logged and requeued).
        self.failures = 0

    @abstractmethod
    async def reconcile(self, key: str) -> None:
        """Make the world match the desired state for ``key``; raise to retry."""

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    async def run(self, stop: asyncio.Event, workers: int = 1) -> None:
        """Wait for the caches, then run ``workers`` workers until ``stop`` is set."""
        if not await wait_for_sync(self.informers, stop):
            return
        log.info("controller %s: caches synced, starting %d worker(s)", self.name, workers)
        async with asyncio.TaskGroup() as group:
            for number in range(workers):
                group.create_task(self._worker(), name=f"{self.name}-worker-{number}")
            await stop.wait()
            self.queue.shutdown()
        await self.queue.shutdown_with_drain()  # workers are gone; this reaps the delay task
        log.info("controller %s: stopped", self.name)

    async def process(self, key: str) -> None:
        """Reconcile one key handed out by the queue and settle it (done, forget or requeue)."""
        try:
            await self.reconcile(key)
        except RequeueAfter as requeue:
            self.queue.forget(key)
            self.queue.add_after(key, requeue.seconds)
        except ConflictError as conflict:
            # Routine in a level-triggered world: someone wrote first; the cache catches up.
            self.failures += 1
            log.info("controller %s: reconcile %r lost a write race, retrying: %s", self.name, key, conflict)
            self.queue.add_rate_limited(key)
        except Exception:
            self.failures += 1
            log.exception("controller %s: reconcile %r failed (requeue #%d)", self.name, key,
                          self.queue.num_requeues(key) + 1)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
        finally:
            self.queue.done(key)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDownError:
                return
            if self.queue.shutting_down:
                self.queue.done(key)
                log.debug("controller %s: stopping, left %r for the next start", self.name, key)
                continue
            await self.process(key)
