"""The join's Prometheus metrics: one typed bundle, :class:`JoinMetrics`.

Created once per process against an injected registry (tests make their own
``CollectorRegistry()``); the shard logic, the sources and the run call its
``observe_*`` methods with values they already have. Every name starts with
``streamjoin_`` and carries its base unit; labels are bounded (``side``,
``stream``, ``shard``, plus the input ``partition`` - one per file - and a
fixed set of ``reason`` classes); no join key is ever a label.

Counters are exported as deltas of the joiner's own cumulative
:class:`~joins.JoinCounters`, so at the end of a run they equal ``run.json``'s
counters, and the conservation law holds on them::

    streamjoin_join_events_total
      == streamjoin_late_events_total + streamjoin_duplicate_events_total
       + streamjoin_stored_events_total
    streamjoin_stored_events_total - streamjoin_evicted_events_total
      == streamjoin_state_entries          (summed over shards, per side)

Sizes, watermarks, lags and hot keys are computed at scrape time (a collector,
:mod:`dataflows.metrics.collector`), never on the hot path, from what the
bundle recorded: the shards' latest counters and watermarks
(:mod:`dataflows.metrics.progress`) and a sample of their keys
(:mod:`dataflows.metrics.hotkeys`). The metrics and where each is fed from are
listed in ``grafana/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from dataflows.metrics.collector import RuntimeCollector, StateCollector
from dataflows.metrics.histogram import BatchHistogram
from dataflows.metrics.hotkeys import HOT_KEY_RANKS, HotKeys, SampledHotKeys
from dataflows.metrics.kafka import KafkaCollector
from dataflows.metrics.progress import ProcessProgress
from dataflows.metrics.reasons import REASON_CLASSES, reason_class
from dataflows.sources import PartitionRead
from joins import Event, JoinCounters, JoinOutput, JoinSpec, Side
from joins.events import SIDES

#: Lateness and lags: from milliseconds to days (replays of old data lag by
#: days behind the wall clock; +Inf is added).
LAG_BUCKETS_SECONDS: Final = (
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    1800.0, 3600.0, 21600.0, 86400.0, 604800.0,
)  # fmt: skip
#: Emit lags of batches with more rows are estimated from a strided sample
#: (one row in ``hot_key_sample``); the count stays exact.
EMIT_LAG_EXACT_ROWS: Final = 64
#: Batch processing, snapshot and resume durations.
DURATION_BUCKETS_SECONDS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def wall_seconds() -> float:
    """Wall-clock time in epoch seconds."""
    return datetime.now(UTC).timestamp()


class JoinMetrics:
    """Every metric of one process of the join, against ``registry``.

    ``process`` names the process (``streamjoin_process_info``); ``spec`` gives
    the out-of-orderness bound that turns an input's newest event time into its
    watermark, and the retention horizons of the hot-key estimate;
    ``wall_clock`` returns epoch seconds (lags are measured against it).
    ``process_collector`` adds client_python's ``process_*`` metrics (CPU,
    resident memory, open files) to the registry; the hot-key estimate looks at
    one event in ``hot_key_sample`` (1: all).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        process: str = "0",
        spec: JoinSpec | None = None,
        wall_clock: Callable[[], float] = wall_seconds,
        process_collector: bool = True,
        hot_key_sample: int = 8,
    ) -> None:
        self.registry = registry
        self.process = process
        self.spec = spec or JoinSpec()
        self._wall = wall_clock
        #: What the shards and inputs of this process have reached (scrape time).
        self.progress = ProcessProgress(self.spec.max_out_of_orderness_ms)
        r = registry

        # -- inputs (fed by the sources) ----------------------------------------
        self.input_events = Counter(
            "streamjoin_input_events",
            "Valid events read, per input stream and source partition.",
            ["stream", "partition"],
            registry=r,
        )
        self.invalid_events = Counter(
            "streamjoin_invalid_events",
            "Input records that could not become events (dead letters), per reason class.",
            ["stream", "reason"],
            registry=r,
        )
        self.invalid_raw_truncated = Counter(
            "streamjoin_invalid_raw_truncated",
            "Dead letters whose raw bytes were cut (records over 1 MiB): the dead "
            "letter keeps the first bytes and says the full length.",
            ["stream"],
            registry=r,
        )
        # -- the join (fed by the shard logic, from the joiner's counters) ---------
        self.join_events = Counter(
            "streamjoin_join_events",
            "Events that reached the joiner, per side.",
            ["side"],
            registry=r,
        )
        self.matched_pairs = Counter(
            "streamjoin_matched_pairs", "Matched pairs emitted.", registry=r
        )
        self.late_events = Counter(
            "streamjoin_late_events",
            "Events behind the watermark, sent to the late output, per side.",
            ["side"],
            registry=r,
        )
        self.lateness = Histogram(
            "streamjoin_lateness_seconds",
            "How far late events were behind the watermark (minus allowed lateness).",
            ["side"],
            buckets=LAG_BUCKETS_SECONDS,
            registry=r,
        )
        self.duplicate_events = Counter(
            "streamjoin_duplicate_events",
            "On-time copies of retained events, dropped, per side.",
            ["side"],
            registry=r,
        )
        self.stored_events = Counter(
            "streamjoin_stored_events",
            "On-time events stored in the join's state, per side.",
            ["side"],
            registry=r,
        )
        self.evicted_events = Counter(
            "streamjoin_evicted_events",
            "Events evicted from state by the watermark, per side (matched or not).",
            ["side"],
            registry=r,
        )
        self.unmatched_rows = Counter(
            "streamjoin_unmatched_rows",
            "Unmatched rows emitted for an outer side at eviction, per side.",
            ["side"],
            registry=r,
        )
        self.unmatched_dropped = Counter(
            "streamjoin_unmatched_dropped_events",
            "Events of an inner side evicted without a match (counted, not emitted).",
            ["side"],
            registry=r,
        )
        self.batch_duration = Histogram(
            "streamjoin_batch_duration_seconds",
            "Time the shard logic spent on one batch (join, eviction, commit).",
            buckets=DURATION_BUCKETS_SECONDS,
            registry=r,
        )
        self.batch_events = Counter(
            "streamjoin_batch_events",
            "Events in the batches the shard logic processed (batch size = this / count).",
            registry=r,
        )
        self.emit_lag = BatchHistogram(
            "streamjoin_emit_lag_seconds",
            "Wall clock minus event time of each emitted row at emit (for a pair, the "
            "later of its two events); estimated from a sample in large batches.",
            LAG_BUCKETS_SECONDS,
        )
        # -- snapshots and resume (fed by recovery's snapshotter and the builder) --
        self.snapshot_duration = Histogram(
            "streamjoin_snapshot_duration_seconds",
            "Time to take one shard's snapshot (RocksDB checkpoint and manifest).",
            buckets=DURATION_BUCKETS_SECONDS,
            registry=r,
        )
        self.snapshot_bytes = Counter(
            "streamjoin_snapshot_written_bytes",
            "Bytes snapshots wrote (new checkpoint files; hard links are free).",
            registry=r,
        )
        self.last_snapshot_bytes = Gauge(
            "streamjoin_last_snapshot_bytes",
            "Size of the last snapshot taken in this process.",
            registry=r,
        )
        self.last_snapshot_time = Gauge(
            "streamjoin_last_snapshot_timestamp_seconds",
            "Wall-clock time of the last snapshot taken in this process.",
            registry=r,
        )
        self.resume_duration = Gauge(
            "streamjoin_resume_duration_seconds",
            "Time this process took to restore its shards' state at start (0: fresh start).",
            registry=r,
        )
        self.resumed_shards = Counter(
            "streamjoin_resumed_shards",
            "Shards this process restored from a snapshot.",
            registry=r,
        )
        self.process_info = Gauge(
            "streamjoin_process_info",
            "Always 1; the labels say which process of the run this is.",
            ["process"],
            registry=r,
        )
        self.process_info.labels(process).set(1)
        self.start_time = Gauge(
            "streamjoin_start_time_seconds",
            "Wall-clock time at which this process's metrics were created.",
            registry=r,
        )
        self.start_time.set(wall_clock())
        # -- scrape time ----------------------------------------------------------
        self.state = StateCollector()
        r.register(self.state)
        self._hot = SampledHotKeys(self.spec, hot_key_sample)
        self.hot_key_sample = hot_key_sample
        self.hot_keys: dict[Side, HotKeys] = self._hot.sides
        r.register(RuntimeCollector(self))
        #: Kafka consumer lag and client errors (the Kafka sources and sinks register).
        self.kafka = KafkaCollector()
        r.register(self.kafka)
        if process_collector:
            ProcessCollector(registry=r)
        self._init_series()

    def _init_series(self) -> None:
        # Series of bounded label sets exist from the start at 0, so that rate()
        # and sums see them before the first event of their kind.
        for side in SIDES:
            for counter in (
                self.join_events,
                self.late_events,
                self.duplicate_events,
                self.stored_events,
                self.evicted_events,
                self.unmatched_rows,
                self.unmatched_dropped,
            ):
                counter.labels(side)
            self.lateness.labels(side)
            self.invalid_raw_truncated.labels(side)
            for reason in REASON_CLASSES:
                self.invalid_events.labels(side, reason)

    # -- called by the sources ----------------------------------------------------

    def observe_input(
        self,
        stream: str,
        partition: str,
        events: int,
        max_ts_ms: int | None,
        *,
        closed: bool = False,
        read: PartitionRead | None = None,
    ) -> None:
        """A read of ``events`` valid events from ``partition`` of ``stream``
        (``"left"``/``"right"``); ``max_ts_ms`` is the partition's newest event
        time so far, ``closed`` that its input is exhausted, ``read`` how far
        the partition has read (for the progress line)."""
        child = self.input_events.labels(stream, partition)
        if events:
            child.inc(events)
        if read is None:
            self.progress.record_input(stream, partition, max_ts_ms, closed=closed)
        else:
            self.progress.record_input(
                stream,
                partition,
                max_ts_ms,
                closed=closed,
                position=read.position,
                events=read.events,
                invalid=read.invalid,
                backlog=read.backlog,
            )

    def observe_invalid(self, stream: str, reasons: Iterable[str], truncated: int = 0) -> None:
        """Dead letters of ``stream``: their ``Invalid.reason`` texts, and how many
        of them had their raw bytes cut."""
        if truncated:
            self.invalid_raw_truncated.labels(stream).inc(truncated)
        counts: dict[str, int] = {}
        for reason in reasons:
            name = reason_class(reason)
            counts[name] = counts.get(name, 0) + 1
        for name, n in counts.items():
            self.invalid_events.labels(stream, name).inc(n)

    # -- called by the shard logic --------------------------------------------------

    def observe_batch(
        self,
        shard: str,
        output: JoinOutput,
        counters: JoinCounters,
        seconds: float,
        events: Sequence[Event] = (),
    ) -> None:
        """One call of the joiner for ``shard``: its ``output``, the joiner's
        cumulative ``counters`` after it, the wall ``seconds`` it took and the
        ``events`` it was given (for the hot-key estimate).

        The first call for a shard counts everything its counters hold, also what
        they restored from a snapshot: the process's counters then sum to the
        run's totals, like ``run.json``.
        """
        previous = self.progress.record_batch(shard, counters, output.watermark_ms)
        self._count(previous, counters)
        self.batch_duration.observe(seconds)
        if events:
            self.batch_events.inc(len(events))
            self._hot.add_batch(events)
        for late in output.late:
            self.lateness.labels(late.event.side).observe(late.lateness_ms / 1000.0)
        matched, unmatched = output.matched, output.unmatched
        if matched or unmatched:
            rows = len(matched) + len(unmatched)
            step = self.hot_key_sample
            if rows > EMIT_LAG_EXACT_ROWS and step > 1:
                # A large batch's lags come from one row in ``step``, scaled up.
                matched, unmatched = matched[::step], unmatched[::step]
            # A pair is emitted when its later event arrives: that is its time.
            times = [m.left.ts if m.left.ts > m.right.ts else m.right.ts for m in matched]
            times.extend([u.event.ts for u in unmatched])
            self.emit_lag.observe_ages(self._wall(), times, count=rows)

    def _count(self, before: JoinCounters, after: JoinCounters) -> None:
        pairs = after.pairs - before.pairs
        if pairs:
            self.matched_pairs.inc(pairs)
        for side in SIDES:
            b, a = before.side(side), after.side(side)
            for counter, name in (
                (self.join_events, "events_in"),
                (self.late_events, "late"),
                (self.duplicate_events, "duplicates"),
                (self.stored_events, "stored"),
                (self.unmatched_rows, "unmatched_emitted"),
                (self.unmatched_dropped, "unmatched_dropped"),
            ):
                delta = getattr(a, name) - getattr(b, name)
                if delta:
                    counter.labels(side).inc(delta)
            evicted = a.evicted - b.evicted
            if evicted:
                self.evicted_events.labels(side).inc(evicted)

    def forget_shard(self, shard: str) -> None:
        """``shard`` ended here (end of input): its watermark stops counting.

        Its counts stay in the counters (they are cumulative).
        """
        self.progress.end_shard(shard)
        self.state.unregister(shard)

    # -- called by recovery and the run -------------------------------------------------

    def observe_snapshot(self, seconds: float, size_bytes: int) -> None:
        """One shard snapshot took ``seconds`` and wrote ``size_bytes``."""
        self.snapshot_duration.observe(seconds)
        self.snapshot_bytes.inc(size_bytes)
        self.last_snapshot_bytes.set(size_bytes)
        self.last_snapshot_time.set(self._wall())

    def observe_resume(self, seconds: float, shards: int = 1) -> None:
        """Restoring ``shards`` shards from snapshots took ``seconds`` in all so far."""
        self.resume_duration.inc(seconds)
        self.resumed_shards.inc(shards)

    # -- scrape time -----------------------------------------------------------------------

    def now_seconds(self) -> float:
        """The injected wall clock, epoch seconds."""
        return self._wall()

    def watermarks_ms(self) -> dict[str, int]:
        """The current watermark of every shard of this process that has one."""
        return self.progress.watermarks_ms()

    def input_watermarks_ms(self) -> dict[str, int]:
        """Per stream, the minimum over its open partitions here of newest ts - D."""
        return self.progress.input_watermarks_ms()

    def counters(self) -> JoinCounters:
        """The sum of the latest counters of every shard seen by this process."""
        return self.progress.counters()


__all__ = [
    "DURATION_BUCKETS_SECONDS",
    "HOT_KEY_RANKS",
    "LAG_BUCKETS_SECONDS",
    "REASON_CLASSES",
    "JoinMetrics",
    "reason_class",
    "wall_seconds",
]
