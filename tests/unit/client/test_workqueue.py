"""The work queue's client-go guarantees, on virtual time (FakeClock)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from shoal.client.workqueue import (
    BucketRateLimiter,
    ItemExponentialRateLimiter,
    MaxOfRateLimiter,
    ShutDownError,
    WorkQueue,
    default_rate_limiter,
)
from shoal.kube.clock import FakeClock


async def settle(rounds: int = 20) -> None:
    """Let every task that can run, run (virtual time does not move)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def get_now(queue: WorkQueue[str]) -> str:
    """``get`` that must not block: the item has to be ready already."""
    return await asyncio.wait_for(queue.get(), timeout=1.0)


def make_queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    return WorkQueue("test", clock=clock or FakeClock())


# -- stingy and fair ----------------------------------------------------------------------


async def test_items_come_out_in_the_order_they_were_added() -> None:
    queue = make_queue()
    for item in ("a", "b", "c"):
        queue.add(item)
    assert [await get_now(queue) for _ in range(3)] == ["a", "b", "c"]


async def test_repeated_adds_collapse_into_one() -> None:
    queue = make_queue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert await get_now(queue) == "a"
    assert await get_now(queue) == "b"
    assert len(queue) == 0


async def test_an_item_added_while_processing_is_requeued_after_done_not_handed_out() -> None:
    queue = make_queue()
    queue.add("a")
    first = await get_now(queue)
    queue.add("a")  # while "a" is being processed: only marked dirty
    queue.add("a")
    assert len(queue) == 0
    second = asyncio.ensure_future(queue.get())
    await settle()
    assert not second.done(), "a key being processed must not go to a second worker"
    queue.done(first)
    assert await asyncio.wait_for(second, 1.0) == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_done_without_a_new_add_does_not_requeue() -> None:
    queue = make_queue()
    queue.add("a")
    queue.done(await get_now(queue))
    assert len(queue) == 0


async def test_concurrent_workers_never_process_one_key_at_the_same_time() -> None:
    queue = make_queue()
    active: set[str] = set()
    overlaps: list[str] = []
    processed: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDownError:
                return
            if key in active:
                overlaps.append(key)
            active.add(key)
            await asyncio.sleep(0)  # let the producer add the same key meanwhile
            await asyncio.sleep(0)
            active.discard(key)
            processed.append(key)
            queue.done(key)

    workers = [asyncio.ensure_future(worker()) for _ in range(4)]
    for round_ in range(50):
        for key in ("x", "y", "z"):
            queue.add(key)
        if round_ % 3 == 0:
            await asyncio.sleep(0)
    await settle(200)
    queue.shutdown()
    await asyncio.wait_for(asyncio.gather(*workers), 1.0)
    assert overlaps == []
    assert set(processed) == {"x", "y", "z"}
    # collapse: far fewer passes than the 150 adds
    assert len(processed) < 150


async def test_a_cancelled_get_does_not_lose_the_item() -> None:
    queue = make_queue()
    cancelled = asyncio.ensure_future(queue.get())
    waiting = asyncio.ensure_future(queue.get())
    await settle()
    queue.add("a")  # wakes the first getter ...
    cancelled.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(waiting, 1.0) == "a"


# -- delayed adds -------------------------------------------------------------------------


async def test_add_after_releases_items_in_ready_time_order() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_after("late", 3.0)
    queue.add_after("early", 1.0)
    queue.add_after("middle", 2.0)
    await settle()
    assert len(queue) == 0 and queue.waiting == 3
    clock.advance(0.999)
    await settle()
    assert len(queue) == 0
    clock.advance(0.001)
    assert await get_now(queue) == "early"
    clock.advance(1.0)
    assert await get_now(queue) == "middle"
    assert len(queue) == 0
    clock.advance(5.0)
    assert await get_now(queue) == "late"
    assert queue.waiting == 0


async def test_add_after_keeps_the_earlier_ready_time() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_after("a", 10.0)
    queue.add_after("a", 2.0)  # earlier wins
    queue.add_after("a", 5.0)  # later is ignored
    assert queue.waiting == 1
    clock.advance(2.0)
    assert await get_now(queue) == "a"
    queue.done("a")
    clock.advance(10.0)
    await settle()
    assert len(queue) == 0, "the superseded 10 s entry must not fire again"


async def test_add_after_with_no_delay_adds_at_once() -> None:
    queue = make_queue()
    queue.add_after("a", 0)
    queue.add_after("b", -1)
    assert len(queue) == 2


async def test_a_due_delayed_item_collapses_with_a_queued_one() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_after("a", 1.0)
    queue.add("a")
    clock.advance(1.0)
    await settle()
    assert len(queue) == 1


async def test_a_new_earlier_item_wakes_the_delay_loop() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_after("slow", 100.0)
    await settle()
    queue.add_after("fast", 1.0)
    await settle()
    clock.advance(1.0)
    assert await get_now(queue) == "fast"


# -- rate limiting ------------------------------------------------------------------------


def test_per_item_backoff_doubles_from_5ms_to_1000s_and_forget_resets() -> None:
    limiter: ItemExponentialRateLimiter[str] = ItemExponentialRateLimiter()
    delays = [limiter.when("a") for _ in range(20)]
    assert delays[:4] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert delays[-1] == 1000.0
    assert limiter.num_requeues("a") == 20
    assert limiter.when("b") == pytest.approx(0.005), "items back off independently"
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(0.005)
    for _ in range(2000):  # no overflow however often it fails
        assert limiter.when("c") <= 1000.0


def test_token_bucket_allows_a_burst_then_paces_at_qps() -> None:
    clock = FakeClock()
    bucket: BucketRateLimiter[str] = BucketRateLimiter(clock, qps=10.0, burst=100)
    assert [bucket.when(str(i)) for i in range(100)] == [0.0] * 100
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.when("y") == pytest.approx(0.2)
    clock.advance(10.0)  # 100 new tokens, less the 2 the paced calls reserved
    assert [bucket.when(str(i)) for i in range(98)] == [0.0] * 98
    assert bucket.when("w") == pytest.approx(0.1)
    clock.advance(1000.0)  # refills, but never above the burst
    assert [bucket.when(str(i)) for i in range(100)] == [0.0] * 100
    assert bucket.when("z") == pytest.approx(0.1)


def test_default_limiter_takes_the_larger_of_both() -> None:
    clock = FakeClock()
    limiter: MaxOfRateLimiter[str] = default_rate_limiter(clock)
    assert isinstance(limiter, MaxOfRateLimiter)
    first = [limiter.when(f"item-{i}") for i in range(100)]
    assert first == pytest.approx([0.005] * 100)  # the bucket has tokens: per-item wins
    assert limiter.when("item-100") == pytest.approx(0.1)  # bucket empty: 0.1 s beats 5 ms
    clock.advance(100.0)
    for _ in range(12):
        delay = limiter.when("flaky")
    assert delay == pytest.approx(0.005 * 2**11)  # per-item backoff wins
    assert limiter.num_requeues("flaky") == 12
    limiter.forget("flaky")
    assert limiter.num_requeues("flaky") == 0


async def test_rate_limited_requeue_waits_for_the_growing_backoff() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    expected = [0.005, 0.01, 0.02, 0.04]
    for delay in expected:
        queue.add_rate_limited("a")
        await settle()
        clock.advance(delay * 0.99)
        await settle()
        assert len(queue) == 0, f"released before its {delay}s backoff"
        clock.advance(delay * 0.02)
        queue.done(await get_now(queue))
    assert queue.num_requeues("a") == 4
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    queue.add_rate_limited("a")
    clock.advance(0.005)
    assert await get_now(queue) == "a"


# -- shutdown -----------------------------------------------------------------------------


async def test_shutdown_wakes_idle_getters() -> None:
    queue = make_queue()
    getters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await settle()
    queue.shutdown()
    for getter in getters:
        with pytest.raises(ShutDownError):
            await asyncio.wait_for(getter, 1.0)


async def test_shutdown_hands_out_what_is_queued_then_stops_and_drops_new_adds() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add("a")
    queue.add("b")
    queue.add_after("later", 1.0)
    queue.shutdown()
    queue.add("c")
    queue.add_after("d", 1.0)
    queue.add_rate_limited("e")
    assert queue.dropped == 3
    assert await get_now(queue) == "a"
    assert await get_now(queue) == "b"
    with pytest.raises(ShutDownError):
        await get_now(queue)
    clock.advance(5.0)
    await settle()
    assert len(queue) == 0, "delayed items are dropped at shutdown"


async def test_shutdown_with_drain_waits_for_items_in_processing() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_after("x", 1.0)  # starts the delay loop, which drain must stop too
    queue.add("a")
    item = await get_now(queue)
    drained = asyncio.ensure_future(queue.shutdown_with_drain())
    await settle()
    assert not drained.done(), "drain must wait for done()"
    queue.done(item)
    await asyncio.wait_for(drained, 1.0)


# -- the fake clock -----------------------------------------------------------------------


async def test_fake_clock_wakes_sleepers_in_deadline_order_only_when_due() -> None:
    clock = FakeClock(start=100.0)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(seconds)

    tasks = [asyncio.ensure_future(sleeper(s)) for s in (3.0, 1.0, 2.0)]
    await settle()
    assert clock.sleepers == 3
    clock.advance(1.5)
    await settle()
    assert woke == [1.0]
    clock.advance(10.0)
    await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
    assert woke == [1.0, 2.0, 3.0]
    assert clock.now() == pytest.approx(111.5)
