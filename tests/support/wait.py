"""Polling for tests: wait until a condition holds, bounded in time."""

from __future__ import annotations

import asyncio
import inspect
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
