"""Object storage: Kubernetes objects on top of a revisioned :class:`~shoal.store.interface.Store`.

This layer owns the mapping between API objects and store entries:

* keys are ``/registry/<plural>/<namespace>/<name>`` (``/registry/<plural>/<name>`` for
  cluster-scoped kinds);
* values are compact JSON without ``metadata.resourceVersion``; on the way out
  ``resourceVersion`` is set to the entry's ``mod_revision``;
* Secret values are sealed with :class:`~shoal.security.encryption.SecretBox` (AES-256-GCM,
  the storage key bound as associated data), so no secret byte reaches the store in clear;
* an object JSON cannot hold (a number outside 64 bits, as YAML bodies can carry) is a 400
  BadRequest naming the field, as kube-apiserver's decoder refuses such a number;
* store errors become :mod:`shoal.kube.errors` (``KeyExistsError`` -> 409 AlreadyExists,
  ``RevisionConflictError`` -> 409 Conflict, ``CompactedError`` -> 410 Expired).

It does no defaulting, validation or admission: :mod:`shoal.api.writes` does that and calls
``create``/``update``/``remove`` here.

Watch fan-out: a change seen by several watches (on pods: the scheduler, the controllers, each
node's agent, kubectl) is decoded once, and each :class:`WatchEvent` is made once per type and
shared by every watch that sends it, with its encoded line (``WatchEvent.line``), as the
Kubernetes watch cache serializes an event once for all its watchers.  The
:data:`RECENT_EVENTS` most recent changes are kept for that; consumers treat
``WatchEvent.object`` as read-only.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from shoal.kube import errors
from shoal.kube.objects import Obj
from shoal.resources.registry import ResourceKind
from shoal.security.encryption import SecretBox
from shoal.store.interface import (
    CompactedError,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    Store,
    StoreUnavailableError,
    WatchExpiredError,
)

Filter = Callable[[Obj], bool]


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[Obj]
    resource_version: str
    continue_token: str
    remaining: int | None


@dataclass(slots=True)
class WatchEvent:
    """One event of a watch: possibly shared by several watches, so ``object`` is read-only;
    ``line`` is its JSON watch line once a watch encoded it."""

    type: str
    object: Obj
    revision: int
    line: bytes | None = field(default=None, compare=False, repr=False)


#: How many recent changes keep their decoded object and events for other watches.
RECENT_EVENTS = 512
_K = TypeVar("_K")
_V = TypeVar("_V")


class _RecentEvents:
    """Decoded objects and WatchEvents of the last :data:`RECENT_EVENTS` changes, by store key
    and revision (see the module docstring); ``decode(kind, key, value, revision)`` decodes."""

    def __init__(self, decode: Callable[[ResourceKind, str, bytes, int], Obj], size: int = RECENT_EVENTS) -> None:
        self.size = size
        self._decode = decode
        self._objects: OrderedDict[tuple[str, int, bool], Obj] = OrderedDict()
        self._events: OrderedDict[tuple[str, int, str], WatchEvent] = OrderedDict()

    def object(self, kind: ResourceKind, key: str, value: bytes, revision: int, *, prev: bool = False) -> Obj:
        """``value`` decoded (the change's new value, or with ``prev`` its previous one)."""
        found = self._objects.get((key, revision, prev))
        if found is None:
            found = self._remember(self._objects, (key, revision, prev), self._decode(kind, key, value, revision))
        return found

    def event(self, event_type: str, key: str, revision: int, obj: Obj) -> WatchEvent:
        found = self._events.get((key, revision, event_type))
        if found is None:
            found = self._remember(self._events, (key, revision, event_type), WatchEvent(event_type, obj, revision))
        return found

    def _remember(self, cache: OrderedDict[_K, _V], entry: _K, value: _V) -> _V:
        cache[entry] = value
        if len(cache) > self.size:
            cache.popitem(last=False)
        return value


def encode_continue(revision: int, start_after: str) -> str:
    raw = orjson.dumps({"v": "shoal/v1", "rv": revision, "start": start_after})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.bad_request(f"invalid continue token: {exc}") from exc


class ObjectStorage:
    def __init__(self, store: Store, box: SecretBox) -> None:
        self.store = store
        self._recent = _RecentEvents(self._decode)
        self.box = box

    # -- keys and codecs -------------------------------------------------------------------
    @staticmethod
    def key(kind: ResourceKind, namespace: str, name: str) -> str:
        if kind.namespaced:
            return f"/registry/{kind.plural}/{namespace}/{name}"
        return f"/registry/{kind.plural}/{name}"

    @staticmethod
    def prefix(kind: ResourceKind, namespace: str) -> str:
        if kind.namespaced and namespace:
            return f"/registry/{kind.plural}/{namespace}/"
        return f"/registry/{kind.plural}/"

    def _encode(self, kind: ResourceKind, key: str, obj: Obj) -> bytes:
        meta = obj.get("metadata") or {}
        rv = meta.pop("resourceVersion", None)
        try:
            raw = orjson.dumps(obj)
        except orjson.JSONEncodeError as exc:
            raise errors.bad_request(_unencodable(obj, str(exc))) from None
        finally:
            if rv is not None:
                meta["resourceVersion"] = rv
        if kind.plural == "secrets":
            return self.box.encrypt(raw, key.encode())
        return raw

    def _decode(self, kind: ResourceKind, key: str, value: bytes, revision: int) -> Obj:
        if kind.plural == "secrets" and self.box.is_encrypted(value):
            value = self.box.decrypt(value, key.encode())
        obj: Obj = orjson.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
        return obj

    # -- reads -----------------------------------------------------------------------------
    async def get(self, kind: ResourceKind, namespace: str, name: str) -> Obj:
        key = self.key(kind, namespace, name)
        kv = await self._call(self.store.get(key))
        if kv is None:
            raise errors.not_found(kind.plural, kind.group, name)
        return self._decode(kind, key, kv.value, kv.mod_revision)

    async def list(
        self, kind: ResourceKind, namespace: str, *, keep: Filter | None = None,
        limit: int = 0, continue_token: str = "",
    ) -> ListPage:
        prefix = self.prefix(kind, namespace)
        revision, start = 0, None
        if continue_token:
            revision, start = decode_continue(continue_token)
        items: list[Obj] = []
        batch = max(limit, 100) if limit else 0
        while True:
            try:
                page = await self._call(
                    self.store.list(prefix, revision=revision, limit=batch, start_after=start)
                )
            except errors.ApiError as exc:
                if exc.code == 410 and continue_token:
                    raise errors.gone(
                        "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter."
                    ) from exc
                raise
            revision = page.revision
            for kv in page.items:
                obj = self._decode(kind, kv.key, kv.value, kv.mod_revision)
                start = kv.key
                if keep is None or keep(obj):
                    items.append(obj)
                    if limit and len(items) >= limit:
                        break
            if limit and len(items) >= limit:
                more = page.more or (start is not None and start != page.items[-1].key)
                token = encode_continue(revision, start or "") if more else ""
                return ListPage(items, str(revision), token, None)
            if not page.more:
                return ListPage(items, str(revision), "", None)

    async def watch(
        self, kind: ResourceKind, namespace: str, revision: int, keep: Filter | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``revision``; a selector change turns into ADDED/DELETED like Kubernetes."""
        recent = self._recent
        shared = recent.event
        try:
            async for event in self.store.watch(self.prefix(kind, namespace), revision):
                key, rev = event.key, event.revision
                obj = recent.object(kind, key, event.value, rev)
                if keep is None:
                    yield shared(event.type.value, key, rev, obj)
                    continue
                now = keep(obj)
                if event.type is EventType.ADDED:
                    if now:
                        yield shared("ADDED", key, rev, obj)
                    continue
                if event.type is EventType.DELETED:
                    if now:
                        yield shared("DELETED", key, rev, obj)
                    continue
                before = True
                if event.prev_value is not None:
                    before = keep(recent.object(kind, key, event.prev_value, rev, prev=True))
                if now:
                    yield shared("MODIFIED" if before else "ADDED", key, rev, obj)
                elif before:
                    yield shared("DELETED", key, rev, obj)
        except CompactedError as exc:
            raise errors.gone(f"too old resource version: {exc.requested} ({exc.compacted})") from exc
        except WatchExpiredError as exc:
            raise errors.gone(f"watch expired: {exc}") from exc
        except StoreUnavailableError as exc:
            raise errors.service_unavailable(f"storage unavailable: {exc}") from exc

    # -- writes ----------------------------------------------------------------------------
    async def create(self, kind: ResourceKind, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = self.key(kind, meta.get("namespace", ""), meta["name"])
        try:
            kv = await self._call(self.store.create(key, self._encode(kind, key, obj)))
        except KeyExistsError as exc:
            raise errors.already_exists(kind.plural, kind.group, meta["name"]) from exc
        return self._decode(kind, key, kv.value, kv.mod_revision)

    async def update(self, kind: ResourceKind, obj: Obj, expected_revision: int) -> Obj:
        meta = obj["metadata"]
        key = self.key(kind, meta.get("namespace", ""), meta["name"])
        try:
            kv = await self._call(
                self.store.update(key, self._encode(kind, key, obj), expected_revision)
            )
        except RevisionConflictError as exc:
            raise errors.conflict(
                kind.plural, kind.group, meta["name"],
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            ) from exc
        except KeyNotFoundError as exc:
            raise errors.not_found(kind.plural, kind.group, meta["name"]) from exc
        return self._decode(kind, key, kv.value, kv.mod_revision)

    async def remove(self, kind: ResourceKind, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = self.key(kind, meta.get("namespace", ""), meta["name"])
        try:
            kv = await self._call(self.store.delete(key, int(meta["resourceVersion"])))
        except RevisionConflictError as exc:
            raise errors.conflict(kind.plural, kind.group, meta["name"],
                                  "the object has been modified; please retry") from exc
        except KeyNotFoundError as exc:
            raise errors.not_found(kind.plural, kind.group, meta["name"]) from exc
        return self._decode(kind, key, kv.value, kv.mod_revision)

    async def current_revision(self) -> int:
        return int(await self._call(self.store.current_revision()))

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        try:
            return await awaitable
        except CompactedError as exc:
            raise errors.gone(f"too old resource version: {exc.requested} ({exc.compacted})") from exc
        except FutureRevisionError as exc:
            raise errors.ApiError(
                504, "Timeout", f"Too large resource version: {exc.requested}, current: {exc.current}",
                {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                 "retryAfterSeconds": 1},
            ) from exc
        except StoreUnavailableError as exc:
            raise errors.service_unavailable(f"storage unavailable: {exc}") from exc


#: The integers JSON objects may carry here: int64 and uint64, what orjson encodes.
_INT_RANGE = range(-(2**63), 2**64)


def _unencodable(obj: Any, reason: str) -> str:
    """Why ``obj`` cannot be encoded, naming the first field that holds an out-of-range number."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
            return f"{path}: the number {value} is out of range (numbers must fit in 64 bits)"
    return f"the object cannot be encoded as JSON: {reason}"
