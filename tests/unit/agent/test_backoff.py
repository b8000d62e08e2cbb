"""Backoff (kubelet flowcontrol semantics), on a fake clock."""

from __future__ import annotations

import pytest

from shoal.agent.backoff import Backoff
from shoal.kube.clock import FakeClock

START = 1_700_000_000.0


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
