"""The Store protocol: a revisioned key-value store in the shape of etcd v3.

Every backend (``sqlite``, ``etcd``) implements :class:`Store` and passes the shared
conformance suite in ``tests/integration/store``.  The API server is the only user.

Contract and invariants
-----------------------
* Keys are ``str`` (``/registry/<resource>/<namespace>/<name>``); values are opaque ``bytes``.
* There is one global, strictly increasing revision.  Every successful write (create,
  update, delete) gets a new revision; reads never change it.  ``KeyValue.mod_revision`` is
  the revision of the write that produced the value; the API server exposes it as
  ``metadata.resourceVersion``.
* ``create`` fails with :class:`KeyExistsError` when the key is present.
* ``update`` and ``delete`` compare-and-swap on ``expected_revision`` (the key's current
  ``mod_revision``): a mismatch raises :class:`RevisionConflictError`, a missing key
  :class:`KeyNotFoundError`.  ``delete`` with ``expected_revision=None`` is unconditional.
* ``list(prefix, revision=R)`` reads the state as of revision ``R`` (0 = latest).  Results are
  ordered by key.  With ``limit`` the result is cut after that many items and ``more`` is set;
  the next page is requested with ``start_after=<last key of the page>`` and the same
  ``revision`` (the API server encodes both into Kubernetes' ``continue`` token).  Any int is
  a valid ``limit`` (Kubernetes passes any int64 through): ``<= 0`` is no limit, and one beyond
  :data:`MAX_LIMIT` is taken as :data:`MAX_LIMIT` (no backend holds that many keys).  A
  ``revision`` beyond the current one, however large, is a :class:`FutureRevisionError`.
* ``watch(prefix, revision)`` yields every event with ``revision > revision`` on keys under
  ``prefix``, in revision order, with no gaps and no duplicates, then keeps following new
  writes until the consumer stops iterating.  ``DELETED`` events carry the last value.
* After ``compact(R)``, reading or watching at a revision ``< R`` raises
  :class:`CompactedError` (Kubernetes turns it into 410 Gone).  A revision greater than the
  current one raises :class:`FutureRevisionError`.
* A watcher that falls too far behind is ended with :class:`WatchExpiredError`; the client
  re-lists, as client-go's reflector does on 410.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Final, Protocol

#: The largest list ``limit`` a backend is handed (SQLite and etcd count in int64, and both
#: add one to a limit to tell whether there is more); larger limits are cut to it.
MAX_LIMIT: Final = 2**62


class StoreError(Exception):
    """Base class of every store failure."""


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} already exists")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} not found")
        self.key = key


class RevisionConflictError(StoreError):
    """The key's mod_revision is not the expected one (another writer got there first)."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"key {key!r}: expected revision {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    """The requested revision has been compacted away (Kubernetes: 410 Gone)."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"required revision {requested} has been compacted (oldest available: {compacted})"
        )
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"required revision {requested} is a future revision (current: {current})")
        self.requested = requested
        self.current = current


class WatchExpiredError(StoreError):
    """The watcher fell behind and was dropped; re-list and watch again."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached (etcd down, file unreadable)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(enum.Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    key: str
    #: The new value; for DELETED the value the key had before deletion.
    value: bytes
    #: The revision of the write that produced this event.
    revision: int
    #: The value before this write, None for ADDED.
    prev_value: bytes | None = None


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    #: The revision the list was read at.
    revision: int
    #: True when ``limit`` cut the result short.
    more: bool = False
    #: Number of keys after the returned page (only meaningful when ``more``), -1 if unknown.
    remaining: int = -1


class Store(Protocol):
    """A revisioned key-value store; see the module docstring for the contract."""

    async def start(self) -> None:
        """Open connections and create schema; must be called before any other method."""
        ...

    async def close(self) -> None: ...

    async def current_revision(self) -> int: ...

    async def compacted_revision(self) -> int:
        """The oldest revision still readable (0 when nothing was compacted)."""
        ...

    async def get(self, key: str) -> KeyValue | None: ...

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start_after: str | None = None
    ) -> ListResult: ...

    async def count(self, prefix: str) -> int: ...

    async def create(self, key: str, value: bytes) -> KeyValue: ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue: ...

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        """Delete the key; returns the deleted value with ``mod_revision`` = the delete revision."""
        ...

    def watch(self, prefix: str, revision: int) -> AsyncGenerator[Event, None]:
        """Events on keys under ``prefix`` with revision > ``revision`` (0 = from now on)."""
        ...

    async def compact(self, revision: int) -> None: ...
