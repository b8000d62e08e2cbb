"""Periodic compaction of the store's history, as the Kubernetes API server does.

Every ``interval`` seconds the compactor compacts the store to the revision it saw at the
previous tick, so history is kept for at least one interval (Kubernetes: 5 minutes).  A
watch or a paginated list that starts from a revision older than that gets 410 Gone and
the client lists again — the behaviour client-go's reflector expects.  Several servers
sharing one etcd may each run a compactor: compacting to a revision that is already
compacted is a no-op in both backends.  The clock is injected.

A compaction that fails because the store cannot write (:class:`StoreUnavailableError`: a
full disk, etcd unreachable) is logged and tried again at the next tick, so the server keeps
serving reads meanwhile; any other store error propagates and stops the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shoal.store.interface import Store, StoreUnavailableError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0


async def run_compactor(store: Store, interval: float = DEFAULT_INTERVAL,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Compact forever (until cancelled); see the module docstring for store errors."""
    previous = await store.current_revision()
    while True:
        await sleep(interval)
        current = await store.current_revision()
        if previous > await store.compacted_revision():
            try:
                await store.compact(previous)
            except StoreUnavailableError as exc:
                log.warning("compaction to revision %d failed, retrying in %.0f s: %s", previous, interval, exc)
                continue
            log.info("compacted store history up to revision %d", previous)
        previous = current
