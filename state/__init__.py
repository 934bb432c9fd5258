"""RocksDB state of the join: a :class:`joins.store.JoinStore` per shard.

- :mod:`state.layout`: byte layouts of keys (entries, expiry index, meta);
- :mod:`state.codec`: the value codec (flags, schema fingerprint, Avro);
- :mod:`state.options`: :class:`RocksOptions` and the process's :class:`MemoryBudget`;
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
