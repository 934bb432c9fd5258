"""RocksDB tuning (:class:`RocksOptions`) and the process-wide :class:`MemoryBudget`.

One :class:`MemoryBudget` per process: a single LRU block cache and a write
buffer manager whose memtable memory is charged to that cache, shared by every
shard's DB. Index and filter blocks live in the cache too, so RocksDB's memory
stays within ``total_bytes`` (plus small per-file overheads) however large the
state on disk grows.

The budget is a run parameter (``streamjoin run --state-memory``):
:meth:`RocksOptions.for_budget` derives the options from it, and a worker makes
them its process's budget with ``MemoryBudget.shared(options)`` before it opens
any store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import rocksdict

from state.errors import StateError
from state.layout import PREFIX_BYTES

MIB = 1024 * 1024
#: A process's budget by default (block cache and memtables of all its shards).
#: 512 MiB was not faster on the benchmark.
DEFAULT_BUDGET_BYTES = 256 * MIB
#: One DB's memtable before it is flushed.
DEFAULT_MEMTABLE_BYTES = 16 * MIB
#: The smallest budget :meth:`RocksOptions.for_budget` accepts: the one whose
#: memtable half still holds one default-size memtable (smaller memtables mean
#: more, smaller SST files and more compaction).
MIN_BUDGET_BYTES = 2 * DEFAULT_MEMTABLE_BYTES

_COMPRESSION = {
    "none": rocksdict.DBCompressionType.none(),
    "lz4": rocksdict.DBCompressionType.lz4(),
    "zstd": rocksdict.DBCompressionType.zstd(),
    "snappy": rocksdict.DBCompressionType.snappy(),
}


@dataclass(frozen=True, slots=True)
class RocksOptions:
    """Tuning of every shard's RocksDB; sizes in bytes.

    ``total_bytes`` is the memory budget of the whole process (block cache plus
    memtables); ``write_buffer_bytes`` of it goes to memtables (charged to the
    cache), ``memtable_bytes`` is one DB's memtable before it is flushed.
    """

    total_bytes: int = DEFAULT_BUDGET_BYTES
    write_buffer_bytes: int = DEFAULT_BUDGET_BYTES // 2
    memtable_bytes: int = DEFAULT_MEMTABLE_BYTES
    max_write_buffers: int = 3
    block_size_bytes: int = 16 * 1024
    metadata_block_bytes: int = 4096
    bloom_bits_per_key: int = 10
    target_file_bytes: int = 64 * MIB
    max_background_jobs: int = 2
    max_open_files: int = 1024
    compression: str = "lz4"
    #: Prefix bloom filters over (side, key hash), for seeks of absent keys.
    prefix_bloom: bool = True

    def __post_init__(self) -> None:
        positive = (
            "total_bytes",
            "write_buffer_bytes",
            "memtable_bytes",
            "max_write_buffers",
            "block_size_bytes",
            "metadata_block_bytes",
            "target_file_bytes",
            "max_background_jobs",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                msg = f"RocksOptions.{name} must be a positive integer, got {value!r}"
                raise StateError(msg)
        if self.write_buffer_bytes >= self.total_bytes:
            msg = (
                f"write_buffer_bytes ({self.write_buffer_bytes} bytes) must be less than "
                f"total_bytes ({self.total_bytes} bytes): the rest is the block cache"
            )
            raise StateError(msg)
        if self.memtable_bytes > self.write_buffer_bytes:
            msg = (
                f"memtable_bytes ({self.memtable_bytes} bytes) must not exceed "
                f"write_buffer_bytes ({self.write_buffer_bytes} bytes)"
            )
            raise StateError(msg)
        if not 0 <= self.bloom_bits_per_key <= 40:
            msg = f"bloom_bits_per_key must lie in 0..40, got {self.bloom_bits_per_key}"
            raise StateError(msg)
        if self.max_open_files < -1 or self.max_open_files == 0:
            msg = f"max_open_files must be -1 (unlimited) or > 0, got {self.max_open_files}"
            raise StateError(msg)
        if self.compression not in _COMPRESSION:
            msg = f"compression must be one of {sorted(_COMPRESSION)}, got {self.compression!r}"
            raise StateError(msg)

    @classmethod
    def for_budget(cls, total_bytes: int) -> RocksOptions:
        """The default options scaled to a process budget of ``total_bytes``.

        Half of it goes to memtables (128 of the default 256 MiB), the rest holds
        blocks; one DB's memtable is the default 16 MiB, or all of the memtable
        share when that is smaller. ``for_budget(DEFAULT_BUDGET_BYTES)`` equals
        ``RocksOptions()``.
        """
        if isinstance(total_bytes, bool) or not isinstance(total_bytes, int):
            msg = f"a memory budget must be an integer number of bytes, got {total_bytes!r}"
            raise StateError(msg)
        if total_bytes < MIN_BUDGET_BYTES:
            msg = (
                f"a memory budget of {total_bytes} bytes is below the minimum of "
                f"{MIN_BUDGET_BYTES} bytes ({MIN_BUDGET_BYTES // MIB} MiB)"
            )
            raise StateError(msg)
        write_buffer_bytes = total_bytes // 2
        return cls(
            total_bytes=total_bytes,
            write_buffer_bytes=write_buffer_bytes,
            memtable_bytes=min(DEFAULT_MEMTABLE_BYTES, write_buffer_bytes),
        )

    @property
    def block_cache_bytes(self) -> int:
        """The cache's capacity: the whole budget (memtables are charged to it)."""
        return self.total_bytes


class MemoryBudget:
    """The shared block cache and write buffer manager of one process.

    Create one per process and pass it to every :class:`~state.store.RocksStore`.
    """

    _shared: MemoryBudget | None = None

    @classmethod
    def shared(cls, options: RocksOptions | None = None) -> MemoryBudget:
        """The process's budget, created on first use.

        Without ``options``: the current one (default :class:`RocksOptions` if
        there is none yet). With ``options``: the current one if it has exactly
        these options, else a new one that becomes the process's budget. A
        worker passes its run's options once, before it opens any store; stores
        opened earlier keep the budget they were opened with.
        """
        current = cls._shared
        if current is None or (options is not None and current.options != options):
            current = cls._shared = cls(options)
        return current

    def __init__(self, options: RocksOptions | None = None) -> None:
        self.options = options or RocksOptions()
        self.cache = rocksdict.Cache(self.options.block_cache_bytes)
        self.write_buffer_manager = (
            rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
                self.options.write_buffer_bytes, False, self.cache
            )
        )

    def cache_usage_bytes(self) -> int:
        """Bytes held in the shared cache (blocks and charged memtables)."""
        usage: int = self.cache.get_usage()
        return usage

    def db_options(self) -> rocksdict.Options:
        """Fresh RocksDB options for one shard's DB, bound to this budget."""
        o = self.options
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_write_buffer_manager(self.write_buffer_manager)
        opts.set_write_buffer_size(o.memtable_bytes)
        opts.set_max_write_buffer_number(o.max_write_buffers)
        opts.set_target_file_size_base(o.target_file_bytes)
        opts.set_max_background_jobs(o.max_background_jobs)
        opts.set_max_open_files(o.max_open_files)
        opts.set_compression_type(_COMPRESSION[o.compression])
        opts.set_level_compaction_dynamic_level_bytes(True)
        opts.set_keep_log_file_num(2)
        # Prefix bloom filters over (side, key hash): a scan for a key with no
        # entries (most probes) is answered without reading data blocks.
        if o.prefix_bloom:
            opts.set_prefix_extractor(rocksdict.SliceTransform.create_fixed_prefix(PREFIX_BYTES))
            opts.set_memtable_prefix_bloom_ratio(0.05)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self.cache)
        table.set_block_size(o.block_size_bytes)
        if o.bloom_bits_per_key:
            # Whole-key filters too: multi-get of identities (duplicate checks)
            # mostly misses, and a miss is answered from the filter.
            table.set_bloom_filter(o.bloom_bits_per_key, False)
        # Index and filter blocks are charged to the cache, so their memory is
        # bounded by the budget, not by the state's size. They are partitioned
        # (two-level index, pinned top level): a lookup loads one small filter
        # and index partition. Whole-SST filter blocks of several MiB, evicted
        # by data blocks, were re-read and checksummed on every seek once the
        # state outgrew the cache (insert rate fell 10x at 10-15M entries).
        table.set_cache_index_and_filter_blocks(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_metadata_block_size(o.metadata_block_bytes)
        table.set_pin_top_level_index_and_filter(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_format_version(5)
        opts.set_block_based_table_factory(table)
        return opts


def open_db(path: str | os.PathLike[str], budget: MemoryBudget) -> rocksdict.Rdict:
    """Open (or create) the RocksDB at ``path`` with every column family bound to
    ``budget``.

    rocksdict 0.3.x, reopening an existing DB, builds the options of its column
    families afresh unless they are passed again: the default column family then
    gets RocksDB's own 8 MiB block cache instead of the budget's shared one (and
    none of the table options). So every column family, ``default`` included,
    is passed :meth:`MemoryBudget.db_options` explicitly, fresh or reopened.
    """
    where = Path(path)
    try:
        names = ["default"]
        if (where / "CURRENT").is_file():
            names = list(rocksdict.Rdict.list_cf(str(where), budget.db_options()))
        families = {name: budget.db_options() for name in names}
        return rocksdict.Rdict(str(where), budget.db_options(), column_families=families)
    except Exception as exc:  # rocksdict raises plain Exception for RocksDB errors
        msg = f"cannot open RocksDB state at {where}: {exc}"
        raise StateError(msg) from exc
