"""The stores every join property runs against, by name: the in-memory
reference store and the RocksDB store (a fresh DB in a temporary directory).
Tests hand each store to :func:`dispose` when done with it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable

from joins import JoinStore, MemoryStore
from state.store import RocksStore


def rocks_store() -> JoinStore:
    return RocksStore(tempfile.mkdtemp(prefix="sj-prop-"))


def dispose(store: JoinStore) -> None:
    """Close a RocksDB store and delete its directory; nothing for memory."""
    if isinstance(store, RocksStore):
        store.close()
        shutil.rmtree(store.path, ignore_errors=True)


STORES: dict[str, Callable[[], JoinStore]] = {"memory": MemoryStore, "rocksdb": rocks_store}
