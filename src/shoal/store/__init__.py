"""The state store: one :class:`Store` protocol, two backends (SQLite, etcd).

``open_store(datastore, data_dir)`` picks the backend from the ``--datastore`` value:

* ``"sqlite"``: :class:`SqliteStore` on ``data_dir / "state.db"`` (created if missing);
* ``"etcd://HOST:PORT[,HOST:PORT...]"``: :class:`EtcdStore` on those endpoints.

The store is returned unstarted; call ``await store.start()`` before using it.
"""

from __future__ import annotations

from pathlib import Path

from shoal.store.etcd import EtcdStore
from shoal.store.interface import (
    CompactedError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionConflictError,
    Store,
    StoreError,
    StoreUnavailableError,
    WatchExpiredError,
)
from shoal.store.sqlite import SqliteStore

__all__ = [
    "SQLITE_FILE",
    "CompactedError",
    "EtcdStore",
    "Event",
    "EventType",
    "FutureRevisionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "ListResult",
    "RevisionConflictError",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "WatchExpiredError",
    "open_store",
]

#: The SQLite backend's file name inside the data directory.
SQLITE_FILE = "state.db"


def open_store(datastore: str, data_dir: Path) -> Store:
    """The store named by ``datastore`` (``sqlite`` or ``etcd://HOST:PORT[,...]``), unstarted."""
    if datastore == "sqlite":
        return SqliteStore(data_dir / SQLITE_FILE)
    if datastore.startswith("etcd://"):
        endpoints = [e for e in datastore.removeprefix("etcd://").split(",") if e.strip()]
        if not endpoints:
            raise ValueError(f"datastore {datastore!r}: no etcd endpoint")
        return EtcdStore(endpoints)
    raise ValueError(f"unknown datastore {datastore!r} (want 'sqlite' or 'etcd://HOST:PORT[,HOST:PORT...]')")
