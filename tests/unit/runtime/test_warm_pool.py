"""WarmPool: hits, hand-offs of the pod being started, misses, growth under bursts, shrinking
when idle, refill failures.  ``create`` is an asyncio stand-in for starting a podman pod whose
completion each test controls through a gate; the clock is injected."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from shoal.agent.runtime.podman_warm import WarmPod, WarmPool
from tests.support.wait import eventually


class Maker:
    """Makes warm pods w1, w2, ... ; each waits for ``gate`` when one is set."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.made: list[str] = []
        self.removed: list[str] = []
        self.gate: asyncio.Event | None = None
        self.fail_next = 0
        self.started = asyncio.Event()

    async def create(self) -> WarmPod:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("podman pod start failed")
        pod = WarmPod(f"w{next(self.ids)}", f"10.0.0.{len(self.made) + 2}", "")
        self.made.append(pod.id)
        return pod

    async def adopt(self) -> list[WarmPod]:
        return []

    async def remove(self, pod_id: str) -> None:
        self.removed.append(pod_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def until(check: Callable[[], bool], within: float = 2.0) -> None:
    await eventually(check, within=within, interval=0.002)


def make_pool(maker: Maker, size: int = 2, max_size: int | None = None, clock: Clock | None = None,
              idle: float = 60.0) -> WarmPool:
    return WarmPool(size, create=maker.create, adopt=maker.adopt, remove=maker.remove, max_size=max_size,
                    idle=idle, quiet=0.0, clock=clock or Clock())


async def test_fills_to_size_and_hands_out_ready_pods_then_refills() -> None:
    maker = Maker()
    pool = make_pool(maker, size=2, max_size=2)
    try:
        pool.kick()
        await until(lambda: len(pool.ready) == 2)
        first = await pool.take()
        assert first is not None and first.id == "w1"
        assert pool.hits == 1
        await until(lambda: len(pool.ready) == 2)
        assert [p.id for p in pool.ready] == ["w2", "w3"]
    finally:
        await pool.close()


async def test_more_adopted_pods_than_the_pool_holds_are_trimmed_when_idle() -> None:
    maker = Maker()
    clock = Clock()
    left_over = [WarmPod(f"old{i}", f"10.0.1.{i}", "") for i in range(5)]

    async def adopt() -> list[WarmPod]:
        return list(left_over)

    pool = WarmPool(2, create=maker.create, adopt=adopt, remove=maker.remove, idle=30.0, quiet=0.0, clock=clock)
    try:
        pool.kick()
        # never claimed: idle since ever, so the surplus goes at once, the newest adopted first
        await until(lambda: len(pool.ready) == 2)
        assert [p.id for p in pool.ready] == ["old0", "old1"]
        assert sorted(maker.removed) == ["old2", "old3", "old4"] and maker.made == []
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def claim_in_flight(maker: Maker) -> AsyncIterator[tuple[WarmPool, asyncio.Task[WarmPod | None]]]:
    """A one-pod pool whose first pod is being started (held at ``maker.gate``) and a claim
    waiting for it; the pool is closed afterwards."""
    maker.gate = asyncio.Event()
    pool = make_pool(maker, size=1, max_size=1)
    try:
        pool.kick()
        await asyncio.wait_for(maker.started.wait(), 2)
        claim = asyncio.create_task(pool.take())
        await asyncio.sleep(0.01)
        yield pool, claim
    finally:
        await pool.close()


async def test_a_claim_on_an_empty_pool_gets_the_pod_being_started() -> None:
    maker = Maker()
    async with claim_in_flight(maker) as (pool, claim):
        assert not claim.done()  # waits for the pod in flight instead of going cold
        second = await pool.take()  # the pod in flight is promised already: this one goes cold
        assert second is None and pool.misses == 1
        assert maker.gate is not None
        maker.gate.set()
        handed = await asyncio.wait_for(claim, 2)
        assert handed is not None and handed.id == "w1"
        assert pool.handoffs == 1
        await until(lambda: len(pool.ready) == 1)
        assert pool.ready[0].id == "w2"  # the pool refilled itself after the hand-off


async def test_an_empty_idle_pool_misses_and_grows_then_shrinks_after_idle() -> None:
    maker = Maker()
    clock = Clock()
    pool = make_pool(maker, size=1, max_size=4, clock=clock, idle=0.2)
    try:
        assert await pool.take() is None  # nothing made or in flight yet
        assert pool.target == 2
        await until(lambda: len(pool.ready) == 2)
        assert (await pool.take()) is not None
        assert (await pool.take()) is not None  # this claim empties it: grow again
        assert pool.target == 4
        await until(lambda: len(pool.ready) == 4)
        assert await pool.take() is not None
        assert pool.target == 4  # capped at max_size
        await until(lambda: len(pool.ready) == 4)
        clock.now += 1.0  # no claim for longer than idle
        await until(lambda: pool.target == 1 and len(pool.ready) == 1)
        assert len(maker.removed) == 3
        assert not {p.id for p in pool.ready} & set(maker.removed)
    finally:
        await pool.close()


async def test_a_failed_refill_answers_waiting_claims_with_none_and_retries() -> None:
    maker = Maker()
    maker.fail_next = 1
    async with claim_in_flight(maker) as (pool, claim):
        assert maker.gate is not None
        maker.gate.set()
        assert await asyncio.wait_for(claim, 2) is None  # the caller starts a pod of its own
        # The refill is retried after its back-off (1 s).
        await until(lambda: len(pool.ready) == 1, within=3.0)


async def test_a_cancelled_claim_leaves_the_pod_in_the_pool() -> None:
    maker = Maker()
    async with claim_in_flight(maker) as (pool, claim):
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim
        assert maker.gate is not None
        maker.gate.set()
        await until(lambda: len(pool.ready) == 1)
        assert pool.ready[0].id == "w1"


async def test_close_answers_waiting_claims() -> None:
    maker = Maker()
    async with claim_in_flight(maker) as (pool, claim):
        await pool.close()
        assert await asyncio.wait_for(claim, 2) is None
