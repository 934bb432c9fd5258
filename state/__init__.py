"""RocksDB state of the join: a :class:`joins.store.JoinStore` per shard.

- :mod:`state.layout`: byte layouts of keys (entries by event-time bucket,
  matched flags, meta; layout version 2);
- :mod:`state.codec`: the value codec (flags, schema fingerprint, Avro);
- :mod:`state.options`: :class:`RocksOptions`, the process's :class:`MemoryBudget`
  and :func:`~state.options.open_db`;
- :mod:`state.store`: :class:`RocksStore`;
- :mod:`state.snapshot`: checkpoints and clones; :mod:`state.stats`: sizes.
"""

from state.codec import StateCodec, StoredValue
from state.errors import StateDecodeError, StateError
from state.options import MemoryBudget, RocksOptions
from state.stats import StoreStats
from state.store import RocksStore

__all__ = [
    "MemoryBudget",
    "RocksOptions",
    "RocksStore",
    "StateCodec",
    "StateDecodeError",
    "StateError",
    "StoreStats",
    "StoredValue",
]
