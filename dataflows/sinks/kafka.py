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
  sends again; with transactions also ``txn``: the label
  ``<transactional.id>#<n>@<attempt>`` of the shard's transaction the record
  was written in.

**Delivery** (:data:`DELIVERIES`):

- ``transactional`` (the default), with a recovery directory (``spool_dir``,
  *deferred commits*): every shard has two producers with stable ids
  (:func:`transactional_id` ``+ ".0"`` and ``".1"``), used in turn. The first
  write of an epoch opens a transaction; the epoch's snapshot closes it (its
  records, also written to the spool of :mod:`dataflows.kafka.spool`,
  are made durable) and the *next* snapshot commits it. Bytewax starts an
  epoch's input only once every earlier epoch's recovery snapshot is durable
  (its sources wait on the recovery writer's progress), so when a sink
  snapshots epoch E, epoch E - 1 is durable: a transaction is committed only
  for an epoch that a resume will never replay. A crash before that commit
  leaves the epoch durable but its transaction open: the resume calls
  ``init_transactions`` on both producers (on a real broker this aborts what
  the crashed run left open and fences its zombies) and sends the spooled
  records again in a new transaction, unless the spool's ``committed`` record
  says the commit went through. So the committed transactions hold every
  output exactly once. What remains: a crash between the broker's commit and
  the ``committed`` record (microseconds) repeats one epoch of one shard, with
  the same ids. The flow sends every shard's sinks a tick (an empty batch)
  with each heartbeat, so that quiet shards snapshot, and commit, every epoch.
- ``transactional`` without a recovery directory: one producer per shard and
  output; each epoch's transaction is committed in its own snapshot (there is
  no resume to be consistent with; a failed run starts again from scratch).
- ``at-least-once``: an idempotent producer, flushed in every ``snapshot()``
  (nothing produced before a snapshot can be lost after it); a resume re-sends
  what the crashed run wrote after its last snapshot. Consumers deduplicate by
  the ``id`` header.

librdkafka's mock cluster (tests, ``kafka-dev``) ignores ``read_committed`` and
does not abort or fence on ``init_transactions`` (measured, see
``docs/kafka.md``), so there the transactional sink behaves, for a reader, like
at-least-once; :attr:`KafkaRowPartition.committed` and the ``on_commit``
callback tell exactly which transactions committed (the ``txn`` header says
which transaction a record belongs to).
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import fastavro
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from dataflows.config import RunConfig
from dataflows.console import reports_failures
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
from dataflows.kafka.spool import SpoolWriter, TxnSpool
from dataflows.outputs import BUILDERS, PARSED_SCHEMAS, SCHEMAS, JoinedLineEncoder, OutputKind
from dataflows.outputs.records import json_line
from joins import Late, Matched, Unmatched

Delivery = Literal["transactional", "at-least-once"]
DELIVERIES: tuple[Delivery, ...] = get_args(Delivery)
KafkaOutputFormat = Literal["json", "confluent-avro"]
KAFKA_OUTPUT_FORMATS: tuple[KafkaOutputFormat, ...] = get_args(KafkaOutputFormat)

#: The spool of deferred commits, under a run's recovery directory.
SPOOL_DIR = "kafka-spool"
#: Called after each committed transaction with its ``txn`` label.
CommitObserver = Callable[[str], None]


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
    """A shard's sink snapshot: what it has delivered, and (deferred commits) the
    transaction that awaits its commit, whose records are in the spool."""

    records: int
    transactions: int
    pending: int | None = None
    version: int = 2


@dataclass(frozen=True)
class KafkaSinkOptions:
    """How an output is written to Kafka."""

    value_format: KafkaOutputFormat = "json"
    delivery: Delivery = "transactional"
    registry_url: str | None = None
    registry_conf: dict[str, str] | None = None
    timeout_s: float = 60.0
    #: Deferred commits (transactional only): where each shard spools the records
    #: of its transaction until it is committed (a run's recovery directory);
    #: ``None`` commits each epoch's transaction in its own snapshot.
    spool_dir: str | None = None
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


@dataclass
class _Txn:
    """A transaction of one shard: its sequence number, the producer it runs on
    and (deferred commits) the spool of its records."""

    seq: int
    producer: int
    label: str
    spool: SpoolWriter | None = None


class KafkaRowPartition(StatefulSinkPartition[list[Any], KafkaSinkPosition]):
    """One shard's output to one topic, through its own producer(s)."""

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
        #: Commit each epoch's transaction at the next snapshot (module docstring).
        self.deferred = self.transactional and options.spool_dir is not None
        self.txn_id = transactional_id(url.topic, shard)
        self.errors = ClientErrors(f"Kafka sink {url.topic} ({shard})")
        self.records = resume.records if resume else 0
        self.transactions = resume.transactions if resume else 0
        #: ``txn`` labels of the transactions committed by this partition object.
        self.committed: list[str] = []
        #: Records sent again from the spool at resume (deferred commits).
        self.resent = 0
        # Tells this attempt's transactions from a crashed attempt's with the same
        # numbers (the mock cluster shows aborted records to every reader).
        self._token = secrets.token_hex(4)
        self._producers: list[Producer | None] = [None, None] if self.deferred else [None]
        self._open: _Txn | None = None
        self._pending: _Txn | None = None
        self._failed: KafkaError | None = None
        self._spool = (TxnSpool(os.path.join(str(options.spool_dir), url.topic, shard))
                       if self.deferred else None)
        if resume is not None and self.transactional:
            # Abort (and fence) whatever the crashed run left open, now rather
            # than at the next write: read_committed consumers wait behind it.
            for index in range(len(self._producers)):
                self._producer(index)
            pending = getattr(resume, "pending", None)
            if self.deferred and pending is not None:
                self._recover(pending)

    def _id(self, index: int) -> str:
        return f"{self.txn_id}.{index}" if self.deferred else self.txn_id

    def _producer(self, index: int) -> Producer:
        producer = self._producers[index]
        if producer is not None:
            return producer
        user = self._settings.values
        # The service's defaults, unless the user set them.
        extra: dict[str, Any] = {k: v for k, v in self._options.producer_defaults if k not in user}
        if self.transactional:
            extra["transactional.id"] = self._id(index)
        elif "enable.idempotence" not in user:
            extra["enable.idempotence"] = True
        producer = make_producer(self._settings, self._bootstrap, self.errors, **extra)
        if self.transactional:
            try:
                producer.init_transactions(self._options.timeout_s)
            except KafkaException as exc:
                msg = (f"Kafka sink {self._topic}: init_transactions for {self._id(index)!r} "
                       f"failed: {exc.args[0].str()}; check the brokers and that transactions "
                       "are allowed (or use --kafka-delivery at-least-once)")
                raise KafkaClientError(msg) from exc
        self._producers[index] = producer
        return producer

    def _recover(self, seq: int) -> None:
        """A resume from a snapshot whose epoch's transaction ``seq`` awaited its
        commit: done if the crashed run committed it, else sent again from the
        spool (``init_transactions`` has just aborted the original)."""
        assert self._spool is not None  # noqa: S101 - deferred commits have a spool
        if self._spool.committed() >= seq:
            self._spool.discard_through(seq)
            return
        txn = self._begin(seq)
        producer = self._producer(txn.producer)
        for key, value, headers in self._spool.read(seq):
            sent: list[tuple[str, str | bytes | None]] = [*headers, ("txn", txn.label.encode())]
            self._send(producer, key, value, sent)
            self.resent += 1
        self._commit(txn)

    def _begin(self, seq: int) -> _Txn:
        index = seq % 2 if self.deferred else 0
        producer = self._producer(index)
        try:
            producer.begin_transaction()
        except KafkaException as exc:
            msg = (f"Kafka sink {self._topic}: cannot begin a transaction on "
                   f"{self._id(index)!r}: {exc.args[0].str()}")
            raise KafkaClientError(msg) from exc
        return _Txn(seq, index, f"{self._id(index)}#{seq}@{self._token}")

    def _send(self, producer: Producer, key: bytes | None, value: bytes | None,
              headers: list[tuple[str, str | bytes | None]]) -> None:
        while True:
            try:
                producer.produce(self._topic, key=key, value=value, headers=headers,
                                 on_delivery=self._delivered)
                return
            except BufferError:  # local queue full: serve deliveries, then retry
                producer.poll(0.05)

    def _commit(self, txn: _Txn) -> None:
        producer = self._producer(txn.producer)
        try:
            producer.commit_transaction(self._options.timeout_s)
        except KafkaException as exc:
            msg = (f"Kafka sink {self._topic}: committing transaction {txn.label!r} "
                   f"failed: {exc.args[0].str()}; the run stops and a resume sends "
                   "the epoch again")
            raise KafkaClientError(msg) from exc
        if self._spool is not None:
            self._spool.mark_committed(txn.seq, txn.label)
        self.committed.append(txn.label)
        if self._on_commit is not None:
            self._on_commit(txn.label)
        self._check()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None and self._failed is None:
            self._failed = err

    @reports_failures
    def write_batch(self, values: list[list[Any]]) -> None:
        items = [item for batch in values for item in batch]
        if not items:  # a tick (every shard gets them): only makes Bytewax snapshot
            return
        txn = self._open
        if self.transactional and txn is None:
            self.transactions += 1
            txn = self._open = self._begin(self.transactions)
            if self._spool is not None:
                txn.spool = self._spool.writer(txn.seq)
        producer = self._producer(txn.producer if txn is not None else 0)
        kind = self._kind
        # Which transaction a record belongs to, for readers that cannot rely on
        # read_committed (the mock cluster) and for debugging.
        label = txn.label.encode() if txn is not None else None
        spool = txn.spool if txn is not None else None
        for item, value in zip(items, self._encoder.values(items), strict=True):
            key = record_key(kind, item).encode()
            record_id = output_id(kind, item).encode()
            if spool is not None:
                spool.append(key, value, [("id", record_id)])
            headers: list[tuple[str, str | bytes | None]] = [("id", record_id)]
            if label is not None:
                headers.append(("txn", label))
            self._send(producer, key, value, headers)
        producer.poll(0)
        self.records += len(items)

    def _check(self) -> None:
        if self._failed is not None:
            err, self._failed = self._failed, None
            msg = (f"Kafka sink {self._topic}: a record was not delivered ({err.str()}); "
                   "the run stops so that a resume sends it again")
            raise KafkaClientError(msg)

    @reports_failures
    def snapshot(self) -> KafkaSinkPosition:
        if self.deferred:
            # Bytewax calls this at the end of an epoch E, and only after the
            # sources started epoch E, which they do only once every epoch
            # before E is durable: the pending transaction (epoch E - 1 or
            # earlier) can be committed now. Epoch E's waits for the next one.
            if self._pending is not None:
                self._commit(self._pending)
                self._pending = None
            if self._open is not None:
                if self._open.spool is not None:
                    self._open.spool.seal()
                self._pending, self._open = self._open, None
            pending = self._pending.seq if self._pending is not None else None
            return KafkaSinkPosition(self.records, self.transactions, pending)
        if self._open is not None:
            self._commit(self._open)
            self._open = None
        elif not self.transactional and self._producers[0] is not None:
            left = self._producers[0].flush(self._options.timeout_s)
            if left:
                msg = (f"Kafka sink {self._topic}: {left} records still undelivered "
                       f"after {self._options.timeout_s} s; check the brokers")
                raise KafkaClientError(msg)
            self._check()
        return KafkaSinkPosition(self.records, self.transactions)

    @reports_failures
    def close(self) -> None:
        """End of input, or the flow stopping after a failure elsewhere.

        Deferred commits: the pending transaction's epoch is durable by now (a
        flow ends only after its last recovery write; an aborted flow stops
        during a later epoch, which started only once this one was durable), so
        it is committed; an open transaction is aborted (at the end of input
        Bytewax has already snapshotted it into the pending one). Otherwise:
        commit or flush what is left."""
        if self.deferred:
            if self._pending is not None:
                self._commit(self._pending)
                self._pending = None
            if self._open is not None:
                producer = self._producers[self._open.producer]
                if producer is not None:
                    producer.abort_transaction(self._options.timeout_s)
                if self._open.spool is not None:
                    self._open.spool.discard()
                self._open = None
        else:
            self.snapshot()
        for producer in self._producers:
            if producer is not None:
                producer.flush(self._options.timeout_s)
        self._producers = [None] * len(self._producers)


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
        on_build: Callable[[KafkaRowPartition], None] | None = None,
    ) -> None:
        self._on_build = on_build
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

    @reports_failures
    def build_part(
        self, step_id: str, for_part: str, resume_state: KafkaSinkPosition | None
    ) -> KafkaRowPartition:
        part = KafkaRowPartition(self._kind, self._url, for_part, self._settings,
                                 self._options, self.encoder(), resume_state, self._on_commit)
        self.built[for_part] = part
        if self._on_build is not None:
            self._on_build(part)  # the metrics' client errors
        return part


def kafka_sink(
    cfg: RunConfig,
    kind: OutputKind,
    url: KafkaUrl,
    all_shards: Sequence[str],
    local_shards: Sequence[str],
    on_build: Callable[[KafkaRowPartition], None] | None = None,
) -> KafkaRowSink:
    """The Kafka sink of output ``kind`` of a run: JSON or Confluent Avro values
    as ``--output-format`` says; with transactions and a recovery directory,
    deferred commits spooled under ``RECOVERY/kafka-spool``."""
    kafka = cfg.kafka
    transactional = kafka.delivery == "transactional"
    spool = os.path.join(cfg.recovery_dir, SPOOL_DIR) if cfg.recovery_dir and transactional \
        else None
    options = KafkaSinkOptions(
        value_format="confluent-avro" if cfg.output_format == "avro" else "json",
        delivery="transactional" if transactional else "at-least-once",
        registry_url=kafka.registry or None,
        registry_conf=kafka.registry_conf(),
        spool_dir=spool,
    )
    return KafkaRowSink(kind, url, kafka.client_settings(), options, all_shards, local_shards,
                        on_build=on_build)


def ticks(all_shards: Sequence[str]) -> Callable[[Any], list[tuple[str, list[Any]]]]:
    """The flat-map from source batches to ticks: an empty batch for every
    shard on each heartbeat (broadcast) batch, so that every shard's Kafka sink
    partitions snapshot, and commit, in every epoch."""
    empty: list[tuple[str, list[Any]]] = [(shard, []) for shard in all_shards]

    def tick(batch: Any) -> list[tuple[str, list[Any]]]:
        return list(empty) if batch.broadcast else []

    return tick
