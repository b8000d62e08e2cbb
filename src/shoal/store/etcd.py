"""The etcd store backend: etcd v3.4 through its gRPC-JSON gateway (httpx, no gRPC stack).

It implements :class:`shoal.store.interface.Store` with etcd's own revisions: the store
revision is etcd's cluster revision and ``mod_revision``/``create_revision`` are etcd's.

Mapping
-------
* ``create``: txn ``create_revision(key) == 0`` → put.  Else :class:`KeyExistsError`.
* ``update``: txn ``create_revision(key) > 0 and mod_revision(key) == expected`` → put with
  ``prev_kv``; else a range of the key tells :class:`KeyNotFoundError` from
  :class:`RevisionConflictError` (with the actual revision).
* ``delete``: the same txn with a delete (``prev_kv``), or a plain ``deleterange`` when
  unconditional (nothing deleted → :class:`KeyNotFoundError`).
* ``list``/``count``: one range ``[prefix, prefix+1)`` (``start_after`` moves the start to
  ``start_after + "\\0"``); etcd returns ``more`` and ``count`` (keys in the range), so
  ``remaining = count - len(page)``.
* ``compact``: ``/v3/kv/compaction`` with ``physical`` so it is done when the call returns;
  compacting at or below the compacted revision is a no-op.
* ``compacted_revision``: etcd v3.4 does not report it, so it is found by bisecting with
  count-only ranges (``log2(revision)`` cheap requests, from a remembered lower bound).
* etcd's "required revision has been compacted" and "... is a future revision" become
  :class:`CompactedError` and :class:`FutureRevisionError`; connection failures become
  :class:`StoreUnavailableError` after every endpoint was tried (see
  :mod:`shoal.store.etcd_gateway`).  The watch lives in :mod:`shoal.store.etcd_watch`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from shoal.store import etcd_watch
from shoal.store.etcd_gateway import ALL_KEYS, EtcdRequestError, Gateway, Json, b64, prefix_bounds, unb64
from shoal.store.interface import (
    MAX_LIMIT,
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionConflictError,
    StoreError,
)

if TYPE_CHECKING:
    from shoal.store.interface import Store


#: etcd's revisions are int64.
MAX_REVISION = 2**63 - 1


def _kv(raw: Json) -> KeyValue:
    return KeyValue(
        key=unb64(raw["key"]).decode(),
        value=unb64(raw.get("value", "")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
    )


def _revision(reply: Json) -> int:
    return int(reply["header"]["revision"])


def _exists(key: str) -> Json:
    return {"key": key, "result": "GREATER", "target": "CREATE", "create_revision": "0"}


def _mod_is(key: str, revision: int) -> Json:
    return {"key": key, "result": "EQUAL", "target": "MOD", "mod_revision": str(revision)}


class EtcdStore:
    """A :class:`Store` on an etcd v3.4 cluster; ``endpoints`` are ``HOST:PORT`` or URLs."""

    def __init__(self, endpoints: list[str], *, timeout: float = 10.0) -> None:
        self._gw = Gateway(endpoints, timeout=timeout)
        #: A lower bound of etcd's compacted revision (it only grows).
        self._compacted_floor = 0

    @property
    def endpoints(self) -> list[str]:
        return list(self._gw.endpoints)

    async def start(self) -> None:
        await self._gw.start()
        try:
            await self.current_revision()  # fail fast when no endpoint answers
        except BaseException:
            await self._gw.close()
            raise

    async def close(self) -> None:
        await self._gw.close()

    async def _range(self, body: Json, requested: int = 0) -> Json:
        try:
            return await self._gw.call("/v3/kv/range", body, idempotent=True)
        except EtcdRequestError as err:
            raise await self._revision_error(err, requested) from err

    async def _revision_error(self, err: EtcdRequestError, requested: int) -> StoreError:
        if err.compacted:
            return CompactedError(requested, await self.compacted_revision())
        if err.future_revision:
            return FutureRevisionError(requested, await self.current_revision())
        return err

    async def _txn(self, body: Json) -> Json:
        return await self._gw.call("/v3/kv/txn", body, idempotent=False)

    # -- reads -------------------------------------------------------------------------------

    async def current_revision(self) -> int:
        return _revision(await self._range({"key": ALL_KEYS, "count_only": True, "limit": 1}))

    async def _readable(self, revision: int) -> bool:
        try:
            await self._gw.call(
                "/v3/kv/range", {"key": ALL_KEYS, "count_only": True, "revision": str(revision)},
                idempotent=True,
            )
        except EtcdRequestError as err:
            if err.compacted:
                return False
            raise
        return True

    async def compacted_revision(self) -> int:
        current = await self.current_revision()
        lo, hi = max(self._compacted_floor, 1), current  # the answer is in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            if await self._readable(mid):
                hi = mid
            else:
                lo = mid + 1
        self._compacted_floor = max(self._compacted_floor, lo)
        return lo if lo > 1 else 0

    async def get(self, key: str) -> KeyValue | None:
        reply = await self._range({"key": b64(key)})
        kvs = reply.get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start_after: str | None = None
    ) -> ListResult:
        key, range_end = prefix_bounds(prefix)
        if start_after is not None and (start_after + "\0").encode() > unb64(key):
            key = b64(start_after + "\0")
        body: Json = {"key": key, "range_end": range_end}
        if limit > 0:
            # etcd adds one to the limit to see whether there is more: int64 must hold it.
            body["limit"] = str(min(limit, MAX_LIMIT))
        if revision > MAX_REVISION:  # etcd's revisions are int64: the gateway could not even parse it
            raise FutureRevisionError(revision, await self.current_revision())
        if revision > 0:
            body["revision"] = str(revision)
        reply = await self._range(body, revision)
        items = [_kv(raw) for raw in reply.get("kvs", [])]
        more = bool(reply.get("more", False))
        remaining = int(reply.get("count", 0)) - len(items) if more else -1
        return ListResult(items, revision if revision > 0 else _revision(reply), more, remaining)

    async def count(self, prefix: str) -> int:
        key, range_end = prefix_bounds(prefix)
        reply = await self._range({"key": key, "range_end": range_end, "count_only": True})
        return int(reply.get("count", 0))

    # -- writes ------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = b64(key)
        reply = await self._txn({
            "compare": [{"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": k, "value": b64(value)}}],
        })
        if not reply.get("succeeded", False):
            raise KeyExistsError(key)
        rev = _revision(reply)
        return KeyValue(key, value, rev, rev)

    def _conflict(self, key: str, expected: int, reply: Json) -> StoreError:
        """The error for a failed CAS txn whose failure branch ranged the key."""
        kvs: list[Any] = reply["responses"][0]["response_range"].get("kvs", [])
        if not kvs:
            return KeyNotFoundError(key)
        return RevisionConflictError(key, expected, int(kvs[0]["mod_revision"]))

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        k = b64(key)
        reply = await self._txn({
            "compare": [_exists(k), _mod_is(k, expected_revision)],
            "success": [{"request_put": {"key": k, "value": b64(value), "prev_kv": True}}],
            "failure": [{"request_range": {"key": k}}],
        })
        if not reply.get("succeeded", False):
            raise self._conflict(key, expected_revision, reply)
        prev = _kv(reply["responses"][0]["response_put"]["prev_kv"])
        return KeyValue(key, value, prev.create_revision, _revision(reply))

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        k = b64(key)
        if expected_revision is None:
            reply = await self._gw.call(
                "/v3/kv/deleterange", {"key": k, "prev_kv": True}, idempotent=False
            )
            prev_kvs = reply.get("prev_kvs", [])
        else:
            reply = await self._txn({
                "compare": [_exists(k), _mod_is(k, expected_revision)],
                "success": [{"request_delete_range": {"key": k, "prev_kv": True}}],
                "failure": [{"request_range": {"key": k}}],
            })
            if not reply.get("succeeded", False):
                raise self._conflict(key, expected_revision, reply)
            prev_kvs = reply["responses"][0]["response_delete_range"].get("prev_kvs", [])
        if not prev_kvs:
            raise KeyNotFoundError(key)
        prev = _kv(prev_kvs[0])
        return KeyValue(key, prev.value, prev.create_revision, _revision(reply))

    async def compact(self, revision: int) -> None:
        try:
            await self._gw.call(
                "/v3/kv/compaction", {"revision": str(revision), "physical": True}, idempotent=True
            )
        except EtcdRequestError as err:
            if err.compacted:
                return  # already compacted at or past ``revision``
            raise await self._revision_error(err, revision) from err
        self._compacted_floor = max(self._compacted_floor, revision)

    # -- watch -------------------------------------------------------------------------------

    async def check_revision(self, prefix: str, revision: int) -> None:
        """Raise :class:`CompactedError`/:class:`FutureRevisionError` unless ``revision`` is readable."""
        if revision > MAX_REVISION:
            raise FutureRevisionError(revision, await self.current_revision())
        key, range_end = prefix_bounds(prefix)
        await self._range(
            {"key": key, "range_end": range_end, "count_only": True, "revision": str(revision)}, revision
        )

    def watch(self, prefix: str, revision: int) -> AsyncGenerator[Event, None]:
        return etcd_watch.watch(self._gw, self.check_revision, prefix, revision)


if TYPE_CHECKING:
    _check: Store = EtcdStore([])
