"""Every opened store, fresh, reopened or cloned, uses the process's memory budget.

rocksdict 0.3.x, reopening an existing DB, ignores the block cache in the
options it is given and falls back to RocksDB's 8 MiB default: a resumed shard
(a clone of a checkpoint) would lose the budget. Real RocksDB on ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

from joins import Event, content_id
from state.options import MIB, MemoryBudget, RocksOptions
from state.store import RocksStore


def budget() -> MemoryBudget:
    # not the 8 MiB default, so that a fallback to it shows
    return MemoryBudget(
        RocksOptions(total_bytes=48 * MIB, write_buffer_bytes=12 * MIB, memtable_bytes=4 * MIB)
    )


def fill(store: RocksStore, n: int) -> None:
    for i in range(n):
        store.insert(Event("left", f"k{i}", i, content_id(b"%d" % i), {"pad": "x" * 500}), False)
    store.commit()


def assert_uses(store: RocksStore, b: MemoryBudget) -> None:
    props = store.rocksdb_properties()
    assert props["rocksdb.block-cache-capacity"] == b.options.block_cache_bytes == 48 * MIB
    # the same cache object: the DB's usage is the budget's (memtables charged to it)
    assert props["rocksdb.block-cache-usage"] == b.cache_usage_bytes()
    before = b.write_buffer_manager.get_usage()
    fill(store, 2_000)  # about 1 MiB of memtable, charged to the shared manager
    assert b.write_buffer_manager.get_usage() > before + 512 * 1024


def test_fresh_reopened_and_cloned_stores_share_the_budget(tmp_path: Path) -> None:
    b = budget()
    with RocksStore(tmp_path / "db", b) as store:
        assert_uses(store, b)
        ckpt = store.checkpoint(tmp_path / "ckpt")
    with RocksStore(tmp_path / "db", b) as reopened:
        assert_uses(reopened, b)
    with RocksStore.open_clone(ckpt, tmp_path / "clone", b) as clone:
        assert clone.count("left") == 2_000
        assert_uses(clone, b)
