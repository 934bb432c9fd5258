"""RocksOptions validation and the one shared MemoryBudget."""

from __future__ import annotations

from pathlib import Path

import pytest

from state.errors import StateError
from state.options import (
    DEFAULT_BUDGET_BYTES,
    MIB,
    MIN_BUDGET_BYTES,
    MemoryBudget,
    RocksOptions,
)
from state.store import RocksStore


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total_bytes": 0}, "total_bytes must be a positive integer"),
        ({"write_buffer_bytes": 256 * MIB}, "must be less than total_bytes"),
        ({"memtable_bytes": 129 * MIB}, "must not exceed write_buffer_bytes"),
        ({"bloom_bits_per_key": 99}, "bloom_bits_per_key"),
        ({"compression": "gzip"}, "compression must be one of"),
        ({"max_open_files": 0}, "max_open_files"),
        ({"block_size_bytes": True}, "block_size_bytes"),
    ],
)
def test_invalid_options_say_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(StateError, match=message):
        RocksOptions(**changes)  # type: ignore[arg-type]


def test_defaults_fit_a_laptop() -> None:
    o = RocksOptions()
    assert o.total_bytes == 256 * MIB
    assert o.block_cache_bytes == o.total_bytes > o.write_buffer_bytes


def test_shared_budget_is_one_per_process_and_charged_by_every_store(tmp_path: Path) -> None:
    assert MemoryBudget.shared() is MemoryBudget.shared()
    budget = MemoryBudget(
        RocksOptions(total_bytes=16 * MIB, write_buffer_bytes=4 * MIB, memtable_bytes=1 * MIB)
    )
    stores = [RocksStore(tmp_path / f"s{i}", budget) for i in range(3)]
    before = budget.cache_usage_bytes()
    for s in stores:
        assert s.budget is budget
        s._db.put(b"Mpad", b"x" * 200_000)  # memtable memory is charged to the shared cache
    assert budget.cache_usage_bytes() > before
    assert budget.write_buffer_manager.get_usage() > 0
    for s in stores:
        s.close()


def test_for_budget_of_the_default_is_the_default() -> None:
    assert RocksOptions.for_budget(DEFAULT_BUDGET_BYTES) == RocksOptions()


@pytest.mark.parametrize(
    ("total", "write_buffer", "memtable"),
    [
        (MIN_BUDGET_BYTES, 16 * MIB, 16 * MIB),  # the memtable cap: all of the memtable half
        (64 * MIB, 32 * MIB, 16 * MIB),
        (1024 * MIB, 512 * MIB, 16 * MIB),
        (100 * MIB + 1, 50 * MIB, 16 * MIB),
    ],
)
def test_for_budget_gives_memtables_half(total: int, write_buffer: int, memtable: int) -> None:
    o = RocksOptions.for_budget(total)
    assert (o.total_bytes, o.write_buffer_bytes, o.memtable_bytes) == (
        total,
        write_buffer,
        memtable,
    )
    assert o.block_cache_bytes == total
    # Everything but the sizes is the default tuning.
    assert o.compression == RocksOptions().compression
    assert o.max_write_buffers == RocksOptions().max_write_buffers


@pytest.mark.parametrize(
    ("total", "message"),
    [
        (MIN_BUDGET_BYTES - 1, r"33554431 bytes is below the minimum of 33554432 bytes \(32 MiB\)"),
        (0, "below the minimum"),
        (True, "must be an integer number of bytes, got True"),
    ],
)
def test_for_budget_refuses_too_little(total: int, message: str) -> None:
    with pytest.raises(StateError, match=message):
        RocksOptions.for_budget(total)


def test_shared_budget_takes_the_runs_options_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MemoryBudget, "_shared", None)  # as in a fresh worker process
    options = RocksOptions.for_budget(64 * MIB)
    budget = MemoryBudget.shared(options)
    assert budget.options == options
    # Existing callers (no options) and the same options again get the same budget.
    assert MemoryBudget.shared() is budget
    assert MemoryBudget.shared(RocksOptions.for_budget(64 * MIB)) is budget
    # RocksDB itself reports the capacity of the cache a store was opened with.
    store = RocksStore(tmp_path / "s", MemoryBudget.shared())
    try:
        assert store.rocksdb_properties()["rocksdb.block-cache-capacity"] == 64 * MIB
    finally:
        store.close()
    # Other options make a new budget the process's (a later flow in the same process).
    bigger = MemoryBudget.shared(RocksOptions.for_budget(128 * MIB))
    assert bigger is not budget
    assert MemoryBudget.shared() is bigger
    assert bigger.options.total_bytes == 128 * MIB


def test_shared_budget_defaults_to_the_default_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryBudget, "_shared", None)
    assert MemoryBudget.shared().options == RocksOptions()
