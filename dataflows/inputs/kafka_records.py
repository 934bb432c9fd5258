"""Kafka record values of one join side to events or dead letters. No engine,
no Kafka client: a source hands in ``(offset, value)`` pairs of one partition.

Two value formats (:data:`KAFKA_VALUE_FORMATS`):

- ``json``: one JSON object per value, read by the same code as a JSON Lines
  line (:func:`dataflows.inputs.jsonl_format.decode_json_values`).
  ``Event.eid = content_id(value)``; an ASCII value is kept as the event's
  ``record_json``.
- ``confluent-avro``: the Confluent wire format
  (:mod:`dataflows.inputs.confluent_wire`). The writer schema comes by id from
  a :class:`WriterSchemas` (the Schema Registry client caches it), and the datum
  is decoded with fastavro's ``schemaless_reader`` to JSON-safe values (the
  writer and reader schemas rewritten by
  :func:`dataflows.inputs.avro_values.json_safe_schema`, as for Avro files; a
  ``timestamp-*`` time field states its own unit), resolved to the side's
  reader schema when one is given (schema evolution: older or newer writer
  schemas that Avro resolution accepts read as the reader schema; without a
  reader schema each record reads as its writer wrote it). Identity as for
  Avro files (:mod:`dataflows.inputs.avro_format`): ``eid = content_id`` of the
  canonical JSON of the *resolved* datum, so a record keeps its identity
  whichever compatible writer schema it was written with.

Key and time follow the file formats' rules exactly: both go through
:func:`dataflows.inputs.fields.key_of` and :func:`~dataflows.inputs.fields.ts_of`
(or the JSON Lines fast path for the common record).

Every value becomes an event or a dead letter (:class:`~dataflows.inputs.Invalid`)
whose ``partition`` names the topic and Kafka partition (:func:`kafka_partition_name`:
``side:topic:partition``) and whose ``offset`` is the record's Kafka offset. Its
``raw`` is the value's exact bytes (written as text when they are UTF-8 JSON,
always as base64 for ``confluent-avro``, see
:mod:`dataflows.outputs.dead_letters`). Reasons:
a null value (``value is null (a tombstone)``), an empty one, bad JSON, a bad
frame (short, unknown magic byte), an unknown schema id, a datum that does not
decode or resolve (``avro: ...``), a missing or bad key or time field.

A registry that cannot be reached is *not* a record's fault: the
:class:`WriterSchemas` raises something other than :class:`UnknownSchemaId`,
which propagates so that the source retries instead of dead-lettering.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any, Literal, Protocol, get_args

import fastavro

from dataflows.errors import ConfigError
from dataflows.inputs.avro_values import json_safe_schema, timestamp_unit
from dataflows.inputs.confluent_wire import HEADER_BYTES, BadFrame, unframe
from dataflows.inputs.fields import BadRecord, Invalid, json_type_name, key_of, ts_of
from dataflows.inputs.jsonl_format import decode_json_values
from dataflows.inputs.source_format import SourceFormat
from joins import Event, Side, content_id

KafkaValueFormat = Literal["json", "confluent-avro"]
KAFKA_VALUE_FORMATS: tuple[KafkaValueFormat, ...] = get_args(KafkaValueFormat)

#: ``(offset, value)`` of one Kafka record; ``value`` is ``None`` for a tombstone.
KafkaValue = tuple[int, bytes | None]


class UnknownSchemaId(LookupError):
    """The registry does not know this schema id (the record is a dead letter)."""


class WriterSchemas(Protocol):
    """Writer schemas by Schema Registry id (cached)."""

    def schema_text(self, schema_id: int) -> str:
        """The JSON text of schema ``schema_id``; raises :class:`UnknownSchemaId`
        when the registry has none, anything else when it cannot be asked."""
        ...


def kafka_partition_name(side: Side, topic: str, partition: int) -> str:
    """The source partition name of one Kafka partition: ``side:topic:partition``
    (topic names cannot hold ``:``)."""
    return f"{side}:{topic}:{partition}"


class KafkaRecordDecoder:
    """Decodes the values of one side's topic (any of its partitions)."""

    def __init__(
        self,
        side: Side,
        fmt: SourceFormat,
        value_format: KafkaValueFormat,
        schemas: WriterSchemas | None = None,
        reader_schema: dict[str, Any] | None = None,
    ) -> None:
        if value_format not in KAFKA_VALUE_FORMATS:
            msg = (f"unknown Kafka value format {value_format!r}: expected one of "
                   f"{', '.join(KAFKA_VALUE_FORMATS)}")
            raise ConfigError(msg)
        if value_format == "confluent-avro" and schemas is None:
            msg = "confluent-avro values need a Schema Registry (--schema-registry URL)"
            raise ConfigError(msg)
        self.side: Side = side
        self.fmt = fmt
        self.value_format = value_format
        self._schemas = schemas
        #: schema id -> (parsed JSON-safe writer schema, time unit it states or None)
        self._writers: dict[int, tuple[Any, str | None]] = {}
        self._reader = None
        self._reader_unit: str | None = None
        if reader_schema is not None:
            try:
                self._reader = fastavro.parse_schema(json_safe_schema(reader_schema))
            except Exception as exc:  # fastavro raises several types on bad schemas
                msg = f"the {side} reader schema is not a valid Avro schema: {exc}"
                raise ConfigError(msg) from exc
            self._reader_unit = timestamp_unit(reader_schema, fmt.time_field)

    def decode(self, partition: str, values: Sequence[KafkaValue]) -> list[Event | Invalid]:
        """Events and dead letters of ``values``, in order."""
        if self.value_format == "json":
            return self._json(partition, values)
        return self._avro(partition, values)

    def _json(self, partition: str, values: Sequence[KafkaValue]) -> list[Event | Invalid]:
        side = self.side
        out: list[Event | Invalid] = []
        run: list[tuple[int, bytes]] = []
        for offset, value in values:
            if value is not None and value.strip(b" \t\r\n"):
                run.append((offset, value))
                continue
            if run:
                decode_json_values(run, side, self.fmt, partition, out)
                run = []
            reason = "value is null (a tombstone)" if value is None else "value is empty"
            out.append(Invalid(side, reason, value or b"", partition, offset))
        if run:
            decode_json_values(run, side, self.fmt, partition, out)
        return out

    def _writer(self, schema_id: int) -> tuple[Any, str | None]:
        found = self._writers.get(schema_id)
        if found is None:
            assert self._schemas is not None  # noqa: S101 - checked in __init__
            raw = json.loads(self._schemas.schema_text(schema_id))
            unit = self._reader_unit if self._reader is not None else timestamp_unit(
                raw, self.fmt.time_field)
            found = self._writers[schema_id] = (fastavro.parse_schema(json_safe_schema(raw)), unit)
        return found

    def _avro(self, partition: str, values: Sequence[KafkaValue]) -> list[Event | Invalid]:
        side, fmt, reader = self.side, self.fmt, self._reader
        dumps = json.dumps
        read = fastavro.schemaless_reader
        out: list[Event | Invalid] = []
        append = out.append

        def dead(reason: str, value: bytes, offset: int) -> None:
            append(Invalid(side, reason, value, partition, offset, binary=True))

        for offset, value in values:
            if value is None:
                dead("value is null (a tombstone)", b"", offset)
                continue
            try:
                schema_id = unframe(value)
            except BadFrame as bad:
                dead(str(bad), value, offset)
                continue
            try:
                writer, unit = self._writer(schema_id)
            except UnknownSchemaId:
                dead(f"confluent-avro: unknown schema id {schema_id}", value, offset)
                continue
            buf = io.BytesIO(value)
            buf.seek(HEADER_BYTES)
            try:
                datum = read(buf, writer, reader)
            except Exception as exc:  # fastavro raises many types on bad bytes
                what = ("cannot resolve to the reader schema"
                        if type(exc).__name__ == "SchemaResolutionError" else "cannot decode")
                dead(f"avro: {what} (writer schema id {schema_id}): {type(exc).__name__}: {exc}",
                     value, offset)
                continue
            if buf.tell() != len(value):
                dead(f"avro: {len(value) - buf.tell()} bytes left after the datum "
                     f"(writer schema id {schema_id})", value, offset)
                continue
            if type(datum) is not dict:
                dead(f"record is not an object (got {json_type_name(datum)})", value, offset)
                continue
            canon = dumps(datum, sort_keys=True, separators=(",", ":"))
            try:
                append(Event(side, key_of(datum, fmt), ts_of(datum, fmt, unit),
                             content_id(canon.encode()), datum, partition, offset))
            except BadRecord as bad:
                dead(str(bad), value, offset)
        return out
