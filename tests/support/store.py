"""Helpers for tests that drive a :class:`shoal.store.Store` directly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from shoal.store.interface import Event, Store

__all__ = ["take", "watching"]


async def take(events: AsyncIterator[Event], n: int, within: float = 5.0) -> list[Event]:
    """The next ``n`` events of a watch; fails the test if they do not come within ``within`` s."""
    out: list[Event] = []

    async def collect() -> None:
        async for event in events:
            out.append(event)
            if len(out) == n:
                return

    try:
        async with asyncio.timeout(within):
            await collect()
    except TimeoutError:
        raise AssertionError(f"expected {n} events within {within}s, got {len(out)}: {out}") from None
    return out


@contextlib.asynccontextmanager
async def watching(store: Store, prefix: str, revision: int) -> AsyncIterator[AsyncIterator[Event]]:
    """``store.watch(prefix, revision)``, closed (``aclose``) when the block ends."""
    events = store.watch(prefix, revision)
    try:
        yield events
    finally:
        if isinstance(events, AsyncGenerator):
            await events.aclose()
