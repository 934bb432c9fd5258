"""Kafka sources of both join sides: one Bytewax partition per Kafka partition.

Each Kafka partition is assigned explicitly (no consumer group, nothing is
committed to the broker) and read in batches; each read yields one
:class:`~dataflows.sources.marks.SourceBatch` stamped by a
:class:`~dataflows.sources.marks.MarkStamper`, like a file partition
(:mod:`dataflows.sources.files`). Values are decoded by
:class:`~dataflows.inputs.kafka_records.KafkaRecordDecoder`; a record that
cannot be decoded is a dead letter naming ``side:topic:partition`` and its
offset.

**Resume state** (:class:`KafkaPosition`, a small frozen versioned value): the
next offset to read *and* the partition's watermark state (its largest event
time and counts), so a resumed partition neither re-reads nor restarts its
watermark from minus infinity; with ``until_end``, also the end offset taken at
the first start, so a resumed backfill stops where the first attempt would have.

**Modes.** Unbounded by default: the partition is tailed forever and reports a
heartbeat mark every ``heartbeat_ms`` even when no record arrives. With
``until_end`` each partition reads up to the high watermark taken when it was
first built, then closes (its mark goes to plus infinity, as at the end of a
file).

**Idleness** (the join's watermark skips partitions silent for the idle
timeout, judged from ``PartitionMark.active_ms``):

- a partition that is *lagging* (it has not reached the high watermark:
  librdkafka has not reported end of partition since its last record) reports
  itself active at every read, so it is **never idle**, however slowly its
  records come;
- a partition that is *caught up* keeps the time of the read that caught up
  (or of its last record since), so it turns idle once silent for
  ``idle_timeout_ms``;
- an **empty** partition (nothing to read at start and nothing ever read)
  reports ``active_ms = start - idle_timeout_ms``: idle at once.

**Errors.** Broker and client errors are logged and counted
(:class:`~dataflows.kafka.ClientErrors`) while librdkafka retries; a Schema
Registry that cannot be reached holds the batch back and it is decoded again
after ``retry_ms`` (nothing is dead-lettered for the registry's fault). An
offset that retention deleted before it was read stops the run with a
:class:`~dataflows.kafka.KafkaClientError` that says which records were lost,
rather than skipping them silently.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from dataflows.config import RunConfig
from dataflows.config.source_budget import PREFETCH_SETTING, partition_batch_size, prefetch_kib
from dataflows.console import reports_failures
from dataflows.inputs import Invalid, SourceFormat
from dataflows.inputs.kafka_records import (
    KafkaRecordDecoder,
    KafkaValueFormat,
    kafka_partition_name,
)
from dataflows.kafka import (
    ClientErrors,
    KafkaClientError,
    KafkaSettings,
    KafkaUrl,
    RegistryError,
    SchemaRegistry,
    make_consumer,
    parse_kafka_url,
    topic_partitions,
    watermarks,
)
from dataflows.sources.files import source_format
from dataflows.sources.marks import Clock, MarkStamper, PartitionRead, SourceBatch, wall_ms
from joins import Event, Side

log = logging.getLogger("streamjoin.kafka.source")


@dataclass(frozen=True, slots=True)
class KafkaPosition:
    """Where a Kafka partition resumes: the next offset and its watermark state."""

    next_offset: int
    max_ts: int | None
    events: int = 0
    invalid: int = 0
    #: ``until_end`` only: the end offset taken at the first start.
    end_offset: int | None = None
    #: The first offset the first start read from (the low watermark then).
    first_offset: int | None = None
    #: Which Avro reader schema read which offsets: ``(from offset, schema as
    #: canonical JSON text, "" for none)``, a new entry at each resume whose
    #: reader schema changed (schema evolution; ``validate`` reads each record
    #: as the run did).
    readers: tuple[tuple[int, str], ...] = ()
    version: int = 1


@dataclass(frozen=True)
class KafkaInput:
    """One join side read from a topic."""

    side: Side
    url: KafkaUrl
    fmt: SourceFormat
    value_format: KafkaValueFormat = "json"
    #: Avro reader schema of the side (``None``: each record as written).
    reader_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class KafkaSourceOptions:
    """How the Kafka partitions are read (``*_ms`` in milliseconds)."""

    batch_size: int = 10_000
    heartbeat_ms: int = 1000
    idle_timeout_ms: int = 30_000
    until_end: bool = False
    #: How long a read that found nothing waits before the next one.
    poll_interval_ms: int = 20
    #: How long a batch held back by an unreachable registry waits.
    retry_ms: int = 1000
    metadata_timeout_s: float = 10.0
    #: The run's processes: each partition's batch and its consumer's prefetch
    #: are cut to a share of a process's budget (:mod:`dataflows.config.source_budget`).
    processes: int = 1
    #: Each consumer's prefetch queue in KiB (``None``: librdkafka's default;
    #: a ``queued.max.messages.kbytes`` in the settings wins).
    prefetch_kib: int | None = None


def reader_text(schema: dict[str, Any] | None) -> str:
    """A reader schema as canonical JSON text (``""`` for none)."""
    return "" if schema is None else json.dumps(schema, sort_keys=True, separators=(",", ":"))


class KafkaPartition(StatefulSourcePartition[SourceBatch, KafkaPosition]):
    """One Kafka partition of one side."""

    def __init__(
        self,
        spec: KafkaInput,
        partition: int,
        settings: KafkaSettings,
        decoder: KafkaRecordDecoder,
        options: KafkaSourceOptions,
        resume: KafkaPosition | None,
        clock: Clock = wall_ms,
    ) -> None:
        self._side: Side = spec.side
        self._topic = spec.url.topic
        self._partition = partition
        self.name = kafka_partition_name(spec.side, spec.url.topic, partition)
        self._decoder = decoder
        self._options = options
        self._clock = clock
        self.errors = ClientErrors(f"Kafka source {self.name}")
        extra: dict[str, Any] = {"auto.offset.reset": "error"}
        if options.prefetch_kib is not None and PREFETCH_SETTING not in settings.values:
            extra[PREFETCH_SETTING] = options.prefetch_kib
        self._consumer = make_consumer(settings, spec.url.bootstrap, self.errors, **extra)
        low, high = watermarks(self._consumer, self._topic, partition, options.metadata_timeout_s)
        self._next = resume.next_offset if resume is not None else low
        self._first = resume.first_offset if resume is not None else low
        reader = reader_text(spec.reader_schema)
        self._readers = resume.readers if resume is not None else ()
        if not self._readers or self._readers[-1][1] != reader:
            self._readers = (*self._readers, (self._next, reader))
        self._end: int | None = None
        if options.until_end:
            self._end = resume.end_offset if resume and resume.end_offset is not None else high
        self._events = resume.events if resume else 0
        self._invalid = resume.invalid if resume else 0
        #: The partition's end offset as last seen (for lag: :meth:`lag_records`).
        self.high_watermark = high
        self._stamper = MarkStamper(
            self.name, resume.max_ts if resume else None, options.heartbeat_ms, clock
        )
        self.caught_up = self._next >= high
        if self.caught_up and self._stamper.max_ts is None and self._events == 0:
            # Empty: nothing to wait for, so it must not hold the watermark back.
            self._stamper.active_ms -= options.idle_timeout_ms
        self._pending: list[Message] = []
        self._awake: datetime | None = None
        self._done = False
        self._closed = False
        #: Event time of the last event read (lag in seconds: :meth:`lag_seconds`).
        self.last_ts: int | None = None
        start = resume.next_offset if resume is not None else OFFSET_BEGINNING
        self._consumer.assign([TopicPartition(self._topic, partition, start)])

    # -- reading ----------------------------------------------------------------

    def _poll(self) -> list[Message]:
        if self._pending:
            msgs, self._pending = self._pending, []
            return msgs
        msgs = self._consumer.consume(self._options.batch_size, 0)
        records: list[Message] = []
        position = self._next
        for msg in msgs:
            err = msg.error()
            if err is None:
                records.append(msg)
                self.caught_up = False
                position = max(position, (msg.offset() or 0) + 1)
            elif err.code() == KafkaError._PARTITION_EOF:
                # The end of what the broker holds now. Its offset is the position
                # after any transaction markers, which no record would reveal.
                self.caught_up = True
                position = max(position, msg.offset() or 0)
                self.high_watermark = max(self.high_watermark, msg.offset() or 0)
            elif err.code() == KafkaError._AUTO_OFFSET_RESET:
                text = (f"Kafka source {self.name}: offset {self._next} is no longer on the "
                        f"broker ({err.str()}): records before the partition's first stored "
                        "offset were deleted by retention before they were read, and are "
                        "lost to this run; start afresh (without the recovery state) to read "
                        "what the topic still holds")
                raise KafkaClientError(text)
            else:
                self.errors(err)
        self._next = position
        return records

    @reports_failures
    def next_batch(self) -> list[SourceBatch]:
        if self._done:
            raise StopIteration
        self._awake = None
        if self._end is not None and self._next >= self._end:
            return [self._close()]
        lagging = not self.caught_up
        msgs = self._poll()
        if self._end is not None:
            # A fetch may bring records past the end taken at start: not this
            # run's, and the position stays at the end (run.json, validate).
            msgs = [m for m in msgs if (m.offset() or 0) < self._end]
            self._next = min(self._next, self._end)
        try:
            items = self._decoder.decode(self.name, [(m.offset() or 0, m.value()) for m in msgs])
        except RegistryError as exc:
            # Not the records' fault: keep them and try again shortly.
            self.errors.counts["registry"] = self.errors.counts.get("registry", 0) + 1
            log.warning("%s: %s (retrying in %d ms)", self.name, exc, self._options.retry_ms)
            self._pending = msgs
            self._sleep(self._options.retry_ms)
            return []
        events: list[Event] = []
        invalid: list[Invalid] = []
        for item in items:
            (events if type(item) is Event else invalid).append(item)  # type: ignore[arg-type]
        self._events += len(events)
        self._invalid += len(invalid)
        if events:
            self.last_ts = events[-1].ts
        if lagging or not self.caught_up:
            # Lagging (up to this read): records were waiting on the broker, so
            # silence is not idleness; the idle timeout runs from catching up.
            self._stamper.active_ms = self._clock()
        mark, broadcast = self._stamper.stamp(events)
        if not msgs:
            self._sleep(self._options.poll_interval_ms)
            if not broadcast:
                return []
        return [SourceBatch(self._side, events, invalid, mark, broadcast, None, self._read())]

    def _read(self) -> PartitionRead:
        """How far the partition has read, with its consumer lag as the backlog
        (the progress line shows it)."""
        return PartitionRead(self._next, self._events, self._invalid, self.lag_records())

    def _sleep(self, ms: int) -> None:
        self._awake = datetime.now(UTC) + timedelta(milliseconds=ms)

    def _close(self) -> SourceBatch:
        self._done = True
        mark, _ = self._stamper.stamp([], closed=True)
        totals = {"kind": "source", "partition": self.name, "side": self._side,
                  "events": self._events, "invalid": self._invalid, "kafka": self.report()}
        return SourceBatch(self._side, [], [], mark, True, totals, self._read())

    def report(self) -> dict[str, Any]:
        """Where the partition stands (``run.json``'s ``kafka.partitions``)."""
        lag = self.lag_records()
        return {"topic": self._topic, "partition": self._partition,
                "first_offset": self._first, "end_offset": self._end,
                "next_offset": self._next, "high_watermark": self.high_watermark,
                "lag_records": lag, "lag_seconds": self.lag_seconds(),
                "last_ts": self.last_ts, "client_errors": dict(self.errors.counts),
                "readers": [[offset, json.loads(text) if text else None]
                            for offset, text in self._readers]}

    def next_awake(self) -> datetime | None:
        return self._awake

    @reports_failures
    def snapshot(self) -> KafkaPosition:
        return KafkaPosition(self._next, self._stamper.max_ts, self._events, self._invalid,
                             self._end, self._first, self._readers)

    @property
    def side(self) -> Side:
        return self._side

    def lag_records(self) -> int:
        """Records on the broker not yet read, from the high watermark of the last
        fetch (librdkafka's cached value: no request to the broker). Also called
        by a metrics scrape, from another thread."""
        if not self._closed:
            try:
                cached = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, self._partition), cached=True
                )
            except (KafkaException, RuntimeError):  # closed meanwhile, or no fetch yet
                cached = None
            if cached is not None and cached[1] >= 0:
                self.high_watermark = max(self.high_watermark, int(cached[1]))
        end = self.high_watermark if self._end is None else min(self._end, self.high_watermark)
        return max(0, end - self._next)

    def lag_seconds(self, now_ms: int | None = None) -> float:
        """How far behind the partition's reading is: 0 when nothing waits on the
        broker, else the wall clock minus the event time of the last event read
        (the age of what it is working through)."""
        if self.lag_records() == 0 or self.last_ts is None:
            return 0.0
        now = self._clock() if now_ms is None else now_ms
        return max(0.0, (now - self.last_ts) / 1000.0)

    def close(self) -> None:
        self._closed = True
        self._consumer.close()


class KafkaSource(FixedPartitionedSource[SourceBatch, KafkaPosition]):
    """The topics of both sides as one partitioned source (partition = one Kafka
    partition, named ``side:topic:partition``)."""

    def __init__(
        self,
        inputs: Sequence[KafkaInput],
        settings: KafkaSettings,
        options: KafkaSourceOptions,
        *,
        registry_url: str | None = None,
        registry_conf: dict[str, str] | None = None,
        clock: Clock = wall_ms,
        on_partition: Callable[[KafkaPartition], None] | None = None,
    ) -> None:
        self._on_partition = on_partition
        self._inputs = list(inputs)
        self._settings = settings
        self._options = options
        self._registry_url = registry_url
        self._registry_conf = registry_conf
        self._clock = clock
        self._parts: dict[str, tuple[KafkaInput, int]] | None = None
        self._registry: SchemaRegistry | None = None
        self._decoders: dict[Side, KafkaRecordDecoder] = {}

    def partitions(self) -> dict[str, tuple[KafkaInput, int]]:
        """Every Kafka partition of both sides by source partition name (the
        brokers are asked once)."""
        if self._parts is None:
            parts: dict[str, tuple[KafkaInput, int]] = {}
            for spec in self._inputs:
                for p in topic_partitions(self._settings, spec.url.bootstrap, spec.url.topic,
                                          self._options.metadata_timeout_s):
                    parts[kafka_partition_name(spec.side, spec.url.topic, p)] = (spec, p)
            self._parts = parts
        return self._parts

    def list_parts(self) -> list[str]:
        return list(self.partitions())

    def _decoder(self, spec: KafkaInput) -> KafkaRecordDecoder:
        decoder = self._decoders.get(spec.side)
        if decoder is None:
            registry = None
            if spec.value_format == "confluent-avro" and self._registry_url is not None:
                if self._registry is None:
                    self._registry = SchemaRegistry(self._registry_url, self._registry_conf)
                registry = self._registry
            decoder = self._decoders[spec.side] = KafkaRecordDecoder(
                spec.side, spec.fmt, spec.value_format, registry, spec.reader_schema
            )
        return decoder

    @reports_failures
    def build_part(
        self, step_id: str, for_part: str, resume_state: KafkaPosition | None
    ) -> KafkaPartition:
        parts = self.partitions()
        spec, partition = parts[for_part]
        processes = self._options.processes
        options = dataclasses.replace(  # many partitions: each a share of the budget
            self._options,
            batch_size=partition_batch_size(self._options.batch_size, len(parts), processes),
            prefetch_kib=prefetch_kib(len(parts), processes),
        )
        part = KafkaPartition(spec, partition, self._settings, self._decoder(spec),
                              options, resume_state, self._clock)
        if self._on_partition is not None:
            self._on_partition(part)  # the metrics' lag and client errors
        return part


def kafka_inputs(cfg: RunConfig) -> list[KafkaInput]:
    """The Kafka sides of a run, as the source reads them."""
    return [
        KafkaInput(side.side, parse_kafka_url(side.kafka), source_format(side),
                   "confluent-avro" if side.format == "avro" else "json", side.reader_schema)
        for side in cfg.kafka_sides
    ]


def kafka_source(
    cfg: RunConfig,
    *,
    clock: Clock = wall_ms,
    on_partition: Callable[[KafkaPartition], None] | None = None,
) -> KafkaSource:
    """The :class:`KafkaSource` of a run's Kafka sides."""
    options = KafkaSourceOptions(
        batch_size=cfg.batch_size,
        heartbeat_ms=cfg.heartbeat_ms,
        idle_timeout_ms=cfg.spec.idle_timeout_ms,
        until_end=cfg.kafka.until_end,
        processes=cfg.processes,
    )
    return KafkaSource(
        kafka_inputs(cfg), cfg.kafka.client_settings(), options,
        registry_url=cfg.kafka.registry or None, registry_conf=cfg.kafka.registry_conf(),
        clock=clock, on_partition=on_partition,
    )
