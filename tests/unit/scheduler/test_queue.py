"""The scheduling queue on virtual time: backoff 1 s → 10 s, events, priorities, deletion."""

from __future__ import annotations

import asyncio

import pytest

from shoal.kube.clock import FakeClock
from shoal.scheduler.queue import QueueClosedError, SchedulingQueue


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def pop_now(queue: SchedulingQueue) -> str:
    return await asyncio.wait_for(queue.pop(), timeout=1.0)


async def nothing_ready(queue: SchedulingQueue) -> bool:
    task = asyncio.ensure_future(queue.pop())
    await settle()
    ready = task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return not ready


def test_backoff_doubles_from_one_second_up_to_ten() -> None:
    queue = SchedulingQueue(FakeClock())
    assert [queue.backoff_for(n) for n in range(7)] == [0, 1, 2, 4, 8, 10, 10]


async def test_an_unschedulable_pod_comes_back_after_its_backoff() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    queue.add("ns/a")
    assert await pop_now(queue) == "ns/a"
    for expected in (1.0, 2.0, 4.0, 8.0, 10.0, 10.0):
        assert queue.failed("ns/a") == expected
        assert (queue.backing_off, queue.in_flight) == (1, 0)
        waiter = asyncio.ensure_future(queue.pop())
        await settle()
        clock.advance(expected - 0.001)
        await settle()
        assert not waiter.done()
        clock.advance(0.001)
        await settle()
        assert waiter.done() and waiter.result() == "ns/a"
    queue.done("ns/a")
    assert queue.attempts("ns/a") == 0


async def test_a_cluster_event_retries_backing_off_pods_at_once() -> None:
    queue = SchedulingQueue(FakeClock())
    queue.add("ns/a")
    queue.add("ns/b")
    for key in ("ns/a", "ns/b"):
        assert await pop_now(queue) == key
        queue.failed(key)
    assert await nothing_ready(queue)
    queue.move_all_to_active()
    assert {await pop_now(queue), await pop_now(queue)} == {"ns/a", "ns/b"}
    assert queue.attempts("ns/a") == 1  # the backoff still grows on the next failure
    assert queue.failed("ns/a") == 2.0


async def test_an_event_during_an_attempt_makes_its_failure_retry_at_once() -> None:
    queue = SchedulingQueue(FakeClock())
    queue.add("ns/a")
    assert await pop_now(queue) == "ns/a"
    queue.move_all_to_active()  # a node was added while the decision was being made
    assert queue.failed("ns/a") == 0.0
    assert await pop_now(queue) == "ns/a"
    assert queue.failed("ns/a") == 2.0  # the event is spent: ordinary backoff again


async def test_adds_are_stingy_and_activate_skips_the_backoff() -> None:
    queue = SchedulingQueue(FakeClock())
    queue.add("ns/a")
    queue.add("ns/a")
    assert await pop_now(queue) == "ns/a"
    queue.add("ns/a")  # in flight: ignored
    assert await nothing_ready(queue)
    queue.failed("ns/a")
    queue.add("ns/a")  # backing off: still ignored
    assert await nothing_ready(queue)
    queue.activate("ns/a")
    assert await pop_now(queue) == "ns/a"


async def test_higher_priority_first_then_first_in() -> None:
    queue = SchedulingQueue(FakeClock())
    queue.add("ns/low-1", 0)
    queue.add("ns/high", 100)
    queue.add("ns/low-2", 0)
    assert [await pop_now(queue) for _ in range(3)] == ["ns/high", "ns/low-1", "ns/low-2"]


async def test_deleted_pods_are_forgotten_even_mid_attempt() -> None:
    queue = SchedulingQueue(FakeClock())
    queue.add("ns/a")
    queue.add("ns/b")
    queue.delete("ns/b")
    assert await pop_now(queue) == "ns/a"
    queue.delete("ns/a")
    assert queue.failed("ns/a") == 0.0  # not resurrected
    assert "ns/a" not in queue
    assert await nothing_ready(queue)


async def test_close_wakes_a_waiting_pop() -> None:
    queue = SchedulingQueue(FakeClock())
    waiter = asyncio.ensure_future(queue.pop())
    await settle()
    queue.close()
    with pytest.raises(QueueClosedError):
        await asyncio.wait_for(waiter, 1.0)
    queue.add("ns/a")
    with pytest.raises(QueueClosedError):
        await queue.pop()
