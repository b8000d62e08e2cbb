"""The SQLite log: synchronous SQL for :mod:`shoal.store.sqlite` (the kine design).

Every write appends one row to the table ``kv``; nothing is updated in place.  The row's
``id`` (INTEGER PRIMARY KEY AUTOINCREMENT) is the global revision, so revisions strictly
increase and are never reused, even after compaction removes rows (``sqlite_sequence`` keeps
the highest id ever handed out, which is the current revision).

Row shape: ``name`` (the key), ``created`` (1 when the row creates the key), ``deleted``
(1 for a tombstone), ``create_revision``, ``prev_revision`` (the id of the row this one
supersedes, 0 for a key's first row), ``value`` (for a tombstone: the last value) and
``old_value`` (the value before this write, NULL for a create).

Invariants
----------
* The state of a key at revision R is its row with the highest ``id <= R``; the key is
  absent when there is none or that row is a tombstone.  An index on ``(name, id, deleted)``
  makes "latest row per key" an index range scan and counting a covering-index scan.
* ``UNIQUE(name, prev_revision)``: two writes that both read the same latest row cannot both
  append, so a stale compare-and-swap fails even if the checks above it were raced.
* The meta row ``compacted`` holds the compacted revision C.  ``compact(R)`` records R first,
  then deletes the rows with ``id < R`` that are superseded by a row with ``id <= R``, and the
  tombstones with ``id < R``; the state at every revision >= R and every row with ``id >= R``
  survive.  Reads below C raise :class:`CompactedError`.

All functions take the connection of the one worker thread that owns it; they are not
thread-safe and never touch the event loop.  Each public function is one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from shoal.store.interface import (
    MAX_LIMIT,
    CompactedError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionConflictError,
)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB,
    UNIQUE (name, prev_revision)
);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id, deleted);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0);
"""

#: Rows deleted per compaction transaction, so that writes interleave with a long compaction.
COMPACT_BATCH: Final = 5000

_Row = tuple[int, str, int, int, int, int, bytes, bytes | None]
_COLUMNS: Final = "id, name, created, deleted, create_revision, prev_revision, value, old_value"


def connect(path: str, *, shared_memory: bool = True) -> sqlite3.Connection:
    """Open the database file in WAL mode and create the schema.

    ``shared_memory=False`` takes SQLite's EXCLUSIVE locking mode before the first access, so
    the WAL index lives in this connection's heap and no ``-shm`` file is created or grown:
    an existing database then opens on a full disk.  No other connection can read the file
    while this one is open.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if not shared_memory:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"{path}: cannot switch to WAL journal mode (got {mode!r})")
        # WAL + NORMAL: a commit is written to the WAL file before it returns, so it survives a
        # crash (kill -9) of this process; only an OS crash or power loss can lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(SCHEMA)
    except BaseException:
        conn.close()  # a half-opened connection would keep its locks
        raise
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    """A second connection for point reads on the event loop's thread (the file exists, in WAL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA query_only=ON")
    conn.execute("PRAGMA busy_timeout=0")  # never wait on the loop: the caller retries elsewhere
    return conn


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1 if not 0xD7FF <= last < 0xE000 else 0xE000
            return "".join(chars) + chr(nxt)
    return None


def _range(prefix: str) -> tuple[str, str]:
    """SQL bounds ``name >= lo AND name < hi`` for a prefix (hi is a sentinel when unbounded)."""
    end = prefix_end(prefix)
    return prefix, end if end is not None else chr(0x10FFFF) * 2


def current_revision(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
    return int(row[0]) if row else 0


def compacted_revision(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()[0])


def revisions(conn: sqlite3.Connection) -> tuple[int, int]:
    """(current, compacted), read in one transaction."""
    with _read(conn):
        return current_revision(conn), compacted_revision(conn)


def _check_readable(conn: sqlite3.Connection, revision: int) -> int:
    """The revision to read at (``revision``, or the current one for 0); raises if unreadable."""
    current = current_revision(conn)
    if revision == 0:
        return current
    if revision > current:  # also every revision beyond int64, which SQL could not bind
        raise FutureRevisionError(revision, current)
    compacted = compacted_revision(conn)
    if revision < compacted:
        raise CompactedError(revision, compacted)
    return revision


class _read:
    """A read transaction: every statement inside sees one snapshot."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN")

    def __exit__(self, *exc: object) -> None:
        self._conn.execute("COMMIT")


def _latest(conn: sqlite3.Connection, key: str) -> _Row | None:
    row: _Row | None = conn.execute(
        f"SELECT {_COLUMNS} FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1", (key,)
    ).fetchone()
    return row


def get(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = _latest(conn, key)
    if row is None or row[3]:
        return None
    return KeyValue(key, row[6], row[4], row[0])


# The latest row per key in [lo, hi) at revision :rev, tombstones dropped, ordered by key.
# It walks the (name, id, deleted) index in key order and keeps a row only when it is its
# key's highest id <= :rev (a covering-index probe), so "LIMIT n" stops after n keys and a
# count never reads values.  {after} is empty or "AND name > :after" for paging.
_LATEST_WHERE: Final = """
FROM kv AS k
WHERE name >= :lo AND name < :hi {after} AND id <= :rev
  AND id = (SELECT MAX(id) FROM kv AS n WHERE n.name = k.name AND n.id <= :rev)
  AND deleted = 0
"""
_LATEST_IN_RANGE: Final = "SELECT name, value, create_revision, id " + _LATEST_WHERE + " ORDER BY name"
_COUNT_IN_RANGE: Final = "SELECT COUNT(*) " + _LATEST_WHERE
_AFTER: Final = "AND name > :after"


def list_range(
    conn: sqlite3.Connection, prefix: str, revision: int, limit: int, start_after: str | None
) -> ListResult:
    lo, hi = _range(prefix)
    params: dict[str, object] = {"lo": lo, "hi": hi, "after": start_after}
    page_sql = _LATEST_IN_RANGE.format(after=_AFTER if start_after is not None else "")
    limit = min(limit, MAX_LIMIT)  # SQLite integers are int64: limit + 1 must stay one
    if limit > 0:
        page_sql += " LIMIT :page"
        params["page"] = limit + 1
    with _read(conn):
        params["rev"] = rev = _check_readable(conn, revision)
        rows = conn.execute(page_sql, params).fetchall()
        more = 0 < limit < len(rows)
        if more:
            rows = rows[:limit]
        items = [KeyValue(r[0], r[1], r[2], r[3]) for r in rows]
        remaining = -1
        if more:
            params["after"] = items[-1].key
            rest_sql = _COUNT_IN_RANGE.format(after=_AFTER)
            remaining = int(conn.execute(rest_sql, params).fetchone()[0])
    return ListResult(items, rev, more, remaining)


def count(conn: sqlite3.Connection, prefix: str) -> int:
    lo, hi = _range(prefix)
    sql = _COUNT_IN_RANGE.format(after="")
    with _read(conn):
        params = {"lo": lo, "hi": hi, "rev": current_revision(conn)}
        return int(conn.execute(sql, params).fetchone()[0])


def _append(
    conn: sqlite3.Connection,
    key: str,
    *,
    created: bool,
    deleted: bool,
    create_revision: int,
    prev_revision: int,
    value: bytes,
    old_value: bytes | None,
) -> int:
    """Insert one row; the caller holds the write transaction.  Returns its revision."""
    rev = current_revision(conn) + 1
    conn.execute(
        f"INSERT INTO kv ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rev, key, int(created), int(deleted), create_revision or rev, prev_revision, value, old_value),
    )
    return rev


class _write:
    """A write transaction (BEGIN IMMEDIATE), rolled back on any exception.

    Inside a transaction the caller already opened (a group commit, see :func:`batch`) it is
    a savepoint instead: a failed write is undone alone, and nothing is durable before the
    caller's COMMIT."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._nested = False

    def __enter__(self) -> None:
        self._nested = self._conn.in_transaction
        self._conn.execute("SAVEPOINT write" if self._nested else "BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if not self._nested:
            self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            return
        if exc_type is not None:
            self._conn.execute("ROLLBACK TO write")
        self._conn.execute("RELEASE write")


class batch:
    """One transaction around several writes (each its own savepoint): a group commit.

    Nothing inside is durable before ``__exit__`` commits; an exception escaping the block
    rolls every write back."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def create(conn: sqlite3.Connection, key: str, value: bytes) -> tuple[KeyValue, Event]:
    with _write(conn):
        latest = _latest(conn, key)
        if latest is not None and not latest[3]:
            raise KeyExistsError(key)
        try:
            rev = _append(
                conn, key, created=True, deleted=False, create_revision=0,
                prev_revision=latest[0] if latest else 0, value=value, old_value=None,
            )
        except sqlite3.IntegrityError as err:
            raise KeyExistsError(key) from err
    return KeyValue(key, value, rev, rev), Event(EventType.ADDED, key, value, rev)


def _live(conn: sqlite3.Connection, key: str, expected: int | None) -> _Row:
    latest = _latest(conn, key)
    if latest is None or latest[3]:
        raise KeyNotFoundError(key)
    if expected is not None and latest[0] != expected:
        raise RevisionConflictError(key, expected, latest[0])
    return latest


def update(conn: sqlite3.Connection, key: str, value: bytes, expected: int) -> tuple[KeyValue, Event]:
    with _write(conn):
        latest = _live(conn, key, expected)
        try:
            rev = _append(
                conn, key, created=False, deleted=False, create_revision=latest[4],
                prev_revision=latest[0], value=value, old_value=latest[6],
            )
        except sqlite3.IntegrityError as err:
            raise RevisionConflictError(key, expected, latest[0]) from err
    kv = KeyValue(key, value, latest[4], rev)
    return kv, Event(EventType.MODIFIED, key, value, rev, latest[6])


def delete(conn: sqlite3.Connection, key: str, expected: int | None) -> tuple[KeyValue, Event]:
    with _write(conn):
        latest = _live(conn, key, expected)
        try:
            rev = _append(
                conn, key, created=False, deleted=True, create_revision=latest[4],
                prev_revision=latest[0], value=latest[6], old_value=latest[6],
            )
        except sqlite3.IntegrityError as err:
            raise RevisionConflictError(key, expected or latest[0], latest[0]) from err
    kv = KeyValue(key, latest[6], latest[4], rev)
    return kv, Event(EventType.DELETED, key, latest[6], rev, latest[6])


def _event(row: _Row) -> Event:
    rev, key, created, deleted, _, _, value, old_value = row
    if created:
        return Event(EventType.ADDED, key, value, rev)
    if deleted:
        return Event(EventType.DELETED, key, value, rev, old_value)
    return Event(EventType.MODIFIED, key, value, rev, old_value)


def history(
    conn: sqlite3.Connection, prefix: str, after: int, upto: int, page: int
) -> Sequence[Event]:
    """Events under ``prefix`` with ``after < revision <= upto``, oldest first, at most ``page``."""
    lo, hi = _range(prefix)
    with _read(conn):
        compacted = compacted_revision(conn)
        if after < compacted:
            raise CompactedError(after, compacted)
        rows: list[_Row] = conn.execute(
            f"SELECT {_COLUMNS} FROM kv WHERE id > ? AND id <= ? AND name >= ? AND name < ?"
            " ORDER BY id LIMIT ?",
            (after, upto, lo, hi, page),
        ).fetchall()
    return [_event(r) for r in rows]


def start_compaction(conn: sqlite3.Connection, revision: int) -> int:
    """Record ``revision`` as compacted; returns the old compacted revision (no-op if >=)."""
    with _write(conn):
        current = current_revision(conn)
        if revision > current:
            raise FutureRevisionError(revision, current)
        old = compacted_revision(conn)
        if revision > old:
            conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))
    return old


def compact_batch(conn: sqlite3.Connection, revision: int, lo: int, hi: int) -> int:
    """Delete the rows with ``lo <= id < hi`` (hi <= revision) that ``compact`` removes."""
    with _write(conn):
        cur = conn.execute(
            """
            DELETE FROM kv WHERE id >= :lo AND id < :hi AND (
                deleted = 1 OR EXISTS (
                    SELECT 1 FROM kv AS newer
                    WHERE newer.name = kv.name AND newer.id > kv.id AND newer.id <= :rev
                )
            )
            """,
            {"lo": lo, "hi": hi, "rev": revision},
        )
        return cur.rowcount


def oldest_revision(conn: sqlite3.Connection) -> int:
    """The id of the oldest row left in the log (0 when it is empty)."""
    row = conn.execute("SELECT MIN(id) FROM kv").fetchone()
    return int(row[0]) if row[0] is not None else 0
