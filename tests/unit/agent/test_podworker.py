"""PodWorkers: one serialized worker per pod, retries with backoff, timers on a fake clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from shoal.agent.podworker import PodWorkers, SyncResult
from shoal.kube.clock import FakeClock

START = 1_700_000_000.0


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.active: set[str] = set()
        self.overlaps = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.results: dict[str, list[SyncResult | Exception]] = {}

    async def sync(self, uid: str) -> SyncResult:
        if uid in self.active:
            self.overlaps += 1
        self.active.add(uid)
        try:
            self.calls.append(uid)
            await self.gate.wait()
            queued = self.results.get(uid) or []
            outcome = queued.pop(0) if queued else SyncResult()
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        finally:
            self.active.discard(uid)


async def test_updates_during_a_pass_collapse_into_one_more_pass() -> None:
    rec, clock = Recorder(), FakeClock(START)
    workers = PodWorkers(rec.sync, clock)
    try:
        rec.gate.clear()
        workers.update("a")
        await _until(lambda: rec.calls == ["a"], "the first pass")
        for _ in range(5):
            workers.update("a")  # while busy: only marks it dirty
        workers.update("b")  # other pods are not held up
        await _until(lambda: rec.calls == ["a", "b"], "pod b to sync concurrently")
        rec.gate.set()
        await _until(lambda: rec.calls.count("a") == 2, "one more pass of a")
        await asyncio.sleep(0.02)
        assert rec.calls.count("a") == 2 and rec.overlaps == 0
    finally:
        await workers.close()


async def test_errors_retry_with_backoff_and_done_ends_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    rec, clock = Recorder(), FakeClock(START)
    rec.results["a"] = [RuntimeError("boom"), RuntimeError("boom again"), SyncResult(done=True)]
    workers = PodWorkers(rec.sync, clock, error_backoff=(1.0, 60.0))
    try:
        workers.update("a")
        await _until(lambda: len(rec.calls) == 1 and clock.sleepers == 1, "the failed pass to back off")
        assert workers.failures == 1 and "boom" in caplog.text
        clock.advance(0.9)
        await asyncio.sleep(0.01)
        assert len(rec.calls) == 1
        clock.advance(0.1)
        await _until(lambda: len(rec.calls) == 2 and clock.sleepers == 1, "the second failed pass")
        clock.advance(1.9)
        await asyncio.sleep(0.01)
        assert len(rec.calls) == 2  # the delay doubled to 2 s
        clock.advance(0.1)
        await _until(lambda: workers.uids == set(), "the worker to end after done")
        assert len(rec.calls) == 3
    finally:
        await workers.close()


async def test_resync_timer() -> None:
    rec, clock = Recorder(), FakeClock(START)
    rec.results["a"] = [SyncResult(resync=30.0), SyncResult(resync=None)]
    workers = PodWorkers(rec.sync, clock)
    try:
        workers.update("a")
        await _until(lambda: clock.sleepers == 1, "the resync timer")
        clock.advance(30)
        await _until(lambda: len(rec.calls) == 2, "the timed pass")
        await asyncio.sleep(0.01)
        assert clock.sleepers == 0 and workers.uids == {"a"}  # idle until news
        workers.update("a")
        await _until(lambda: len(rec.calls) == 3, "a pass on news")
    finally:
        await workers.close()
    workers.update("a")  # closed: ignored
    assert workers.uids == set()
