"""The SQLite store backend: one database file, an append-only log, in-process watch fan-out.

The SQL (schema, revisions, compaction rules) lives in :mod:`shoal.store.sqlite_log`; this
module adds the asyncio side.  It implements :class:`shoal.store.interface.Store`.

Threading
---------
One connection, owned by one worker thread (a single-thread executor).  Every store call but
``get`` is one job on that thread, so jobs run one at a time in submission order and the event
loop never blocks on SQLite.  Measured on the 2-core dev machine: a create costs ~0.07 ms inline and
~0.2 ms through the thread, a get ~0.01 ms vs ~0.1 ms; but a list of 10,000 keys of 1 KiB
takes ~65 ms, which inline would stall every other request for that long, while through the
thread the loop's longest stall was ~6 ms (the GIL while result objects are built).  The
~0.1 ms hop buys a responsive loop, and a WAL checkpoint or a compaction batch never blocks it.
A point ``get`` (one indexed row) is the exception: it runs inline on a second, read-only
connection (WAL readers never wait for the writer); if that connection is busy, the read goes
through the worker thread.

Group commit
------------
Writes queue up while the worker is busy; the worker then runs every queued write (up to
``GROUP_MAX``) in one transaction, each in its own savepoint, so one write's failure (a
conflict) does not touch the others, and commits once.  A write's caller is answered, and its
event published, only after that COMMIT: durability is unchanged, and under load the commits
and thread hops per write drop.

Full disk
---------
Opening an existing file needs no free space: a normal open maps the ``-shm`` WAL index,
which SQLite must create (or grow) on disk first, and on a full disk that fails
(``SQLITE_IOERR_SHMSIZE``).  ``start`` then opens the file again in EXCLUSIVE locking mode,
where the WAL index lives in memory: reads work, writes fail with ``SQLITE_FULL``
(:class:`StoreUnavailableError`, a 503 in the API) until space returns, then succeed.  In that
mode the inline reader connection cannot share the file, so point reads go through the
worker thread until the next start.

Durability
----------
WAL journal with ``synchronous=NORMAL``: a write is in the WAL file (the OS page cache) when
its call returns, so it survives ``kill -9`` of this process (tested); an OS crash or power
loss may lose the last commits (fsync happens at checkpoints only).

Watch
-----
This process is the only writer of the file (an exclusive ``flock`` on ``<file>.lock``, taken
in ``start``, makes a second process fail with :class:`StoreUnavailableError`), so watchers
are fed in-process.  The worker
thread publishes each committed write with ``call_soon_threadsafe`` right after the commit,
in revision order, even if the awaiting caller was cancelled.  A watcher subscribes first,
then replays log rows with ``revision < id <= snapshot`` in pages, then follows its queue,
dropping events it already replayed, so it sees every event exactly once and in order.
Each watcher has a bounded queue (``watch_queue_size``); when it overflows, the watcher ends
with :class:`WatchExpiredError` and the client re-lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import sqlite3
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Concatenate, ParamSpec, TypeVar

from shoal.store import sqlite_log
from shoal.store.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyValue,
    ListResult,
    StoreError,
    StoreUnavailableError,
    WatchExpiredError,
)

if TYPE_CHECKING:
    from shoal.store.interface import Store

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Log rows read per replay query while a watcher catches up.
REPLAY_PAGE = 500
#: Writes committed together at most.
GROUP_MAX = 128

_WriteFn = Callable[[sqlite3.Connection], tuple[KeyValue, Event]]
_Outcome = tuple[KeyValue, Event] | StoreError


class _Watcher:
    """One subscriber: a prefix, a bounded queue, and the error that ends it (if any)."""

    __slots__ = ("error", "prefix", "queue")

    def __init__(self, prefix: str, size: int) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(size)
        self.error: StoreError | None = None


class SqliteStore:
    """A :class:`Store` on one SQLite file (created if missing)."""

    def __init__(self, path: Path, *, watch_queue_size: int = 1000) -> None:
        self.path = path
        self._queue_size = watch_queue_size
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock: BinaryIO | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: set[_Watcher] = set()
        self._writes: deque[tuple[_WriteFn, asyncio.Future[KeyValue]]] = deque()
        self._committing = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._executor is not None:
            raise StoreError("sqlite store already started")
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shoal-sqlite")
        try:
            shared = await self._loop.run_in_executor(self._executor, self._open)
            if shared:
                self._reader = sqlite_log.connect_reader(str(self.path))
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _open(self) -> bool:
        """Lock and open the file; False when it had to be opened without shared memory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Watchers are fed in-process, so a second writer would go unseen: refuse it.
        lock = open(self.path.with_name(self.path.name + ".lock"), "ab")  # noqa: SIM115
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            lock.close()
            raise StoreUnavailableError(f"{self.path} is in use by another process") from err
        shared = True
        try:
            try:
                self._conn = sqlite_log.connect(str(self.path))
            except sqlite3.OperationalError as err:
                # Typically SQLITE_IOERR_SHMSIZE: no room for the -shm file on a full disk.
                log.warning("cannot open %s with shared memory (%s): opening it in exclusive locking "
                            "mode; point reads go through the store thread until the next start",
                            self.path, err)
                self._conn = sqlite_log.connect(str(self.path), shared_memory=False)
                shared = False
        except sqlite3.Error as err:
            lock.close()
            raise StoreUnavailableError(f"cannot open {self.path}: {err}") from err
        self._lock = lock
        return shared

    async def close(self) -> None:
        executor, loop = self._executor, self._loop
        if executor is None or loop is None:
            return
        self._executor = None
        for w in list(self._watchers):
            self._end(w, StoreUnavailableError("store closed"))
        while self._writes:
            _, future = self._writes.popleft()
            if not future.done():
                future.set_exception(StoreUnavailableError("store closed"))
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await loop.run_in_executor(executor, self._close_conn)
        executor.shutdown(wait=False)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, *args)`` on the worker thread."""
        if self._executor is None or self._loop is None:
            raise StoreUnavailableError("sqlite store is not started")
        return await self._loop.run_in_executor(self._executor, lambda: self._call(fn, *args, **kwargs))

    def _call(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if self._conn is None:
            raise StoreUnavailableError("sqlite store is closed")
        try:
            return fn(self._conn, *args, **kwargs)
        except sqlite3.Error as err:
            raise self._translate(err) from err

    @staticmethod
    def _translate(err: sqlite3.Error) -> StoreError:
        """The store error for a failed statement.  Its text names SQLite, not the file: the API
        server may show it to clients (a full disk is a 503 saying so), and paths stay private."""
        if isinstance(err, sqlite3.OperationalError):
            return StoreUnavailableError(f"sqlite: {err}")
        return StoreError(f"sqlite: {err}")

    async def _write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], tuple[KeyValue, Event]],
        *args: P.args, **kwargs: P.kwargs,
    ) -> KeyValue:
        """Queue a write for the next group commit; it returns once committed, its event published."""
        if self._executor is None or self._loop is None:
            raise StoreUnavailableError("sqlite store is not started")
        future: asyncio.Future[KeyValue] = self._loop.create_future()
        self._writes.append((lambda conn: fn(conn, *args, **kwargs), future))
        self._commit_queued()
        return await future

    def _commit_queued(self) -> None:
        """Hand the queued writes to the worker, unless a group is being committed."""
        if self._committing or not self._writes or self._executor is None or self._loop is None:
            return
        group = [self._writes.popleft() for _ in range(min(GROUP_MAX, len(self._writes)))]
        self._committing = True
        done = self._loop.run_in_executor(self._executor, self._commit_group, [fn for fn, _ in group])
        done.add_done_callback(functools.partial(self._settle, group))

    def _commit_group(self, fns: list[_WriteFn]) -> list[_Outcome]:
        """On the worker thread: every write in one transaction, each in its own savepoint."""
        def one(conn: sqlite3.Connection, fn: _WriteFn) -> _Outcome:
            try:
                return fn(conn)
            except StoreError as err:
                return err
            except sqlite3.Error as err:  # this write's savepoint was rolled back; the others stand
                translated = self._translate(err)
                translated.__cause__ = err
                return translated

        return self._call(lambda conn: _in_batch(conn, [functools.partial(one, conn, fn) for fn in fns]))

    def _settle(self, group: list[tuple[_WriteFn, asyncio.Future[KeyValue]]],
                done: asyncio.Future[list[_Outcome]]) -> None:
        """On the loop, after the COMMIT: publish the events in revision order, answer the callers."""
        self._committing = False
        failure = done.exception() if not done.cancelled() else StoreUnavailableError("store closed")
        outcomes: list[_Outcome] = [] if failure is not None else done.result()
        for index, (_, future) in enumerate(group):
            outcome: _Outcome | BaseException
            if failure is not None:
                outcome = StoreUnavailableError(f"sqlite: group commit failed: {failure}")
                outcome.__cause__ = failure
            else:
                outcome = outcomes[index]
            if not isinstance(outcome, BaseException):
                self._publish(outcome[1])  # even if the caller was cancelled: it is committed
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome[0])
        self._commit_queued()

    def _publish(self, event: Event) -> None:
        for w in list(self._watchers):
            if not event.key.startswith(w.prefix):
                continue
            try:
                w.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._end(w, WatchExpiredError(f"watch on {w.prefix!r} fell behind and was dropped"))

    def _end(self, w: _Watcher, error: StoreError) -> None:
        self._watchers.discard(w)
        if w.error is None:
            w.error = error
        # Wake a consumer blocked on an empty queue; a full queue means it is not blocked and
        # it sees w.error before its next event.
        with contextlib.suppress(asyncio.QueueFull):
            w.queue.put_nowait(None)

    # -- reads -------------------------------------------------------------------------------

    async def current_revision(self) -> int:
        return await self._run(sqlite_log.current_revision)

    async def compacted_revision(self) -> int:
        return await self._run(sqlite_log.compacted_revision)

    async def get(self, key: str) -> KeyValue | None:
        if self._reader is None:  # opened without shared memory (or not started: _run raises)
            return await self._run(sqlite_log.get, key)
        try:
            return sqlite_log.get(self._reader, key)
        except sqlite3.OperationalError:  # busy (e.g. WAL recovery): the worker waits for it
            return await self._run(sqlite_log.get, key)
        except sqlite3.Error as err:
            raise self._translate(err) from err

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start_after: str | None = None
    ) -> ListResult:
        return await self._run(sqlite_log.list_range, prefix, revision, limit, start_after)

    async def count(self, prefix: str) -> int:
        return await self._run(sqlite_log.count, prefix)

    # -- writes ------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write(sqlite_log.create, key, value)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        return await self._write(sqlite_log.update, key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        return await self._write(sqlite_log.delete, key, expected_revision)

    async def compact(self, revision: int) -> None:
        old = await self._run(sqlite_log.start_compaction, revision)
        if revision <= old:
            return
        lo = max(await self._run(sqlite_log.oldest_revision), 1)
        for start in range(lo, revision, sqlite_log.COMPACT_BATCH):
            end = min(start + sqlite_log.COMPACT_BATCH, revision)
            await self._run(sqlite_log.compact_batch, revision, start, end)

    # -- watch -------------------------------------------------------------------------------

    async def watch(self, prefix: str, revision: int) -> AsyncGenerator[Event, None]:
        w = _Watcher(prefix, self._queue_size)
        self._watchers.add(w)  # subscribe before reading the log: no write falls in between
        try:
            current, compacted = await self._run(sqlite_log.revisions)
            if revision > current:
                raise FutureRevisionError(revision, current)
            if 0 < revision < compacted:
                raise CompactedError(revision, compacted)
            last = revision if revision > 0 else current
            while last < current:
                page: Sequence[Event] = await self._run(
                    sqlite_log.history, prefix, last, current, REPLAY_PAGE
                )
                for event in page:
                    if w.error is not None:
                        raise w.error
                    yield event
                    last = event.revision
                if len(page) < REPLAY_PAGE:
                    last = current
            while True:
                if w.error is not None:
                    raise w.error
                queued = await w.queue.get()
                if w.error is not None:
                    raise w.error
                if queued is None or queued.revision <= last:
                    continue
                last = queued.revision
                yield queued
        finally:
            self._watchers.discard(w)


def _in_batch(conn: sqlite3.Connection, writes: list[Callable[[], _Outcome]]) -> list[_Outcome]:
    with sqlite_log.batch(conn):
        return [write() for write in writes]


if TYPE_CHECKING:
    _check: Store = SqliteStore(Path())
