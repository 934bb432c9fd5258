"""Metrics read at scrape time: the state of every shard, watermarks and hot keys.

:class:`StateCollector` is a prometheus_client ``Collector``: each scrape asks
every registered shard store for its :meth:`~StateSource.stats` and
:meth:`~StateSource.rocksdb_properties`, so the hot path never pays for sizes.
Stores are duck-typed (:class:`StateSource`; :class:`CountingStore` for stores
that only count entries, such as ``joins.MemoryStore``): ``dataflows`` does not
need to import ``state`` for this.

A scrape runs on the HTTP server's thread, concurrently with the worker threads.
A store whose reads are not safe while a batch is being processed is
registered with the lock its shard holds while processing (``lock=``).

:class:`RuntimeCollector` computes what changes without any event: watermark
lag behind the wall clock, retained events, the hot-key estimate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dataflows.metrics.histogram import BatchHistogram
from dataflows.metrics.hotkeys import HOT_KEY_RANKS, HotKeys
from joins.counters import JoinCounters
from joins.events import SIDES, Side

log = logging.getLogger(__name__)


class StoreStatsLike(Protocol):
    """What ``state.stats.StoreStats`` offers (sizes in bytes, times in epoch ms)."""

    @property
    def entries(self) -> Mapping[Side, int]: ...

    @property
    def oldest_ts_ms(self) -> Mapping[Side, int | None]: ...

    @property
    def disk_bytes(self) -> int: ...

    @property
    def memtable_bytes(self) -> int: ...


@runtime_checkable
class StateSource(Protocol):
    """A shard store that reports its size (``state.store.RocksStore``)."""

    def stats(self) -> StoreStatsLike: ...

    def rocksdb_properties(self) -> Mapping[str, int]: ...


@runtime_checkable
class CountingStore(Protocol):
    """A shard store that only counts its entries (``joins.MemoryStore``)."""

    def count(self, side: Side) -> int: ...


#: RocksDB property -> (metric name, help). The block cache is shared by all
#: shards of a process, so it is exported once per process (see below).
ROCKSDB_PROPERTIES: dict[str, tuple[str, str]] = {
    "rocksdb.estimate-live-data-size": (
        "streamjoin_rocksdb_live_data_bytes",
        "RocksDB's estimate of the live data size of a shard's DB.",
    ),
    "rocksdb.live-sst-files-size": (
        "streamjoin_rocksdb_live_sst_files_bytes",
        "Size of the live SST files of a shard's DB.",
    ),
    "rocksdb.estimate-num-keys": (
        "streamjoin_rocksdb_estimated_keys",
        "RocksDB's estimate of the keys in a shard's DB (entries, index and metadata).",
    ),
    "rocksdb.cur-size-all-mem-tables": (
        "streamjoin_rocksdb_memtables_bytes",
        "Size of the active and immutable memtables of a shard's DB.",
    ),
    "rocksdb.estimate-pending-compaction-bytes": (
        "streamjoin_rocksdb_pending_compaction_bytes",
        "Bytes RocksDB estimates compaction still has to rewrite in a shard's DB.",
    ),
    "rocksdb.actual-delayed-write-rate": (
        "streamjoin_rocksdb_delayed_write_rate_bytes_per_second",
        "Write rate RocksDB throttles a shard's DB to while stalling (0 when not stalled).",
    ),
    "rocksdb.is-write-stopped": (
        "streamjoin_rocksdb_write_stopped",
        "1 while RocksDB stops writes to a shard's DB (write stall), else 0.",
    ),
    "rocksdb.num-running-compactions": (
        "streamjoin_rocksdb_running_compactions",
        "Compactions running in a shard's DB.",
    ),
}
BLOCK_CACHE_PROPERTY = "rocksdb.block-cache-usage"
BLOCK_CACHE_METRIC = "streamjoin_rocksdb_block_cache_usage_bytes"
#: The cache's capacity: the process's whole budget (``--state-memory``).
BLOCK_CACHE_CAPACITY_PROPERTY = "rocksdb.block-cache-capacity"
BLOCK_CACHE_CAPACITY_METRIC = "streamjoin_rocksdb_block_cache_capacity_bytes"


@dataclass(frozen=True, slots=True)
class _Registered:
    store: StateSource | CountingStore
    lock: AbstractContextManager[object] | None


class StateCollector(Collector):
    """Reads every registered shard store at scrape time."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stores: dict[str, _Registered] = {}
        self._errors = 0

    def register(
        self,
        shard: str,
        store: StateSource | CountingStore,
        *,
        lock: AbstractContextManager[object] | None = None,
    ) -> None:
        """Read ``store`` as shard ``shard`` from the next scrape on (replaces an
        earlier store of the same shard, e.g. after a resume)."""
        if not isinstance(store, StateSource | CountingStore):
            msg = (
                f"store of shard {shard!r} ({type(store).__name__}) has neither "
                "stats() and rocksdb_properties() nor count(side)"
            )
            raise TypeError(msg)
        with self._lock:
            self._stores[shard] = _Registered(store, lock)

    def unregister(self, shard: str) -> None:
        """Stop reading shard ``shard`` (call it before closing the store)."""
        with self._lock:
            self._stores.pop(shard, None)

    def _current(self, shard: str) -> _Registered | None:
        with self._lock:
            return self._stores.get(shard)

    @property
    def shards(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._stores))

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        shard_side = ["shard", "side"]
        fams: list[GaugeMetricFamily] = [
            GaugeMetricFamily(
                "streamjoin_state_entries",
                "Events retained in a shard's state, per side.",
                labels=shard_side,
            ),
            GaugeMetricFamily(
                "streamjoin_state_oldest_event_time_seconds",
                "Event time of the oldest event retained per shard and side "
                "(compare with the watermark: if it falls far behind, eviction is stuck).",
                labels=shard_side,
            ),
            GaugeMetricFamily(
                "streamjoin_state_disk_bytes",
                "Bytes of a shard's state on disk (live SST files and write-ahead log).",
                labels=["shard"],
            ),
            GaugeMetricFamily(
                "streamjoin_state_memtable_bytes",
                "Bytes of a shard's state in memtables.",
                labels=["shard"],
            ),
        ]
        fams.extend(
            GaugeMetricFamily(name, doc, labels=["shard"])
            for name, doc in ROCKSDB_PROPERTIES.values()
        )
        fams.append(
            GaugeMetricFamily(
                BLOCK_CACHE_METRIC,
                "Bytes held in the process's shared RocksDB block cache "
                "(blocks and the memtables charged to it).",
            )
        )
        fams.append(
            GaugeMetricFamily(
                BLOCK_CACHE_CAPACITY_METRIC,
                "Capacity of the process's shared RocksDB block cache: its memory budget "
                "(--state-memory), memtables included.",
            )
        )
        return fams

    def collect(self) -> Iterator[Metric]:
        started = self._clock()
        fams = self._families()
        by_name = {f.name: f for f in fams}
        entries, oldest, disk, mem = fams[0], fams[1], fams[2], fams[3]
        cache: int | None = None
        capacity: int | None = None
        with self._lock:
            stores = list(self._stores.items())
        for shard, reg in sorted(stores, key=lambda item: item[0]):
            try:
                if reg.lock is None:
                    read = _read(reg.store)
                else:
                    with reg.lock:
                        # Unregistered (and maybe closed) since this scrape listed it:
                        # a shard unregisters under its lock, then closes its store.
                        if self._current(shard) is not reg:
                            continue
                        read = _read(reg.store)
            except Exception:
                # A store closed or failing under a scrape must not fail the whole
                # scrape: it is counted and logged, and the other shards exported.
                log.exception("reading the state of shard %s for metrics failed", shard)
                with self._lock:
                    self._errors += 1
                continue
            counts, times, sizes, props = read
            for side in SIDES:
                entries.add_metric([shard, side], counts.get(side, 0))
                ts = times.get(side)
                if ts is not None:
                    oldest.add_metric([shard, side], ts / 1000.0)
            if sizes is not None:
                disk.add_metric([shard], sizes[0])
                mem.add_metric([shard], sizes[1])
            for prop, value in props.items():
                if prop == BLOCK_CACHE_PROPERTY:
                    cache = value if cache is None else max(cache, value)
                elif prop == BLOCK_CACHE_CAPACITY_PROPERTY:
                    capacity = value if capacity is None else max(capacity, value)
                elif prop in ROCKSDB_PROPERTIES:
                    by_name[ROCKSDB_PROPERTIES[prop][0]].add_metric([shard], value)
        if cache is not None:
            by_name[BLOCK_CACHE_METRIC].add_metric([], cache)
        if capacity is not None:
            by_name[BLOCK_CACHE_CAPACITY_METRIC].add_metric([], capacity)
        yield from fams
        errors = CounterMetricFamily(
            "streamjoin_state_scrape_errors",
            "Scrapes in which reading a shard's state failed (see the process's log).",
        )
        with self._lock:
            errors.add_metric([], self._errors)
        yield errors
        duration = GaugeMetricFamily(
            "streamjoin_state_scrape_duration_seconds",
            "How long the last scrape took to read every shard's state.",
        )
        duration.add_metric([], self._clock() - started)
        yield duration


_Read = tuple[
    Mapping[Side, int], Mapping[Side, int | None], tuple[int, int] | None, Mapping[str, int]
]


def _read(store: StateSource | CountingStore) -> _Read:
    if isinstance(store, StateSource):
        stats = store.stats()
        props = store.rocksdb_properties()
        return stats.entries, stats.oldest_ts_ms, (stats.disk_bytes, stats.memtable_bytes), props
    return {side: store.count(side) for side in SIDES}, {}, None, {}


class RuntimeSource(Protocol):
    """What :class:`RuntimeCollector` reads (``dataflows.metrics.JoinMetrics``)."""

    @property
    def hot_keys(self) -> Mapping[Side, HotKeys]: ...

    @property
    def emit_lag(self) -> BatchHistogram: ...

    def now_seconds(self) -> float: ...

    def watermarks_ms(self) -> dict[str, int]: ...

    def input_watermarks_ms(self) -> dict[str, int]: ...

    def counters(self) -> JoinCounters: ...


class RuntimeCollector(Collector):
    """Watermarks, lags, retained events, hot keys and emit lag, at scrape time."""

    def __init__(self, metrics: RuntimeSource) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Metric]:
        return [*_empty_families(), self._m.emit_lag.family()]

    def collect(self) -> Iterator[Metric]:
        m = self._m
        now = m.now_seconds()
        shard_wm, join_wm, lag, input_wm, retained, hot, share = _empty_families()
        marks = m.watermarks_ms()
        for shard, wm in sorted(marks.items()):
            shard_wm.add_metric([shard], wm / 1000.0)
        if marks:
            lowest = min(marks.values()) / 1000.0
            join_wm.add_metric([], lowest)
            lag.add_metric([], now - lowest)
        for stream, wm in sorted(m.input_watermarks_ms().items()):
            input_wm.add_metric([stream], wm / 1000.0)
        counters = m.counters()
        for side in SIDES:
            retained.add_metric([side], counters.side(side).retained)
            values, _total = m.hot_keys[side].top(HOT_KEY_RANKS)
            for rank, value in enumerate(values, start=1):
                hot.add_metric([side, str(rank)], value)
            share.add_metric([side], m.hot_keys[side].share(HOT_KEY_RANKS))
        yield from (shard_wm, join_wm, lag, input_wm, retained, hot, share)
        yield m.emit_lag.family()


def _empty_families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "streamjoin_shard_watermark_seconds",
            "Event-time watermark of each shard of this process (epoch seconds).",
            labels=["shard"],
        ),
        GaugeMetricFamily(
            "streamjoin_watermark_seconds",
            "The join's watermark as seen by this process: the minimum over its shards.",
        ),
        GaugeMetricFamily(
            "streamjoin_watermark_lag_seconds",
            "Wall clock minus the join's watermark in this process, at scrape time.",
        ),
        GaugeMetricFamily(
            "streamjoin_input_watermark_seconds",
            "Per input stream, the minimum over this process's open partitions of "
            "newest event time minus the out-of-orderness bound.",
            labels=["stream"],
        ),
        GaugeMetricFamily(
            "streamjoin_retained_events",
            "Events held in the join's state by this process's shards, per side "
            "(from the joiner's counters: stored minus evicted).",
            labels=["side"],
        ),
        GaugeMetricFamily(
            "streamjoin_hot_key_entries",
            "Estimated entries held by the k-th hottest join key of a side (rank 1 "
            "= hottest), from a decayed heavy-hitter summary of this process's input.",
            labels=["side", "rank"],
        ),
        GaugeMetricFamily(
            "streamjoin_hot_key_share",
            f"Estimated share (0..1) of a side's state held by its {HOT_KEY_RANKS} "
            "hottest keys in this process.",
            labels=["side"],
        ),
    )
