"""Kafka sinks: joined rows, late events and dead letters to topics.

One sink per output (:data:`~dataflows.outputs.OUTPUT_KINDS`), each a Bytewax
*partitioned* sink whose partitions are the shards of this process (as for
files, :mod:`dataflows.sinks.files`), so every shard writes its own rows with
its own producer. Every record carries:

- **key**: the join key (joined rows, late events), so downstream partitioning
  follows the key; a dead letter, which has no key, is keyed by its source
  partition name;
- **value**: the output record (``shared/design/semantics.md``, "Output
  records") as JSON, or as Confluent Avro under the output schema registered
  as ``<topic>-value`` (the Avro datums of :mod:`dataflows.outputs.records`);
- **header** ``id``: a deterministic output id (:func:`output_id`: the row id
  for joined rows, and for late events and dead letters an id of the event or
  of its source position), so a consumer can deduplicate whatever a resume
  sends again; with transactions also ``txn``: ``<transactional.id>#<n>``, the
  shard's transaction the record was written in.

**Delivery** (:data:`DELIVERIES`):

- ``transactional`` (the default): each shard's producer has a stable
  ``transactional.id`` (:func:`transactional_id`: ``streamjoin.<topic>.<shard>``).
  A transaction is opened by the first write of an epoch and committed in the
  shard's ``snapshot()``, i.e. together with the epoch's recovery snapshot. A
  resumed partition calls ``init_transactions`` at once, which on a real broker
  aborts whatever a crashed run left open and fences its zombie producers. A
  consumer that sets ``isolation.level=read_committed`` sees only whole
  committed epochs. What remains: a crash after a shard committed its Kafka
  transaction but before Bytewax made that epoch's snapshot durable replays
  the epoch, so its rows are committed twice; they carry the same ids
  (at most one epoch per shard is repeated).
- ``at-least-once``: an idempotent producer, flushed in every ``snapshot()``
  (nothing produced before a snapshot can be lost after it); a resume re-sends
  what the crashed run wrote after its last snapshot. Consumers deduplicate by
  the ``id`` header.

librdkafka's mock cluster (tests, ``kafka-dev``) ignores ``read_committed`` and
does not abort or fence on ``init_transactions`` (measured, see
``docs/kafka.md``), so there the transactional sink behaves, for a reader, like
at-least-once; :attr:`KafkaRowPartition.committed` and the ``on_commit``
callback tell exactly which transactions committed.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import fastavro
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from dataflows.errors import ConfigError
from dataflows.inputs import Invalid
from dataflows.inputs.confluent_wire import frame
from dataflows.kafka import (
    ClientErrors,
    KafkaClientError,
    KafkaSettings,
    KafkaUrl,
    SchemaRegistry,
    make_producer,
    subject_of,
)
from dataflows.outputs import BUILDERS, PARSED_SCHEMAS, SCHEMAS, JoinedLineEncoder, OutputKind
from dataflows.outputs.records import json_line
from joins import Late, Matched, Unmatched

Delivery = Literal["transactional", "at-least-once"]
DELIVERIES: tuple[Delivery, ...] = get_args(Delivery)
KafkaOutputFormat = Literal["json", "confluent-avro"]
KAFKA_OUTPUT_FORMATS: tuple[KafkaOutputFormat, ...] = get_args(KafkaOutputFormat)

#: Called after each committed transaction with ``(transactional.id, sequence)``.
CommitObserver = Callable[[str, int], None]


def output_id(kind: OutputKind, item: Any) -> str:
    """The deterministic id of one output item: the row id of a joined row; a
    digest of side and event identity for a late event; ``partition@offset``
    for a dead letter."""
    if kind == "joined":
        row: Matched | Unmatched = item
        return row.id
    if kind == "late":
        late: Late = item
        event = late.event
        return hashlib.blake2b(b"late|" + event.side.encode() + b"|" + event.identity,
                               digest_size=16).hexdigest()
    invalid: Invalid = item
    return f"{invalid.partition}@{invalid.offset}"


def record_key(kind: OutputKind, item: Any) -> str:
    """The Kafka record key of one output item (the join key, or for a dead
    letter its source partition)."""
    if kind == "joined":
        return str(item.key)
    if kind == "late":
        return str(item.event.key)
    return str(item.partition)


def transactional_id(topic: str, shard: str) -> str:
    """The stable ``transactional.id`` of one shard's producer to ``topic``."""
    return f"streamjoin.{topic}.{shard}"


@dataclass(frozen=True, slots=True)
class KafkaSinkPosition:
    """A shard's sink snapshot: what it has delivered (Kafka cannot be truncated,
    so nothing else is needed to resume)."""

    records: int
    transactions: int
    version: int = 1


@dataclass(frozen=True)
class KafkaSinkOptions:
    """How an output is written to Kafka."""

    value_format: KafkaOutputFormat = "json"
    delivery: Delivery = "transactional"
    registry_url: str | None = None
    registry_conf: dict[str, str] | None = None
    timeout_s: float = 60.0
    #: librdkafka properties of the service's own choosing (the user's settings win).
    producer_defaults: tuple[tuple[str, Any], ...] = (("linger.ms", 10),)

    def __post_init__(self) -> None:
        if self.value_format not in KAFKA_OUTPUT_FORMATS:
            msg = (f"Kafka output format {self.value_format!r} must be one of "
                   f"{', '.join(KAFKA_OUTPUT_FORMATS)}")
            raise ConfigError(msg)
        if self.delivery not in DELIVERIES:
            msg = f"Kafka delivery {self.delivery!r} must be one of {', '.join(DELIVERIES)}"
            raise ConfigError(msg)
        if self.value_format == "confluent-avro" and not self.registry_url:
            msg = "confluent-avro outputs need a Schema Registry (--schema-registry URL)"
            raise ConfigError(msg)


class _Encoder:
    """Output items of one kind to Kafka values."""

    def __init__(self, kind: OutputKind, fmt: KafkaOutputFormat, schema_id: int | None) -> None:
        self._kind = kind
        self._schema_id = schema_id
        self._lines = JoinedLineEncoder() if kind == "joined" and fmt == "json" else None
        self._json = BUILDERS[(kind, "jsonl")]
        self._avro = BUILDERS[(kind, "avro")]
        self._parsed = PARSED_SCHEMAS[kind]

    def values(self, items: list[Any]) -> list[bytes]:
        if self._schema_id is None:
            if self._lines is not None:
                return [line.encode() for line in self._lines.lines(items)]
            return [json_line(self._json(item)).encode() for item in items]
        out = []
        for item in items:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, self._parsed, self._avro(item))
            out.append(frame(self._schema_id, buf.getvalue()))
        return out


class KafkaRowPartition(StatefulSinkPartition[list[Any], KafkaSinkPosition]):
    """One shard's output to one topic, through its own producer."""

    def __init__(
        self,
        kind: OutputKind,
        url: KafkaUrl,
        shard: str,
        settings: KafkaSettings,
        options: KafkaSinkOptions,
        encoder: _Encoder,
        resume: KafkaSinkPosition | None,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self._kind: OutputKind = kind
        self._topic = url.topic
        self._bootstrap = url.bootstrap
        self._settings = settings
        self._options = options
        self._encoder = encoder
        self._on_commit = on_commit
        self.transactional = options.delivery == "transactional"
        self.txn_id = transactional_id(url.topic, shard)
        self.errors = ClientErrors(f"Kafka sink {url.topic} ({shard})")
        self.records = resume.records if resume else 0
        self.transactions = resume.transactions if resume else 0
        #: Sequence numbers of the transactions committed by this partition object.
        self.committed: list[int] = []
        self._producer: Producer | None = None
        self._in_txn = False
        self._failed: KafkaError | None = None
        if resume is not None and self.transactional:
            # Abort (and fence) whatever the crashed run left open, now rather
            # than at the next write: read_committed consumers wait behind it.
            self._open()

    def _open(self) -> Producer:
        user = self._settings.values
        # The service's defaults, unless the user set them.
        extra: dict[str, Any] = {k: v for k, v in self._options.producer_defaults if k not in user}
        if self.transactional:
            extra["transactional.id"] = self.txn_id
        elif "enable.idempotence" not in user:
            extra["enable.idempotence"] = True
        producer = make_producer(self._settings, self._bootstrap, self.errors, **extra)
        if self.transactional:
            try:
                producer.init_transactions(self._options.timeout_s)
            except KafkaException as exc:
                msg = (f"Kafka sink {self._topic}: init_transactions for {self.txn_id!r} "
                       f"failed: {exc.args[0].str()}; check the brokers and that transactions "
                       "are allowed (or use --kafka-delivery at-least-once)")
                raise KafkaClientError(msg) from exc
        self._producer = producer
        return producer

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None and self._failed is None:
            self._failed = err

    def write_batch(self, values: list[list[Any]]) -> None:
        items = [item for batch in values for item in batch]
        if not items:
            return
        producer = self._producer or self._open()
        if self.transactional and not self._in_txn:
            producer.begin_transaction()
            self._in_txn = True
        kind, topic = self._kind, self._topic
        send = producer.produce
        # Which transaction a record belongs to, for readers that cannot rely on
        # read_committed (the mock cluster) and for debugging.
        txn = f"{self.txn_id}#{self.transactions + 1}".encode() if self.transactional else None
        for item, value in zip(items, self._encoder.values(items), strict=True):
            headers = [("id", output_id(kind, item).encode())]
            if txn is not None:
                headers.append(("txn", txn))
            kwargs: dict[str, Any] = {"key": record_key(kind, item).encode(), "value": value,
                                      "headers": headers, "on_delivery": self._delivered}
            while True:
                try:
                    send(topic, **kwargs)
                    break
                except BufferError:  # local queue full: serve deliveries, then retry
                    producer.poll(0.05)
        producer.poll(0)
        self.records += len(items)

    def _check(self) -> None:
        if self._failed is not None:
            err, self._failed = self._failed, None
            msg = (f"Kafka sink {self._topic}: a record was not delivered ({err.str()}); "
                   "the run stops so that a resume sends it again")
            raise KafkaClientError(msg)

    def snapshot(self) -> KafkaSinkPosition:
        producer = self._producer
        if producer is not None:
            try:
                if self._in_txn:
                    producer.commit_transaction(self._options.timeout_s)
                    self._in_txn = False
                    self.transactions += 1
                    self.committed.append(self.transactions)
                    if self._on_commit is not None:
                        self._on_commit(self.txn_id, self.transactions)
                elif not self.transactional:
                    left = producer.flush(self._options.timeout_s)
                    if left:
                        msg = (f"Kafka sink {self._topic}: {left} records still undelivered "
                               f"after {self._options.timeout_s} s; check the brokers")
                        raise KafkaClientError(msg)
            except KafkaException as exc:
                msg = (f"Kafka sink {self._topic}: committing transaction {self.txn_id!r} "
                       f"failed: {exc.args[0].str()}; the run stops and a resume sends "
                       "the epoch again")
                raise KafkaClientError(msg) from exc
            self._check()
        return KafkaSinkPosition(self.records, self.transactions)

    def close(self) -> None:
        if self._producer is None:
            return
        self.snapshot()  # end of input: commit or flush what is left
        self._producer.flush(self._options.timeout_s)
        self._producer = None


class KafkaRowSink(FixedPartitionedSink[list[Any], KafkaSinkPosition]):
    """One output kind to ``url.topic``, one partition per shard of this process
    (items are ``(shard, list[item])`` batches, as for file sinks)."""

    def __init__(
        self,
        kind: OutputKind,
        url: KafkaUrl,
        settings: KafkaSettings,
        options: KafkaSinkOptions,
        all_shards: Sequence[str],
        local_shards: Sequence[str],
        on_commit: CommitObserver | None = None,
    ) -> None:
        self._kind: OutputKind = kind
        self._url = url
        self._settings = settings
        self._options = options
        self._index = {name: i for i, name in enumerate(sorted(all_shards))}
        self._local = list(local_shards)
        self._on_commit = on_commit
        self._encoder: _Encoder | None = None
        #: The partitions this process built (tests and stats read them).
        self.built: dict[str, KafkaRowPartition] = {}

    def encoder(self) -> _Encoder:
        """The value encoder (registers the output schema once, for Avro)."""
        if self._encoder is None:
            schema_id = None
            if self._options.value_format == "confluent-avro":
                assert self._options.registry_url is not None  # noqa: S101 - options check it
                registry = SchemaRegistry(self._options.registry_url, self._options.registry_conf)
                schema_id = registry.register(subject_of(self._url.topic), SCHEMAS[self._kind])
            self._encoder = _Encoder(self._kind, self._options.value_format, schema_id)
        return self._encoder

    def list_parts(self) -> list[str]:
        return self._local

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    def build_part(
        self, step_id: str, for_part: str, resume_state: KafkaSinkPosition | None
    ) -> KafkaRowPartition:
        part = KafkaRowPartition(self._kind, self._url, for_part, self._settings,
                                 self._options, self.encoder(), resume_state, self._on_commit)
        self.built[for_part] = part
        return part
