"""Pod workers: one asyncio task per pod uid, each running a level-triggered sync loop.

:class:`PodWorkers` keeps one task per pod uid.  :meth:`PodWorkers.update` marks a pod dirty
(an informer event, a container state change seen by the runtime relist, a probe result change)
and starts its worker if needed.  A worker runs ``sync(uid)`` whenever it is dirty or its timer
fires; passes for one pod never overlap (serialized per pod), passes for different pods run
concurrently, so one slow or failing pod never stalls another.  A sync that raises is logged
with its traceback (errors of the ``expected`` types, already reported as Events, in one line)
and retried after a per-pod backoff (1 s doubling to 60 s, reset by a
successful pass).  A worker ends when its sync reports ``done`` (the pod is gone from the API
and from the runtime) and nothing new arrived meanwhile.

The sync itself (:class:`~shoal.agent.sync.PodSyncer`) lives in ``sync.py``; this module only
schedules it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shoal.agent.backoff import Backoff
from shoal.kube.clock import Clock, race_sleep

__all__ = ["PodWorkers", "SyncResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncResult:
    #: The pod is gone and its runtime objects are removed: the worker may end.
    done: bool = False
    #: Seconds until the next pass is wanted even without news (None: only on news).
    resync: float | None = None


class PodWorkers:
    def __init__(self, sync: Callable[[str], Awaitable[SyncResult]], clock: Clock, *,
                 error_backoff: tuple[float, float] = (1.0, 60.0),
                 expected: tuple[type[Exception], ...] = ()) -> None:
        self._sync = sync
        self.clock = clock
        #: Errors already reported to the user (as Events): logged in one line, no traceback.
        self._expected = expected
        self._errors = Backoff(*error_backoff, clock=clock)
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        #: Sync passes that raised (each was logged and retried).
        self.failures = 0

    @property
    def uids(self) -> set[str]:
        return set(self._tasks)

    def update(self, uid: str) -> None:
        """Sync ``uid`` soon (now if its worker is idle, after the current pass if busy)."""
        if self._closed or not uid:
            return
        wake = self._wake.get(uid)
        if wake is None:
            wake = self._wake[uid] = asyncio.Event()
            self._tasks[uid] = asyncio.create_task(self._loop(uid, wake), name=f"pod-worker-{uid[:8]}")
        wake.set()

    async def close(self) -> None:
        """Cancel every worker (a pass in progress is abandoned; the next start redoes it)."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._tasks.clear()
        self._wake.clear()

    async def _loop(self, uid: str, wake: asyncio.Event) -> None:
        delay: float | None = 0.0
        try:
            while True:
                if not wake.is_set():
                    if delay is None:
                        await wake.wait()
                    elif delay > 0:
                        await race_sleep(self.clock, delay, wake.wait())
                wake.clear()
                try:
                    result = await self._sync(uid)
                except self._expected as exc:
                    self.failures += 1
                    delay = self._errors.next(uid)
                    log.warning("pod %s: sync failed: %s; retrying in %.1fs", uid, exc, delay)
                    continue
                except Exception:
                    self.failures += 1
                    delay = self._errors.next(uid)
                    log.exception("pod %s: sync failed; retrying in %.1fs", uid, delay)
                    continue
                self._errors.reset(uid)
                if result.done and not wake.is_set():
                    return
                delay = result.resync
        finally:
            if self._tasks.get(uid) is asyncio.current_task():
                del self._tasks[uid]
                del self._wake[uid]
