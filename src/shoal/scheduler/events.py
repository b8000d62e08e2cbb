"""Events recorded in the background, so they never hold up a binding.

Kubernetes' components hand Events to an asynchronous broadcaster; the scheduler's binding
path never waits for an Event write.  :class:`EventQueue` does the same for Shoal's
scheduler: :meth:`EventQueue.post` only appends to a bounded in-memory queue, and
``workers`` tasks (:meth:`EventQueue.run`) write them through the
:class:`~shoal.client.events.EventRecorder` (which aggregates repeats into ``count``).

Invariants:

* Posting never blocks and never fails.  When ``capacity`` events are already waiting the
  oldest is dropped, counted in :attr:`EventQueue.dropped` and logged (Events are best effort;
  Kubernetes' broadcaster drops too).
* Events are written in the order posted (with ``workers > 1``, writes overlap).
* After ``stop`` is set, the workers write what is still queued, then :meth:`run` returns.
* Write failures are logged by the recorder; they do not stop the workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from shoal.kube.objects import Obj

__all__ = ["EventQueue", "Recorder"]

log = logging.getLogger(__name__)

class Recorder(Protocol):
    """What :class:`~shoal.client.events.EventRecorder` offers: record one Event, never raise
    for an API failure (log it)."""

    async def record(self, obj: Obj, type_: str, reason: str, message: str, field_path: str = "") -> None: ...


class EventQueue:
    def __init__(self, recorder: Recorder, *, workers: int = 2, capacity: int = 10_000) -> None:
        self.recorder = recorder
        self.workers = workers
        self.capacity = capacity
        self._pending: deque[tuple[Obj, str, str, str]] = deque()
        self._ready = asyncio.Event()
        #: Events dropped because the queue was full.
        self.dropped = 0
        #: Events handed to the recorder.
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def post(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        if len(self._pending) >= self.capacity:
            lost = self._pending.popleft()
            self.dropped += 1
            log.warning("event queue full (%d): dropped %s %s for %s", self.capacity, lost[1], lost[2],
                        (lost[0].get("metadata") or {}).get("name"))
        self._pending.append((obj, type_, reason, message))
        self._ready.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write events until ``stop`` is set and the queue is empty."""
        async with asyncio.TaskGroup() as group:
            for number in range(self.workers):
                group.create_task(self._worker(stop), name=f"events-{number}")

    async def _worker(self, stop: asyncio.Event) -> None:
        while True:
            while self._pending:
                obj, type_, reason, message = self._pending.popleft()
                await self.recorder.record(obj, type_, reason, message)
                self.written += 1
            if stop.is_set():
                return
            self._ready.clear()
            ready = asyncio.ensure_future(self._ready.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((ready, stopped), return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                stopped.cancel()
                await asyncio.wait((ready, stopped))
