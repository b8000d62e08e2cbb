"""Backoff (kubelet flowcontrol semantics), Go duration strings and race_sleep, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from shoal.agent.backoff import Backoff
from shoal.kube.clock import FakeClock, race_sleep
from shoal.kube.times import format_micro, format_time, go_duration

START = 1_700_000_000.0


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.25, "250ms"), (1, "1s"), (1.5, "1.5s"), (10, "10s"), (60, "1m0s"), (80, "1m20s"),
    (300, "5m0s"), (3725.5, "1h2m5.5s"), (2.125, "2.125s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_timestamps() -> None:
    assert format_time(START) == "2023-11-14T22:13:20Z"
    assert format_micro(START + 0.123456) == "2023-11-14T22:13:20.123456Z"


def test_crash_loop_sequence_doubles_to_the_cap() -> None:
    """A container that crashes at once each time: restart now, then 10, 20, 40 ... 300, 300 s."""
    clock = FakeClock(START)
    backoff = Backoff(10, 300, clock)
    key = "uid/app/hash"
    assert backoff.remaining(key, clock.now()) == 0  # first crash: no entry, restart at once
    delays = []
    for _ in range(8):
        delays.append(backoff.next(key, clock.now()))
        clock.advance(1)  # it ran one second and crashed again
        finished = clock.now()
        waited = backoff.remaining(key, finished)
        assert waited == pytest.approx(delays[-1])
        clock.advance(waited)
        assert backoff.remaining(key, finished) == 0
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_backoff_resets_after_running_long_enough() -> None:
    clock = FakeClock(START)
    backoff = Backoff(10, 300, clock)
    for _ in range(4):
        backoff.next("k", clock.now())
    assert backoff.get("k") == 80
    clock.advance(601)  # ran more than 2 * max without a failure
    assert backoff.remaining("k", clock.now()) == 0
    assert backoff.next("k", clock.now()) == 10


def test_remaining_since_update_for_image_pulls() -> None:
    clock = FakeClock(START)
    backoff = Backoff(10, 300, clock)
    assert backoff.remaining_since_update("img") == 0
    backoff.next("img")
    clock.advance(4)
    assert backoff.remaining_since_update("img") == pytest.approx(6)
    clock.advance(6)
    assert backoff.remaining_since_update("img") == 0
    assert backoff.next("img") == 20


def test_reset_prefix_and_gc() -> None:
    clock = FakeClock(START)
    backoff = Backoff(1, 10, clock)
    for key in ("a/x", "a/y", "b/x"):
        backoff.next(key)
    backoff.reset_prefix("a/")
    assert (backoff.get("a/x"), backoff.get("a/y"), backoff.get("b/x")) == (0, 0, 1)
    clock.advance(21)
    backoff.gc()
    assert backoff.get("b/x") == 0


def test_invalid_backoff() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(10, 5, FakeClock())


async def test_race_sleep() -> None:
    clock = FakeClock(START)
    event = asyncio.Event()
    waiter = asyncio.create_task(race_sleep(clock, 5, event.wait()))
    await asyncio.sleep(0)
    event.set()
    assert await waiter == (True, True)
    waiter = asyncio.create_task(race_sleep(clock, 5, asyncio.Event().wait()))
    for _ in range(3):
        await asyncio.sleep(0)
    clock.advance(5)
    assert await waiter == (False, None)
