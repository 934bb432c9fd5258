"""RocksOptions validation and the one shared MemoryBudget."""

from __future__ import annotations

from pathlib import Path

import pytest

from state.errors import StateError
from state.options import MIB, MemoryBudget, RocksOptions
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
