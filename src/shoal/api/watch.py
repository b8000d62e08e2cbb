"""Watch streams: newline-delimited JSON events over a chunked response.

``?watch=true&resourceVersion=RV``: every change after RV, in order.  Without RV (or "0")
the stream starts with a synthetic ADDED per existing object, as Kubernetes does.  A
compacted RV ends the stream with an ERROR event carrying a 410 Expired Status, which
kubectl and client-go answer by listing again.  ``allowWatchBookmarks=true`` adds BOOKMARK
events carrying the last revision delivered.  The stream ends after ``timeoutSeconds``
(an int64; 0 or none: 30 minutes; negative: at once) or when the client goes away.
Malformed ``timeoutSeconds`` or ``resourceVersion`` (``nan``, ``inf``, ``abc``) is a 400
(:func:`shoal.api.options.list_options`).  Events are Tables when the client asks
for ``as=Table`` (``kubectl get -w``); the column definitions are sent in the first event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from shoal.api import tables
from shoal.api.bodies import JSON, wants_table
from shoal.api.options import list_options, resource_version
from shoal.api.storage import WatchEvent
from shoal.kube import errors

if TYPE_CHECKING:
    from shoal.api.handlers import ResourceHandlers, Target

log = logging.getLogger(__name__)

BOOKMARK_INTERVAL = 10.0
DEFAULT_TIMEOUT = 1800.0
_END = object()


async def watch_response(handlers: ResourceHandlers, request: Request, target: Target) -> StreamingResponse:
    params = request.query_params
    kind = target.kind
    keep = handlers.object_filter(request, kind)
    options = list_options(params)
    # Like Kubernetes: 0 (or none) is the default, a negative timeout ends the watch at once.
    timeout = float(options.timeout_seconds) if options.timeout_seconds else DEFAULT_TIMEOUT
    bookmarks = (params.get("allowWatchBookmarks") or "").lower() == "true"
    as_table = wants_table(request.headers.get("accept"))
    include = params.get("includeObject") or "Metadata"
    start = resource_version(options.resource_version)
    initial: list[WatchEvent] = []
    if start == 0:
        page = await handlers.storage.list(kind, target.namespace, keep=keep)
        start = int(page.resource_version)
        initial = [WatchEvent("ADDED", obj, start) for obj in page.items]
    else:
        current = await handlers.storage.current_revision()
        if start > current:
            raise errors.ApiError(504, "Timeout", f"Too large resource version: {start}, current: {current}",
                                  {"retryAfterSeconds": 1})
    sent_columns = False

    def encode(event: WatchEvent) -> bytes:
        nonlocal sent_columns
        if as_table:
            body = tables.table(kind, [event.object], datetime.now(UTC), include,
                                {"resourceVersion": event.object["metadata"].get("resourceVersion", "")},
                                with_columns=not sent_columns)
            sent_columns = True
            return orjson.dumps({"type": event.type, "object": body}) + b"\n"
        if event.line is None:  # the event may be shared with other watches: encode it once
            event.line = orjson.dumps({"type": event.type, "object": event.object}) + b"\n"
        return event.line

    async def pump(queue: asyncio.Queue[object]) -> None:
        try:
            async for event in handlers.storage.watch(kind, target.namespace, start, keep):
                await queue.put(event)
        except errors.ApiError as exc:
            await queue.put(exc)
        finally:
            await queue.put(_END)

    async def stream() -> AsyncIterator[bytes]:
        last = start
        for event in initial:
            yield encode(event)
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1000)
        task = asyncio.create_task(pump(queue))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(queue.get(), min(remaining, BOOKMARK_INTERVAL))
                except TimeoutError:
                    if bookmarks:
                        yield orjson.dumps({"type": "BOOKMARK", "object": {
                            "kind": kind.kind, "apiVersion": kind.api_version,
                            "metadata": {"resourceVersion": str(last)}}}) + b"\n"
                    continue
                if item is _END:
                    return
                if isinstance(item, errors.ApiError):
                    yield orjson.dumps({"type": "ERROR", "object": item.to_status()}) + b"\n"
                    return
                assert isinstance(item, WatchEvent)
                last = item.revision
                yield encode(item)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return StreamingResponse(stream(), media_type=JSON)
