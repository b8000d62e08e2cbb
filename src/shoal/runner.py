"""The component runner shared by ``shoal server`` and ``shoal agent``.

A component (:class:`Component`) is a name and ``async run(stop)``: it works until the
``stop`` event is set, then returns.  :func:`run_components` runs a list of them in one asyncio
TaskGroup; :func:`stop_on_signals` turns SIGINT/SIGTERM into ``stop``; :func:`run_process`
is both, for a process that is nothing but its components (``shoal agent``).  ``shoal server``
uses the two pieces around its HTTP API (:mod:`shoal.server`).  What the components are is the
catalogue's business (:mod:`shoal.components`).

Contract and invariants
-----------------------
* Components start in the order given, each as a task named after it; names are unique
  (:class:`DuplicateComponentError` otherwise).  ``disable`` names are skipped; names that
  match no component are ignored (``--disable proxy`` is valid before a proxy exists).
  When ``stop`` is already set, nothing starts.
* Clean stop: once ``stop`` is set every component gets ``grace`` seconds to return; one still
  running then is cancelled (and logged).  :func:`run_components` returns when every
  component has returned or been cancelled.
* Crash: when a component raises, the runner sets ``stop`` (the caller's event) so the others
  stop the same way, then raises :class:`ComponentError` naming every component that failed,
  chained to the first failure; ``failures`` keeps them all.  Nothing is swallowed: a process
  that runs its components through the runner exits non-zero.
* A component that returns before ``stop`` is set is logged; the others keep running.
* Cancelling :func:`run_components` cancels every component and waits for them (TaskGroup).
* Signals: the first SIGINT/SIGTERM sets ``stop`` and removes the handlers, so a second one
  acts as it would by default (Ctrl-C raises KeyboardInterrupt, SIGTERM terminates) — the way
  out when a stop hangs.
* This module imports no component package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["STOP_GRACE", "Component", "ComponentError", "DuplicateComponentError", "FunctionComponent",
           "cancel_on_stop", "run_components", "run_process", "stop_on_signals"]

log = logging.getLogger(__name__)

#: Seconds a component gets to return once ``stop`` is set before it is cancelled.
STOP_GRACE = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Component(Protocol):
    """A named piece of a Shoal process that runs until ``stop`` is set."""

    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event) -> None: ...


@dataclass(frozen=True)
class FunctionComponent:
    """A component made of a name and a coroutine function of ``stop``."""

    name: str
    main: Callable[[asyncio.Event], Awaitable[None]]

    async def run(self, stop: asyncio.Event) -> None:
        await self.main(stop)


class ComponentError(Exception):
    """One or more components raised; ``failures`` holds (name, exception) in the order they failed."""

    def __init__(self, failures: Sequence[tuple[str, BaseException]]) -> None:
        names = ", ".join(name for name, _ in failures)
        first = failures[0][1]
        super().__init__(f"component {names} failed: {type(first).__name__}: {first}")
        self.failures = tuple(failures)


class DuplicateComponentError(ValueError):
    """Two components share a name."""


async def run_components(components: Sequence[Component], stop: asyncio.Event, *,
                         disable: Collection[str] = (), grace: float = STOP_GRACE) -> None:
    """Run the enabled ``components`` until ``stop`` (see the module docstring)."""
    enabled = [c for c in components if c.name not in disable]
    seen: set[str] = set()
    for component in enabled:
        if component.name in seen:
            raise DuplicateComponentError(f"two components are named {component.name!r}")
        seen.add(component.name)
    if stop.is_set() or not enabled:
        return
    failures: list[tuple[str, BaseException]] = []
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_supervise(c, stop, failures), name=c.name) for c in enabled]
        group.create_task(_enforce_grace(tasks, stop, grace), name="runner-grace")
    if failures:
        raise ComponentError(failures) from failures[0][1]


async def _supervise(component: Component, stop: asyncio.Event, failures: list[tuple[str, BaseException]]) -> None:
    """Run one component; record its failure (re-raised by run_components) and stop the rest."""
    log.info("component %s starting", component.name)
    try:
        await component.run(stop)
    except Exception as exc:
        log.error("component %s failed (%s: %s); stopping the others", component.name, type(exc).__name__, exc)
        failures.append((component.name, exc))
        stop.set()
        return
    if stop.is_set():
        log.info("component %s stopped", component.name)
    else:
        log.warning("component %s ended before it was asked to stop", component.name)


async def _enforce_grace(tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event, grace: float) -> None:
    """Once ``stop`` is set, cancel the components still running ``grace`` seconds later."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            running = [task for task in tasks if not task.done()]
            if not running:
                return
            await asyncio.wait([*running, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    running = [task for task in tasks if not task.done()]
    if running:
        await asyncio.wait(running, timeout=grace)
    for task in tasks:
        if not task.done():
            log.warning("component %s did not stop within %.1fs; cancelling it", task.get_name(), grace)
            task.cancel()


async def cancel_on_stop(work: Awaitable[None], stop: asyncio.Event) -> None:
    """Await ``work`` (a coroutine that runs until cancelled, e.g. the store compactor) until it
    ends or ``stop`` is set; then it is cancelled.  Its exception, if it raises, propagates."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # never raises; an outer cancellation still propagates
    if not task.cancelled():
        task.result()


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signals`` sets ``stop`` (see the module docstring)."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        log.warning("%s: stopping (send it again to stop at once)", sig.name)
        for each in signals:
            loop.remove_signal_handler(each)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def run_process(components: Sequence[Component], *, disable: Collection[str] = (),
                      grace: float = STOP_GRACE) -> None:
    """Run ``components`` until SIGINT/SIGTERM (or a crash: :class:`ComponentError`)."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await run_components(components, stop, disable=disable, grace=grace)
