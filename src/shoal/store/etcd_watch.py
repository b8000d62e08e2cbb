"""Watch for the etcd backend: one ``POST /v3/watch`` stream per watcher.

The gateway streams newline-separated ``{"result": WatchResponse}`` objects: first one with
``created``, then batches of ``events`` (``type`` is left out for PUT; ``prev_kv`` is
present because the watch asks for it), or one with ``canceled`` (``compact_revision`` set
when the start revision was compacted).

Invariants
----------
* ``watch(prefix, R)`` first checks with a count-only range at R that R is neither compacted
  nor in the future (the contract's errors; etcd itself would accept ``R = compacted - 1`` and
  wait silently for a future revision), then asks etcd for events from ``R + 1``.
  ``R = 0`` lets etcd start at its current revision.
* A PUT whose ``create_revision == mod_revision`` is ADDED, any other PUT is MODIFIED
  (``prev_value`` from ``prev_kv``); a DELETE is DELETED with the last value from ``prev_kv``
  (missing only if etcd compacted it away meanwhile, which ends the watch with an error,
  as kube-apiserver does).
* When the stream breaks or the server ends it, the watch re-opens on the next endpoint from
  ``last revision + 1``, so the consumer sees no gap and no duplicate.  It gives up with
  :class:`StoreUnavailableError` after ``3 × endpoints`` reconnects without a ``created``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import httpx
import orjson

from shoal.store.etcd_gateway import EtcdRequestError, Gateway, Json, prefix_bounds, unb64
from shoal.store.interface import (
    CompactedError,
    Event,
    EventType,
    StoreError,
    StoreUnavailableError,
)


def to_event(raw: Json) -> Event:
    """One etcd ``mvccpb.Event`` (gateway JSON) as a store :class:`Event`."""
    kv: Json = raw["kv"]
    key = unb64(kv["key"]).decode()
    revision = int(kv["mod_revision"])
    prev: Json | None = raw.get("prev_kv")
    prev_value = unb64(prev.get("value", "")) if prev is not None else None
    if raw.get("type") == "DELETE":
        if prev_value is None:
            raise StoreError(f"etcd sent DELETE of {key!r} at revision {revision} without prev_kv")
        return Event(EventType.DELETED, key, prev_value, revision, prev_value)
    value = unb64(kv.get("value", ""))
    if int(kv.get("create_revision", 0)) == revision:
        return Event(EventType.ADDED, key, value, revision)
    return Event(EventType.MODIFIED, key, value, revision, prev_value)


def _result(line: bytes, requested: int) -> Json:
    """Decode one stream line; raise the store error it reports, if any."""
    message: Json = orjson.loads(line)
    if "error" in message:
        error: Json = message["error"]
        raise EtcdRequestError(int(error.get("code", -1)), str(error.get("message", error)))
    result: Json = message["result"]
    if result.get("canceled"):
        compacted = int(result.get("compact_revision", 0))
        if compacted:
            raise CompactedError(requested, compacted)
        raise StoreError(f"etcd canceled the watch: {result.get('cancel_reason', 'no reason given')}")
    return result


async def watch(
    gateway: Gateway,
    check_revision: Callable[[str, int], Awaitable[None]],
    prefix: str,
    revision: int,
) -> AsyncGenerator[Event, None]:
    """Events under ``prefix`` with revision > ``revision``; see the module docstring."""
    if revision > 0:
        await check_revision(prefix, revision)
    key, range_end = prefix_bounds(prefix)
    next_revision = revision + 1 if revision > 0 else 0  # 0: etcd picks "now"
    failures = 0
    broken: Exception | None = None
    while True:
        request: Json = {"key": key, "range_end": range_end, "prev_kv": True}
        if next_revision > 0:
            request["start_revision"] = str(next_revision)
        response = await gateway.open_stream("/v3/watch", {"create_request": request})
        try:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                result = _result(line.encode(), next_revision - 1)
                if result.get("created"):
                    failures = 0
                    if next_revision == 0:
                        next_revision = int(result["header"]["revision"]) + 1
                for raw in result.get("events", ()):
                    event = to_event(raw)
                    next_revision = event.revision + 1
                    yield event
        except httpx.TransportError as err:
            broken = err  # the stream broke: re-open it below, from next_revision
        finally:
            await response.aclose()
        failures += 1
        if failures >= 3 * len(gateway.endpoints):
            raise StoreUnavailableError(
                f"etcd watch on {prefix!r}: the stream keeps ending ({failures} times in a row)"
            ) from broken
        gateway.fail_over()
