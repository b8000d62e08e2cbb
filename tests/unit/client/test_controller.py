"""The Controller skeleton: how reconcile outcomes settle a key (FakeClock, no server)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shoal.client.controller import Controller, RequeueAfter
from shoal.client.errors import error_from_status
from shoal.client.informer import Informer
from shoal.client.resources import PODS
from shoal.client.rest import ApiClient
from shoal.kube.clock import FakeClock


class Recorder(Controller):
    """Reconciles by following a script of outcomes per key."""

    def __init__(self, clock: FakeClock, script: dict[str, list[BaseException | None]]) -> None:
        super().__init__("recorder", clock=clock)
        self.script = script
        self.calls: list[str] = []
        self.active: set[str] = set()
        self.overlaps = 0

    async def reconcile(self, key: str) -> None:
        if key in self.active:
            self.overlaps += 1
        self.active.add(key)
        self.calls.append(key)
        try:
            await asyncio.sleep(0)
            outcomes = self.script.get(key) or [None]
            outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
            if outcome is not None:
                raise outcome
        finally:
            self.active.discard(key)


async def settle(rounds: int = 30) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_success_forgets_the_backoff() -> None:
    clock = FakeClock()
    controller = Recorder(clock, {})
    controller.queue.add_rate_limited("k")  # a failure history
    clock.advance(1.0)
    key = await asyncio.wait_for(controller.queue.get(), 1.0)
    await controller.process(key)
    assert controller.queue.num_requeues("k") == 0
    assert len(controller.queue) == 0 and controller.queue.waiting == 0


async def test_an_exception_is_logged_and_requeued_with_growing_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    controller = Recorder(clock, {"k": [RuntimeError("api down"), RuntimeError("api down"), None]})
    controller.enqueue("k")
    with caplog.at_level(logging.ERROR, logger="shoal.client.controller"):
        await controller.process(await controller.queue.get())
    assert "api down" in caplog.text and "'k'" in caplog.text
    assert controller.failures == 1
    assert controller.queue.waiting == 1 and len(controller.queue) == 0
    clock.advance(0.005)
    await controller.process(await asyncio.wait_for(controller.queue.get(), 1.0))
    assert controller.failures == 2
    clock.advance(0.009)  # the second backoff is 10 ms
    await settle()
    assert len(controller.queue) == 0
    clock.advance(0.001)
    await controller.process(await asyncio.wait_for(controller.queue.get(), 1.0))
    assert controller.calls == ["k", "k", "k"]
    assert controller.queue.num_requeues("k") == 0, "the success reset the backoff"


async def test_requeue_after_polls_at_the_asked_delay_without_counting_a_failure() -> None:
    clock = FakeClock()
    controller = Recorder(clock, {"k": [RequeueAfter(5.0, "waiting"), None]})
    controller.enqueue("k")
    await controller.process(await controller.queue.get())
    assert controller.failures == 0
    clock.advance(4.9)
    await settle()
    assert len(controller.queue) == 0
    clock.advance(0.1)
    assert await asyncio.wait_for(controller.queue.get(), 1.0) == "k"


async def test_run_processes_keys_with_several_workers_and_stops() -> None:
    clock = FakeClock()
    controller = Recorder(clock, {})
    stop = asyncio.Event()
    runner = asyncio.ensure_future(controller.run(stop, workers=3))
    await settle()
    for _ in range(10):
        for key in ("a", "b", "c", "d"):
            controller.enqueue(key)
        await asyncio.sleep(0)
    await settle(100)
    assert set(controller.calls) == {"a", "b", "c", "d"}
    assert controller.overlaps == 0
    stop.set()
    await asyncio.wait_for(runner, 1.0)
    assert controller.queue.shutting_down


async def test_run_returns_at_once_when_stopped_before_the_caches_sync() -> None:
    async with ApiClient("https://127.0.0.1:1", "token") as client:
        never_synced = Informer(client, PODS)  # never run, so never synced
        controller = Recorder(FakeClock(), {})
        controller.informers.append(never_synced)
        stop = asyncio.Event()
        runner = asyncio.ensure_future(controller.run(stop, workers=2))
        controller.enqueue("k")
        await settle()
        assert controller.calls == [], "no worker may start before the caches sync"
        stop.set()
        await asyncio.wait_for(runner, 1.0)
        assert controller.calls == []


async def test_a_lost_write_race_is_requeued_with_a_one_line_log(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    conflict = error_from_status(409, {"kind": "Status", "reason": "Conflict", "code": 409,
                                       "message": 'configmaps "a" has been modified'})
    controller = Recorder(clock, {"k": [conflict, None]})
    controller.enqueue("k")
    with caplog.at_level(logging.INFO, logger="shoal.client.controller"):
        await controller.process(await controller.queue.get())
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "has been modified" in caplog.text and caplog.records[0].exc_info is None
    assert controller.failures == 1 and controller.queue.num_requeues("k") == 1
    clock.advance(0.005)
    await controller.process(await asyncio.wait_for(controller.queue.get(), 1.0))
    assert controller.calls == ["k", "k"]
