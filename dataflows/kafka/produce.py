"""Records to a Kafka topic, as JSON or Confluent Avro (tests, benchmarks and,
later, ``streamjoin generate --to kafka://...``).

- :func:`produce` sends ``(key, value)`` byte pairs (a value of ``None`` is a
  tombstone) to one topic, to an explicit partition per record or by the
  client's key partitioner, waits for every delivery and raises
  :class:`~dataflows.kafka.errors.KafkaClientError` if any failed;
- :class:`JsonValues` and :class:`ConfluentAvroValues` turn a record dict into
  a value (the latter registers its schema under a subject first and frames
  each datum: magic byte 0, schema id, Avro binary);
- :func:`file_items` reads one file of a generated dataset (JSON Lines: each
  line's **exact bytes** are a value, malformed lines included, so they reach
  the source as the same dead letters; Avro container files: each datum
  re-encoded with ``values``), with the record's join key as the Kafka key.

A generated dataset has one file per source partition; producing file ``i`` to
partition ``i`` keeps each partition's bounded disorder (and its intended late
events) as the generator made them.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastavro
from confluent_kafka import KafkaError, Message

from dataflows.inputs.confluent_wire import frame
from dataflows.inputs.fields import BadRecord, key_of
from dataflows.inputs.source_format import SourceFormat
from dataflows.kafka.clients import ClientErrors, make_producer
from dataflows.kafka.errors import KafkaClientError
from dataflows.kafka.registry import SchemaRegistry
from dataflows.kafka.settings import KafkaSettings

#: ``(key, value)`` of one record to produce.
Item = tuple[bytes | None, bytes | None]


@dataclass
class ProduceReport:
    """What :func:`produce` delivered."""

    topic: str
    records: int = 0
    seconds: float = 0.0
    per_partition: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Records a second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


class JsonValues:
    """Record dicts as compact JSON values."""

    def encode(self, record: dict[str, Any]) -> bytes:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


class ConfluentAvroValues:
    """Record dicts as Confluent Avro values under ``schema``, registered as the
    subject's latest version on construction."""

    def __init__(self, registry: SchemaRegistry, subject: str, schema: dict[str, Any]) -> None:
        self.schema_id = registry.register(subject, schema)
        self._parsed = fastavro.parse_schema(schema)

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self._parsed, record)
        return frame(self.schema_id, buf.getvalue())


class _Deliveries:
    def __init__(self, report: ProduceReport) -> None:
        self.report = report
        self.failed = 0
        self.first_error: KafkaError | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = err
            return
        part = msg.partition()
        if part is not None:
            counts = self.report.per_partition
            counts[part] = counts.get(part, 0) + 1
            self.report.records += 1


def produce(
    settings: KafkaSettings,
    bootstrap: str,
    topic: str,
    items: Iterable[Item],
    *,
    partition_of: Callable[[int], int] | None = None,
    flush_timeout_s: float = 120.0,
    **producer_config: Any,
) -> ProduceReport:
    """Send ``items`` to ``topic`` and wait until every one is delivered.

    ``partition_of(i)`` gives the partition of the ``i``-th item (``None``:
    librdkafka's partitioner by key). Raises ``KafkaClientError`` naming how
    many records failed and the first error."""
    report = ProduceReport(topic)
    deliveries = _Deliveries(report)
    producer = make_producer(
        settings, bootstrap, ClientErrors(f"producer to {topic}"),
        **{"linger.ms": 20, "enable.idempotence": True, **producer_config},
    )
    started = time.perf_counter()
    send = producer.produce
    for i, (key, value) in enumerate(items):
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": deliveries}
        if partition_of is not None:
            kwargs["partition"] = partition_of(i)
        while True:
            try:
                send(topic, **kwargs)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(flush_timeout_s)
    report.seconds = time.perf_counter() - started
    if left or deliveries.failed:
        why = deliveries.first_error.str() if deliveries.first_error is not None else "timed out"
        msg = (f"{deliveries.failed + left} records to topic {topic!r} on {bootstrap} were not "
               f"delivered (first error: {why}); check the brokers and that the topic exists")
        raise KafkaClientError(msg)
    return report


def file_items(
    path: str,
    fmt: SourceFormat,
    values: JsonValues | ConfluentAvroValues | None = None,
) -> Iterator[Item]:
    """The records of one generated dataset file as ``(join key, value)`` pairs.

    JSON Lines: each non-blank line's exact bytes (without its terminator) are
    the value; the key is the record's join key, ``None`` for a line that has
    none (a malformed record). Avro files: each datum encoded with ``values``
    (JSON when it is ``None``)."""
    encoder = values or JsonValues()
    if fmt.format == "jsonl":
        with open(path, "rb") as fo:
            for raw in fo:
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                yield _key_of_line(line, fmt), line
        return
    if fmt.format == "avro":
        with open(path, "rb") as fo:
            for datum in fastavro.reader(fo):
                if not isinstance(datum, dict):
                    continue
                yield _key_of(datum, fmt), encoder.encode(datum)
        return
    msg = f"cannot produce {fmt.format} files to Kafka: use JSON Lines or Avro"
    raise KafkaClientError(msg)


def _key_of(record: dict[str, Any], fmt: SourceFormat) -> bytes | None:
    try:
        return key_of(record, fmt).encode()
    except BadRecord:
        return None


def _key_of_line(line: bytes, fmt: SourceFormat) -> bytes | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return _key_of(record, fmt) if isinstance(record, dict) else None
