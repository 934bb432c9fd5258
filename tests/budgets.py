"""A small RocksDB memory budget for tests: stores that flush and compact early."""

from __future__ import annotations

from state.options import MIB, MemoryBudget, RocksOptions


def small_budget(total_mib: int = 16) -> MemoryBudget:
    """A budget of ``total_mib`` MiB: a quarter for memtables, an eighth per memtable."""
    total = total_mib * MIB
    return MemoryBudget(
        RocksOptions(total_bytes=total, write_buffer_bytes=total // 4, memtable_bytes=total // 8)
    )
