"""The component runner: clean stop, a crash stops the others and is re-raised, disable, grace, signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from shoal import runner
from shoal.runner import ComponentError, DuplicateComponentError, FunctionComponent, run_components


class Recorder:
    """Components that note what happened to them."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def waiter(self, name: str) -> FunctionComponent:
        """Runs until stop, then returns."""
        async def main(stop: asyncio.Event) -> None:
            self.events.append(f"{name} started")
            await stop.wait()
            self.events.append(f"{name} stopped")
        return FunctionComponent(name, main)

    def crasher(self, name: str, exc: Exception, after: float = 0.01) -> FunctionComponent:
        async def main(stop: asyncio.Event) -> None:
            self.events.append(f"{name} started")
            await asyncio.sleep(after)
            raise exc
        return FunctionComponent(name, main)

    def stubborn(self, name: str) -> FunctionComponent:
        """Ignores stop: only cancellation ends it."""
        async def main(stop: asyncio.Event) -> None:
            self.events.append(f"{name} started")
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.events.append(f"{name} cancelled")
                raise
        return FunctionComponent(name, main)


async def test_components_start_in_order_and_stop_cleanly() -> None:
    rec, stop = Recorder(), asyncio.Event()
    running = asyncio.create_task(run_components([rec.waiter("a"), rec.waiter("b")], stop))
    await asyncio.sleep(0.01)
    assert rec.events == ["a started", "b started"] and not running.done()
    stop.set()
    await asyncio.wait_for(running, 1)
    assert sorted(rec.events[2:]) == ["a stopped", "b stopped"]


async def test_a_crash_stops_the_others_and_is_re_raised() -> None:
    rec, stop = Recorder(), asyncio.Event()
    boom = ValueError("boom")
    with pytest.raises(ComponentError, match="component bad failed: ValueError: boom") as raised:
        await asyncio.wait_for(run_components([rec.waiter("a"), rec.crasher("bad", boom), rec.waiter("b")], stop), 2)
    assert raised.value.failures == (("bad", boom),)
    assert raised.value.__cause__ is boom
    assert stop.is_set()  # the caller's event: everything sharing it stops too
    assert {"a stopped", "b stopped"} <= set(rec.events)


async def test_every_failure_is_kept() -> None:
    rec, stop = Recorder(), asyncio.Event()
    first, second = ValueError("first"), KeyError("second")

    async def fails_when_stopping(stop: asyncio.Event) -> None:
        await stop.wait()
        raise second

    components = [rec.crasher("one", first), FunctionComponent("two", fails_when_stopping)]
    with pytest.raises(ComponentError, match="component one, two failed") as raised:
        await asyncio.wait_for(run_components(components, stop), 2)
    assert raised.value.failures == (("one", first), ("two", second))


async def test_disabled_components_do_not_run_and_unknown_names_are_ignored() -> None:
    rec, stop = Recorder(), asyncio.Event()
    running = asyncio.create_task(run_components([rec.waiter("a"), rec.waiter("b")], stop,
                                                 disable=frozenset({"b", "proxy"})))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, 1)
    assert rec.events == ["a started", "a stopped"]


async def test_a_component_that_ignores_stop_is_cancelled_after_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    rec, stop = Recorder(), asyncio.Event()
    running = asyncio.create_task(run_components([rec.waiter("a"), rec.stubborn("slow")], stop, grace=0.1))
    await asyncio.sleep(0.01)
    stop.set()
    with caplog.at_level(logging.WARNING, logger="shoal.runner"):
        await asyncio.wait_for(running, 1)
    assert "slow cancelled" in rec.events and "a stopped" in rec.events
    assert "component slow did not stop within 0.1s; cancelling it" in caplog.text


async def test_an_early_return_leaves_the_others_running(caplog: pytest.LogCaptureFixture) -> None:
    rec, stop = Recorder(), asyncio.Event()

    async def brief(stop: asyncio.Event) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="shoal.runner"):
        running = asyncio.create_task(run_components([FunctionComponent("brief", brief), rec.waiter("a")], stop))
        await asyncio.sleep(0.02)
    assert not running.done() and "component brief ended before it was asked to stop" in caplog.text
    stop.set()
    await asyncio.wait_for(running, 1)
    assert rec.events == ["a started", "a stopped"]


async def test_nothing_starts_once_stop_is_set_and_names_must_be_unique() -> None:
    rec, stop = Recorder(), asyncio.Event()
    stop.set()
    await run_components([rec.waiter("a")], stop)
    assert rec.events == []
    with pytest.raises(DuplicateComponentError, match="'a'"):
        await run_components([rec.waiter("a"), rec.waiter("a")], asyncio.Event())
    await run_components([], asyncio.Event())  # nothing to run: returns at once


async def test_cancelling_the_runner_cancels_every_component() -> None:
    rec, stop = Recorder(), asyncio.Event()
    running = asyncio.create_task(run_components([rec.stubborn("a"), rec.stubborn("b")], stop))
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert sorted(rec.events[2:]) == ["a cancelled", "b cancelled"]


async def test_cancel_on_stop() -> None:
    stop = asyncio.Event()
    forever = asyncio.create_task(runner.cancel_on_stop(asyncio.sleep(3600), stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(forever, 1)  # the sleep was cancelled, cancel_on_stop returned

    async def fails() -> None:
        raise OSError("store down")

    with pytest.raises(OSError, match="store down"):
        await runner.cancel_on_stop(fails(), asyncio.Event())


async def test_the_first_signal_sets_stop_and_gives_the_signal_back_to_its_default() -> None:
    stop = asyncio.Event()
    sig = signal.SIGUSR1  # not SIGINT/SIGTERM: a mistake here must not end the test run
    with runner.stop_on_signals(stop, signals=(sig,)):
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stop.wait(), 1)
        assert signal.getsignal(sig) == signal.SIG_DFL  # a second one acts as by default
    assert signal.getsignal(sig) == signal.SIG_DFL


async def test_run_process_re_raises_a_crash_and_removes_its_handlers() -> None:
    rec = Recorder()
    with pytest.raises(ComponentError):
        await asyncio.wait_for(runner.run_process([rec.waiter("a"), rec.crasher("bad", RuntimeError("x"))]), 2)
    assert "a stopped" in rec.events
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
