"""The injected clock (shoal.kube.clock): virtual time, the real clocks' scales, race_sleep."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC

from shoal.kube.clock import FakeClock, MonotonicClock, WallClock, race_sleep, utcnow

START = 1_700_000_000.0


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fake_clock_wakes_sleepers_in_deadline_order_only_when_advanced() -> None:
    clock = FakeClock(START)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 3)), asyncio.create_task(sleeper("early", 1))]
    await settle()
    assert clock.sleepers == 2 and woke == []
    clock.advance(0.5)
    await settle()
    assert woke == [] and clock.now() == START + 0.5
    clock.advance(10)
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"] and clock.sleepers == 0


async def test_a_non_positive_sleep_only_yields() -> None:
    clock = FakeClock()
    await asyncio.wait_for(clock.sleep(0), 1)
    await asyncio.wait_for(clock.sleep(-1), 1)
    assert clock.now() == 0


def test_real_clocks_use_their_scales() -> None:
    assert abs(WallClock().now() - time.time()) < 1
    assert abs(MonotonicClock().now() - time.monotonic()) < 1
    assert utcnow().tzinfo is UTC


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
