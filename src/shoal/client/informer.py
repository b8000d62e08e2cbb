"""Informers: a local cache of one resource type, kept current by list + watch.

An :class:`Informer` lists its resource, then watches from the list's resourceVersion and
applies every event to an in-memory store keyed by ``namespace/name`` (``name`` for
cluster-scoped objects), calling its event handlers after each change.  It is the reflector
and the indexer of client-go in one object.

Contract and invariants:

* **Eventually consistent.**  The cache lags the server.  Handlers see every change the
  watch delivers, in order per object; after a relist they see the difference between the old
  cache and the new list (an object deleted while the watch was down is reported once, through
  ``on_delete`` with its last cached state).  Handlers must be quick and must not block: they
  should only compute keys and put them on a work queue.  A handler that raises is logged
  with its traceback and the informer carries on.
* **Read-only objects.**  :meth:`Informer.get`, :meth:`Informer.list` and
  :meth:`Informer.by_index` return the cached dicts themselves, without copying.  Never mutate
  them: ``copy.deepcopy`` first.  The informer never mutates a cached dict either; a change
  replaces it, so a reference a reader holds stays a consistent snapshot.
* **Relist** on 410 Gone (the watch version was compacted) and after any error (with an
  exponential backoff from 0.5 s to 30 s).  When the server ends a watch normally the
  informer re-watches from the last resourceVersion it saw, as client-go's reflector does.
  Watches ask for bookmarks and a ``timeoutSeconds`` between 5 and 10 minutes.
* :attr:`Informer.has_synced` is true once the first list has been applied; before it,
  the cache must not be taken as the truth (a missing object may simply not be listed yet).
* Handlers added after the first list get a replayed ``on_add`` for every cached object.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass

from shoal.client.errors import GoneError
from shoal.client.resources import ResourceRef
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj

__all__ = ["EventHandler", "Informer", "InformerFactory", "object_key", "split_key", "wait_for_sync"]

log = logging.getLogger(__name__)

IndexFunc = Callable[[Obj], Iterable[str]]
Sleep = Callable[[float], Awaitable[None]]
_Objs = list[Obj]
_Keys = list[str]


def object_key(obj: Obj) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object (client-go's MetaNamespaceKey)."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name", "")
    return f"{namespace}/{name}" if namespace else str(name)


def split_key(key: str) -> tuple[str | None, str]:
    """The inverse of :func:`object_key`: ``(namespace or None, name)``."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, namespace)


@dataclass(frozen=True, slots=True)
class EventHandler:
    """Callbacks for one consumer.  Objects passed in are read-only cache entries."""

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class Informer:
    """The cache of one resource type (optionally one namespace or selector)."""

    def __init__(self, client: ApiClient, ref: ResourceRef, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 sleep: Sleep = asyncio.sleep, page_size: int = 500) -> None:
        self.client = client
        self.ref = ref
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._sleep = sleep
        self._page_size = page_size
        self._items: dict[str, Obj] = {}
        self._handlers: list[EventHandler] = []
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._synced = asyncio.Event()
        #: The resourceVersion the cache reflects (of the last list, event or bookmark).
        self.resource_version = ""

    # -- reading -------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def get(self, key: str) -> Obj | None:
        """The cached object for ``namespace/name`` (read-only), or ``None``."""
        return self._items.get(key)

    def list(self, namespace: str | None = None) -> _Objs:
        """Every cached object (read-only), or those of one namespace."""
        if namespace is None:
            return [*self._items.values()]
        prefix = f"{namespace}/"
        return [obj for key, obj in self._items.items() if key.startswith(prefix)]

    def keys(self) -> _Keys:
        return [*self._items]

    def by_index(self, index: str, value: str) -> _Objs:
        """Cached objects whose ``index`` function returned ``value`` (read-only)."""
        keys = self._indices[index].get(value, ())
        return [self._items[key] for key in keys]

    # -- configuring ---------------------------------------------------------------------

    def add_event_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in self.list():
                self._call(handler.on_add, obj)

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Maintain an index ``name``: ``func(obj)`` gives the values an object is found under.

        Adding the same function under the same name again is a no-op (shared informers)."""
        if name in self._indexers:
            if self._indexers[name] is func:
                return  # shared informer: another controller asked for the same index
            raise ValueError(f"informer {self.ref.resource}: index {name!r} already exists")
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                self._indices[name].setdefault(value, set()).add(key)

    # -- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch until ``stop`` is set.  Only a bug in this class makes it raise."""
        worker = asyncio.ensure_future(self._list_and_watch())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((worker, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            worker.cancel()
            stopper.cancel()
            await asyncio.wait((worker, stopper))
        error = None if worker.cancelled() else worker.exception()
        if error is not None:
            raise error

    async def _list_and_watch(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._relist()
                backoff = 0.5
                while True:
                    await self._watch()
            except GoneError as exc:
                log.info("informer %s: watch expired (%s), relisting", self.ref.resource, exc)
            except Exception:
                log.exception("informer %s: list/watch failed; retrying in %.1fs",
                              self.ref.resource, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _relist(self) -> None:
        answer = await self.client.list(self.ref, self.namespace, label_selector=self.label_selector,
                                        field_selector=self.field_selector, limit=self._page_size)
        fresh = {object_key(obj): obj for obj in answer.get("items") or [] if isinstance(obj, dict)}
        for key in [key for key in self._items if key not in fresh]:
            self._apply_delete(key, self._items[key])
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is None or _rv(old) != _rv(obj):
                self._apply_upsert(key, obj)
        self.resource_version = str((answer.get("metadata") or {}).get("resourceVersion", ""))
        self._synced.set()

    async def _watch(self) -> None:
        seen = 0
        stream = self.client.watch(self.ref, self.namespace, resource_version=self.resource_version,
                                   label_selector=self.label_selector, field_selector=self.field_selector,
                                   timeout_seconds=random.randint(300, 600))
        async with aclosing(stream) as events:
            async for event in events:
                seen += 1
                version = _rv(event.object)
                if event.type == "BOOKMARK":
                    pass
                elif event.type == "DELETED":
                    self._apply_delete(object_key(event.object), event.object)
                else:
                    self._apply_upsert(object_key(event.object), event.object)
                if version:
                    self.resource_version = version
        if not seen:
            # Ended with nothing at all: do not spin if the server closes streams at once.
            await self._sleep(1.0)

    # -- the store -----------------------------------------------------------------------

    def _apply_upsert(self, key: str, obj: Obj) -> None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        for handler in self._handlers:
            if old is None and handler.on_add is not None:
                self._call(handler.on_add, obj)
            elif old is not None and handler.on_update is not None:
                self._call(handler.on_update, old, obj)

    def _apply_delete(self, key: str, obj: Obj) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        self._unindex(key, old)
        for handler in self._handlers:
            if handler.on_delete is not None:
                self._call(handler.on_delete, obj)

    def _index(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            for value in func(obj):
                self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _call(self, func: Callable[..., None], *args: Obj) -> None:
        try:
            func(*args)
        except Exception:
            log.exception("informer %s: event handler %r failed", self.ref.resource, func)


class InformerFactory:
    """Shares one informer per (resource, namespace) among controllers, and runs them all."""

    def __init__(self, client: ApiClient, *, sleep: Sleep = asyncio.sleep) -> None:
        self.client = client
        self._sleep = sleep
        self._informers: dict[tuple[ResourceRef, str | None], Informer] = {}
        self._started: set[tuple[ResourceRef, str | None]] = set()
        self._group: asyncio.TaskGroup | None = None
        self._stop: asyncio.Event | None = None

    def informer(self, ref: ResourceRef, namespace: str | None = None) -> Informer:
        key = (ref, namespace)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, ref, namespace=namespace, sleep=self._sleep)
            self._informers[key] = informer
            if self._group is not None and self._stop is not None:
                self._start(key)
        return informer

    async def run(self, stop: asyncio.Event) -> None:
        """Run every informer (including ones requested later) until ``stop`` is set."""
        async with asyncio.TaskGroup() as group:
            self._group, self._stop = group, stop
            try:
                for key in list(self._informers):
                    self._start(key)
                await stop.wait()
            finally:
                self._group = self._stop = None

    def _start(self, key: tuple[ResourceRef, str | None]) -> None:
        assert self._group is not None and self._stop is not None
        if key not in self._started:
            self._started.add(key)
            self._group.create_task(self._informers[key].run(self._stop),
                                    name=f"informer-{key[0].resource}")


async def wait_for_sync(informers: Iterable[Informer], stop: asyncio.Event) -> bool:
    """Wait until every informer has synced (True) or ``stop`` is set first (False)."""
    informers = [*informers]
    pending = [informer for informer in informers if not informer.has_synced]
    if not pending:
        return True
    # Plain tasks, no gather: a gather cancelled mid-way ends with an unretrieved CancelledError.
    waiters = {asyncio.ensure_future(informer.wait_synced()) for informer in pending}
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while waiters and not stopper.done():
            done, _ = await asyncio.wait({*waiters, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiters -= done
    finally:
        for future in (*waiters, stopper):
            future.cancel()
        await asyncio.wait({*waiters, stopper})
    return all(informer.has_synced for informer in informers)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))
