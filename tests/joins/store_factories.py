"""The stores every join property runs against, by name: the in-memory
reference store and the RocksDB store (a fresh DB in a temporary directory),
each made with a given eviction bucket width. Tests hand each store to
:func:`dispose` when done with it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable

from joins import JoinStore, MemoryStore
from state.store import RocksStore


def memory_store(bucket_ms: int) -> JoinStore:
    return MemoryStore(bucket_ms)


def rocks_store(bucket_ms: int) -> JoinStore:
    return RocksStore(tempfile.mkdtemp(prefix="sj-prop-"), bucket_ms=bucket_ms)


def dispose(store: JoinStore) -> None:
    """Close a RocksDB store and delete its directory; nothing for memory."""
    if isinstance(store, RocksStore):
        store.close()
        shutil.rmtree(store.path, ignore_errors=True)


STORES: dict[str, Callable[[int], JoinStore]] = {"memory": memory_store, "rocksdb": rocks_store}
