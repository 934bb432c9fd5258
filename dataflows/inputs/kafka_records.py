"""Kafka record values of one join side to events or dead letters. No engine,
no Kafka client: a source hands in ``(offset, value)`` pairs of one partition.

Two value formats (:data:`KAFKA_VALUE_FORMATS`):

- ``json``: one JSON object per value, read by the same rules as a JSON Lines
  line (:mod:`dataflows.inputs.jsonl_format`). ``Event.eid = content_id(value)``;
  an ASCII value is kept as the event's ``record_json``.
- ``confluent-avro``: the Confluent wire format
  (:mod:`dataflows.inputs.confluent_wire`). The writer schema comes by id from
  a :class:`WriterSchemas` (the Schema Registry client caches it), and the datum
  is decoded with fastavro's ``schemaless_reader``, resolved to the side's
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
``raw`` is the value as text for ``json`` (UTF-8, bad bytes replaced, as for
files) and **base64 of the exact value bytes** for ``confluent-avro``. Reasons:
a null value (``value is null (a tombstone)``), an empty one, bad JSON, a bad
frame (short, unknown magic byte), an unknown schema id, a datum that does not
decode or resolve (``avro: ...``), a missing or bad key or time field.

A registry that cannot be reached is *not* a record's fault: the
:class:`WriterSchemas` raises something other than :class:`UnknownSchemaId`,
which propagates so that the source retries instead of dead-lettering.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from typing import Any, Literal, Protocol, get_args

import fastavro

from dataflows.errors import ConfigError
from dataflows.inputs.confluent_wire import HEADER_BYTES, BadFrame, unframe
from dataflows.inputs.fields import (
    RAW_LIMIT,
    BadRecord,
    Invalid,
    SourceFormat,
    key_of,
    raw_text,
    ts_of,
)
from joins import Event, Side, content_id
from joins.spec import MAX_TS_MS, MIN_TS_MS

KafkaValueFormat = Literal["json", "confluent-avro"]
KAFKA_VALUE_FORMATS: tuple[KafkaValueFormat, ...] = get_args(KafkaValueFormat)

#: ``(offset, value)`` of one Kafka record; ``value`` is ``None`` for a tombstone.
KafkaValue = tuple[int, bytes | None]


class UnknownSchemaId(LookupError):
    """The registry does not know this schema id (the record is a dead letter)."""


class WriterSchemas(Protocol):
    """Writer schemas by Schema Registry id (parsed for fastavro, cached)."""

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed schema ``schema_id``; raises :class:`UnknownSchemaId` when
        the registry has none, anything else when it cannot be asked."""
        ...


def kafka_partition_name(side: Side, topic: str, partition: int) -> str:
    """The source partition name of one Kafka partition: ``side:topic:partition``
    (topic names cannot hold ``:``)."""
    return f"{side}:{topic}:{partition}"


def _avro_raw(value: bytes) -> str:
    # base64 grows 4/3: cut the bytes so that the text stays within RAW_LIMIT
    return base64.b64encode(value[: RAW_LIMIT // 4 * 3]).decode("ascii")


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
        self._writers: dict[int, Any] = {}
        self._reader = None
        if reader_schema is not None:
            try:
                self._reader = fastavro.parse_schema(reader_schema)
            except Exception as exc:  # fastavro raises several types on bad schemas
                msg = f"the {side} reader schema is not a valid Avro schema: {exc}"
                raise ConfigError(msg) from exc

    def decode(self, partition: str, values: Sequence[KafkaValue]) -> list[Event | Invalid]:
        """Events and dead letters of ``values``, in order."""
        if self.value_format == "json":
            return self._json(partition, values)
        return self._avro(partition, values)

    def _json(self, partition: str, values: Sequence[KafkaValue]) -> list[Event | Invalid]:
        side, fmt = self.side, self.fmt
        loads = json.loads
        key_field = fmt.key_fields[0] if len(fmt.key_fields) == 1 else None
        time_field = fmt.time_field
        fast_ms = fmt.time_unit == "ms"
        lo, hi = MIN_TS_MS, MAX_TS_MS
        out: list[Event | Invalid] = []
        append = out.append
        for offset, value in values:
            if value is None:
                append(Invalid(side, "value is null (a tombstone)", "", partition, offset))
                continue
            text = None
            try:
                if value[:1] == b"{" and value[1:2] != b"\x00":
                    text = value.decode("utf-8", "surrogatepass")
                    rec = loads(text)
                elif not value.strip():
                    append(Invalid(side, "value is empty", raw_text(value), partition, offset))
                    continue
                else:
                    rec = loads(value)
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
                append(Invalid(side, reason, raw_text(value), partition, offset))
                continue
            except UnicodeDecodeError as exc:
                reason = f"invalid UTF-8: {exc.reason} at byte {exc.start}"
                append(Invalid(side, reason, raw_text(value), partition, offset))
                continue
            except (ValueError, RecursionError) as exc:
                reason = f"invalid JSON: {type(exc).__name__}: {exc}"
                append(Invalid(side, reason, raw_text(value), partition, offset))
                continue
            if type(rec) is not dict:
                reason = f"record is not an object (got {type(rec).__name__})"
                append(Invalid(side, reason, raw_text(value), partition, offset))
                continue
            key = rec.get(key_field) if key_field is not None else None
            ts = rec.get(time_field)
            if (type(key) is str and key and fast_ms and type(ts) is int and lo <= ts <= hi
                    and key.isascii() and "\x00" not in key):
                raw = text if text is not None and text.isascii() else None
                append(Event(side, key, ts, content_id(value), rec, partition, offset, raw))
                continue
            try:
                append(Event(side, key_of(rec, fmt), ts_of(rec, fmt), content_id(value), rec,
                             partition, offset))
            except BadRecord as bad:
                append(Invalid(side, str(bad), raw_text(value), partition, offset))
        return out

    def _avro(self, partition: str, values: Sequence[KafkaValue]) -> list[Event | Invalid]:
        side, fmt, reader = self.side, self.fmt, self._reader
        schemas = self._schemas
        assert schemas is not None  # noqa: S101 - checked in __init__
        dumps = json.dumps
        read = fastavro.schemaless_reader
        out: list[Event | Invalid] = []
        append = out.append
        writers = self._writers
        for offset, value in values:
            if value is None:
                append(Invalid(side, "value is null (a tombstone)", "", partition, offset))
                continue
            try:
                schema_id = unframe(value)
            except BadFrame as bad:
                append(Invalid(side, str(bad), _avro_raw(value), partition, offset))
                continue
            writer = writers.get(schema_id)
            if writer is None:
                try:
                    writer = writers[schema_id] = schemas.writer_schema(schema_id)
                except UnknownSchemaId:
                    reason = f"confluent-avro: unknown schema id {schema_id}"
                    append(Invalid(side, reason, _avro_raw(value), partition, offset))
                    continue
            buf = io.BytesIO(value)
            buf.seek(HEADER_BYTES)
            try:
                datum = read(buf, writer, reader)
            except Exception as exc:  # fastavro raises many types on bad bytes
                what = ("cannot resolve to the reader schema"
                        if type(exc).__name__ == "SchemaResolutionError" else "cannot decode")
                reason = f"avro: {what} (writer schema id {schema_id}): {type(exc).__name__}: {exc}"
                append(Invalid(side, reason, _avro_raw(value), partition, offset))
                continue
            if buf.tell() != len(value):
                reason = (f"avro: {len(value) - buf.tell()} bytes left after the datum "
                          f"(writer schema id {schema_id})")
                append(Invalid(side, reason, _avro_raw(value), partition, offset))
                continue
            if type(datum) is not dict:
                reason = f"record is not an object (got {type(datum).__name__})"
                append(Invalid(side, reason, _avro_raw(value), partition, offset))
                continue
            canon = dumps(datum, sort_keys=True, separators=(",", ":"), default=str)
            try:
                append(Event(side, key_of(datum, fmt), ts_of(datum, fmt),
                             content_id(canon.encode()), datum, partition, offset))
            except BadRecord as bad:
                append(Invalid(side, str(bad), _avro_raw(value), partition, offset))
        return out
