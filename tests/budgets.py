"""A small RocksDB memory budget for tests: stores that flush and compact early."""

from __future__ import annotations

import rocksdict

from state.options import MIB, MemoryBudget, RocksOptions


def small_budget(total_mib: int = 16) -> MemoryBudget:
    """A budget of ``total_mib`` MiB: a quarter for memtables, an eighth per memtable."""
    total = total_mib * MIB
    return MemoryBudget(
        RocksOptions(total_bytes=total, write_buffer_bytes=total // 4, memtable_bytes=total // 8)
    )


class _QuietBudget(MemoryBudget):
    def db_options(self) -> rocksdict.Options:
        opts = super().db_options()
        opts.set_disable_auto_compactions(True)
        return opts


def quiet_budget(total_mib: int = 16) -> MemoryBudget:
    """:func:`small_budget` without background compaction: a test that compares a
    checkpoint's files with the live DB's is not raced by a compaction replacing
    the live ones in between."""
    return _QuietBudget(small_budget(total_mib).options)
