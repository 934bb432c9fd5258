"""The Bytewax dataflow: sources -> shard router -> one joiner per shard -> sinks.

:func:`interval_join` is the operator: it takes a stream of
:class:`~dataflows.sources.SourceBatch` (events and invalid records of one read of
one partition, stamped with the partition's mark) and returns a :class:`JoinOut`
of streams. Steps:

1. ``route``: group each batch's events by shard (a stable hash of the key mod
   ``S``); each group carries the batch's partition mark; a broadcast batch
   (heartbeat, first or closing mark) also sends the mark to every other shard.
2. ``join``: ``stateful_batch`` keyed by shard name, one
   :class:`~dataflows.shard_logic.ShardLogic` per shard.
3. Outputs: joined rows and late events (batches, keyed by shard), invalid
   records (batches, keyed by a shard chosen from their partition, straight
   from the sources: they never reach the joiner) and ``stats`` (final counters
   of shards and sources).

:func:`build_flow` wires it to the sources and sinks of a
:class:`~dataflows.config.RunConfig`: per side files or a Kafka topic (both
kinds in one run are merged into one stream), per output files under ``OUT``
or a Kafka topic. Step ids key recovery state, so a run with files only has
exactly the steps it always had; Kafka adds ``kafka_inputs`` (and
``all_inputs`` when both kinds are read) and ``<kind>_kafka`` sinks, which get
a tick per shard with every heartbeat (``<kind>_ticks``) so that quiet shards
commit their transactions every epoch (:mod:`dataflows.sinks.kafka`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator

from dataflows.config import RunConfig
from dataflows.inputs import Invalid
from dataflows.outputs import OutputKind
from dataflows.recovering import recovering_runtime
from dataflows.shard_logic import (
    JoinedRow,
    ShardInput,
    ShardLogic,
    ShardOutput,
    ShardRuntime,
)
from dataflows.shards import shard_names, shard_of, shards_of_worker
from dataflows.sinks import (
    ExecutionStatsSink,
    RowFileSink,
    StatsSink,
    kafka_sink,
    stats_dir,
    ticks,
)
from dataflows.sources import FileSource, SourceBatch, kafka_source, throttled, wall_ms
from joins import Event, JoinSpec, JoinStore, Late, MemoryStore

if TYPE_CHECKING:
    from dataflows.metrics import JoinMetrics

#: Bytewax keyed streams: ``(shard name, value)``.
KeyedBatches = Stream[tuple[str, Any]]


@dataclass(frozen=True)
class JoinOut:
    """The join's output streams; every item is a batch keyed by shard name."""

    #: ``(shard, list[Matched | Unmatched])``
    joined: KeyedBatches
    #: ``(shard, list[Late])``
    late: KeyedBatches
    #: ``(shard, list[Invalid])``
    invalid: KeyedBatches
    #: Final counters: one dict per shard (``kind == "shard"``) and per source
    #: partition (``kind == "source"``).
    stats: Stream[dict[str, Any]]


class ShardRouter:
    """Groups a batch's events by shard; the key -> shard map is cached."""

    def __init__(self, shards: int) -> None:
        self.names = shard_names(shards)
        self._shards = shards
        self._cache: dict[str, str] = {}

    def shard(self, key: str) -> str:
        name = self._cache.get(key)
        if name is None:
            if len(self._cache) > 2_000_000:
                self._cache.clear()
            name = self._cache[key] = self.names[shard_of(key, self._shards)]
        return name

    def route(self, batch: SourceBatch) -> list[tuple[str, ShardInput]]:
        groups: dict[str, list[Event]] = {}
        cache = self._cache
        for event in batch.events:
            name = cache.get(event.key)
            if name is None:
                name = self.shard(event.key)
            group = groups.get(name)
            if group is None:
                groups[name] = [event]
            else:
                group.append(event)
        marks = [batch.mark]
        out: list[tuple[str, ShardInput]] = [
            (name, (name, events, marks)) for name, events in groups.items()
        ]
        if batch.broadcast:
            out.extend((name, (name, [], marks)) for name in self.names if name not in groups)
        return out

    def invalid(self, batch: SourceBatch) -> tuple[str, list[Invalid]] | None:
        if not batch.invalid:
            return None
        return (self.shard(batch.mark.partition), batch.invalid)


def _source_totals(batch: SourceBatch) -> dict[str, Any] | None:
    return batch.totals


def _joined(out: ShardOutput) -> list[JoinedRow] | None:
    return out.joined or None


def _late(out: ShardOutput) -> list[Late] | None:
    return out.late or None


def _final(item: tuple[str, ShardOutput]) -> dict[str, Any] | None:
    return item[1].final


@operator
def interval_join(
    step_id: str,
    batches: Stream[SourceBatch],
    runtime: ShardRuntime,
    shards: int,
) -> JoinOut:
    """The interval join of the events in ``batches``, sharded ``shards`` ways."""
    router = ShardRouter(shards)
    keyed = op.flat_map("route", batches, router.route)
    outs = op.stateful_batch("join", keyed, lambda resume: ShardLogic(runtime, resume))
    joined = op.filter_map_value("joined", outs, _joined)
    late = op.filter_map_value("late", outs, _late)
    finals = op.filter_map("finals", outs, _final)
    invalid = op.filter_map("invalid", batches, router.invalid)
    totals = op.filter_map("source_totals", batches, _source_totals)
    stats = op.merge("stats", finals, totals)
    return JoinOut(joined=joined, late=late, invalid=invalid, stats=stats)


def memory_runtime(
    spec: JoinSpec,
    partitions: tuple[str, ...],
    clock: Callable[[], int] = wall_ms,
    metrics: JoinMetrics | None = None,
) -> ShardRuntime:
    """Shards over :class:`~joins.MemoryStore` (tests, and runs without RocksDB)."""

    def open_store(shard: str, resume: Any) -> JoinStore:
        return MemoryStore(spec.bucket_ms)

    return ShardRuntime(
        spec=spec, partitions=partitions, clock=clock, open_store=open_store, metrics=metrics
    )


def rocks_runtime(
    spec: JoinSpec,
    partitions: tuple[str, ...],
    state_dir: str,
    clock: Callable[[], int] = wall_ms,
    metrics: JoinMetrics | None = None,
    memory_bytes: int | None = None,
) -> ShardRuntime:
    """Shards over :class:`~state.store.RocksStore`, one DB per shard under
    ``state_dir``, all sharing this process's :class:`~state.options.MemoryBudget`,
    evicted by buckets of ``spec.bucket_ms``.

    ``memory_bytes`` (``--state-memory``) sets that budget first; ``None`` keeps
    the process's current one (256 MiB unless set)."""
    from state.options import MemoryBudget, RocksOptions
    from state.store import RocksStore

    # One budget per process, however many flows: the recovering runtime's
    # MemoryBudget.shared() finds the one set here.
    options = None if memory_bytes is None else RocksOptions.for_budget(memory_bytes)
    budget = MemoryBudget.shared(options)

    def open_store(shard: str, resume: Any) -> JoinStore:
        path = os.path.join(state_dir, shard)
        if resume is None and os.path.exists(path):
            shutil.rmtree(path)
        return RocksStore(path, budget, bucket_ms=spec.bucket_ms)

    def close_store(store: JoinStore) -> None:
        if isinstance(store, RocksStore):
            store.close()

    def size_probe(store: JoinStore) -> int | None:
        if isinstance(store, RocksStore):
            stats = store.stats()
            return int(stats.disk_bytes + stats.memtable_bytes)
        return None

    return ShardRuntime(
        spec=spec,
        partitions=partitions,
        clock=clock,
        open_store=open_store,
        close_store=close_store,
        size_probe=size_probe,
        metrics=metrics,
    )


def local_shards(cfg: RunConfig, process_id: int) -> list[str]:
    """The shards Bytewax runs on the workers of process ``process_id``."""
    first = process_id * cfg.workers_per_process
    names: list[str] = []
    for w in range(first, first + cfg.workers_per_process):
        names.extend(shards_of_worker(cfg.shards, w, cfg.workers))
    return names


def _inputs(
    flow: Dataflow, cfg: RunConfig, metrics: JoinMetrics | None
) -> tuple[Stream[SourceBatch], tuple[str, ...]]:
    """The sources of both sides as one stream, and every source partition the
    joiner waits for (files, then the Kafka topics' partitions)."""
    streams: list[Stream[SourceBatch]] = []
    partitions = cfg.partitions()
    if partitions:
        streams.append(op.input("inputs", flow, throttled(FileSource(cfg), cfg.read_delay_ms)))
    if cfg.kafka_sides:
        on_partition = metrics.kafka.register_source if metrics is not None else None
        source = kafka_source(cfg, on_partition=on_partition)
        partitions += tuple(source.list_parts())
        streams.append(op.input("kafka_inputs", flow, throttled(source, cfg.read_delay_ms)))
    if len(streams) == 1:
        return streams[0], partitions
    return op.merge("all_inputs", *streams), partitions


def build_flow(
    cfg: RunConfig,
    process_id: int = 0,
    *,
    store: str = "rocksdb",
    metrics: JoinMetrics | None = None,
) -> Dataflow:
    """The whole dataflow of a run, as built in process ``process_id``; with
    ``metrics``, the sources and shards of this process feed them."""
    flow = Dataflow("streamjoin")
    batches, partitions = _inputs(flow, cfg, metrics)
    if metrics is not None:
        from dataflows.metrics import source_observer

        batches = op.inspect("input_metrics", batches, source_observer(metrics))
    if store == "rocksdb":
        runtime = rocks_runtime(
            cfg.spec,
            partitions,
            cfg.state_dir,
            metrics=metrics,
            memory_bytes=cfg.state_memory_bytes,
        )
        if cfg.recovery_dir:  # issue #4: restore on resume, snapshots per epoch
            runtime = recovering_runtime(cfg, runtime)
    else:
        runtime = memory_runtime(cfg.spec, partitions, metrics=metrics)
    out = interval_join("interval_join", batches, runtime, cfg.shards)
    names = shard_names(cfg.shards)
    mine = local_shards(cfg, process_id)
    streams: dict[OutputKind, KeyedBatches] = {
        "joined": out.joined,
        "late": out.late,
        "invalid": out.invalid,
    }
    tick = ticks(names)
    for kind, stream in streams.items():
        url = cfg.kafka.output_url(kind)
        if url is None:
            directory = os.path.join(cfg.out_dir, kind)
            sink = RowFileSink(directory, kind, cfg.output_format, names, mine)
            op.output(f"{kind}_files", stream, sink)
            continue
        on_build = metrics.kafka.register_sink if metrics is not None else None
        with_ticks = op.merge(f"{kind}_ticks", stream, op.flat_map(f"{kind}_tick", batches, tick))
        op.output(f"{kind}_kafka", with_ticks,
                  kafka_sink(cfg, kind, url, names, mine, on_build))
    stats = stats_dir(cfg.out_dir)
    stats_sink = ExecutionStatsSink(stats) if cfg.recovery_dir else StatsSink(stats)
    op.output("stats_files", out.stats, stats_sink)
    return flow
