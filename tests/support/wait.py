"""Polling for tests: wait until a condition holds, bounded in time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest


async def eventually(check: Callable[[], Any], *, within: float = 10.0, what: str = "the condition",
                     interval: float = 0.05) -> Any:
    """Call ``check()`` (sync or async) until it returns something truthy, and return that.

    Fails the test after ``within`` seconds, naming ``what`` and the last value seen.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what} (last value {last!r})")
        await asyncio.sleep(interval)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.5) -> Any:
    """The blocking form, for tests that drive processes: ``check()`` until truthy, returned;
    an AssertionError naming ``what`` and the last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
