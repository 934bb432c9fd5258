"""Kafka record values to events or dead letters: JSON and Confluent Avro
(with a real registry over HTTP), schema evolution, exact dead letters."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.errors import ConfigError
from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.inputs.confluent_wire import BadFrame, frame, unframe
from dataflows.inputs.kafka_records import KafkaRecordDecoder, kafka_partition_name
from dataflows.kafka import LocalSchemaRegistry, SchemaRegistry
from joins import Event

FMT = SourceFormat("jsonl")
PART = kafka_partition_name("left", "imps", 3)
V1 = {"type": "record", "name": "Imp", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"}]}
V2 = {"type": "record", "name": "Imp", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"},
    {"name": "country", "type": "string", "default": "xx"}]}
NEEDS_DEVICE = {"type": "record", "name": "Imp", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"},
    {"name": "device", "type": "string"}]}


def avro_value(schema_id: int, schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), datum)
    return frame(schema_id, buf.getvalue())


def test_frame_round_trip_and_bad_frames() -> None:
    assert unframe(frame(7, b"xyz")) == 7
    assert frame(258, b"") == b"\x00\x00\x00\x01\x02"
    with pytest.raises(BadFrame, match="shorter than the 5-byte header"):
        unframe(b"\x00\x00\x01")
    with pytest.raises(BadFrame, match="unknown magic byte 0x7b"):
        unframe(b'{"key": 1}')
    with pytest.raises(ValueError, match="4-byte header"):
        frame(2**32, b"")


def test_json_values() -> None:
    decoder = KafkaRecordDecoder("left", FMT, "json")
    values = [
        (10, b'{"key":"a","ts":5}'),
        (11, '{"key":"é","ts":"6"}'.encode()),  # non-ASCII key, string ts: the slow path
        (12, b"not json"),
        (13, None),
        (14, b"  "),
        (15, b"[1,2]"),
        (16, b'{"key":"a"}'),
        (17, b'{"key":"a","ts":5}'),
    ]
    out = decoder.decode(PART, values)
    events = [o for o in out if isinstance(o, Event)]
    bad = {o.offset: o for o in out if isinstance(o, Invalid)}
    assert [(e.key, e.ts, e.offset, e.partition) for e in events] == [
        ("a", 5, 10, "left:imps:3"), ("é", 6, 11, "left:imps:3"), ("a", 5, 17, "left:imps:3")]
    assert events[0].eid == events[2].eid  # same bytes, same identity
    assert events[0].record_json == '{"key":"a","ts":5}'
    assert {o: b.reason for o, b in bad.items()} == {
        12: "invalid JSON: Expecting value at column 1",
        13: "value is null (a tombstone)",
        14: "value is empty",
        15: "record is not an object (got array)",
        16: "missing field 'ts'",
    }
    assert bad[12].raw == b"not json"
    assert all(b.partition == "left:imps:3" for b in bad.values())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries(
    {"key": st.one_of(st.text(min_size=0, max_size=5), st.integers(-5, 5), st.none()),
     "ts": st.one_of(st.integers(-10, 2**45), st.text(max_size=4), st.floats(allow_nan=False))},
    optional={"x": st.text(max_size=3)}), max_size=8))
def test_json_values_read_like_json_lines_files(tmp_path_factory: Any, records: list[dict[str, Any]]
                                                ) -> None:
    """The field rules are one: a value decodes to the event (or the reason) its
    line would in a JSON Lines file."""
    lines = [json.dumps(r, separators=(",", ":")).encode() for r in records]
    path = tmp_path_factory.mktemp("jl") / "in.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    from_file = [item for batch, _ in read_batches(str(path), "left", FMT, PART) for item in batch]
    from_kafka = KafkaRecordDecoder("left", FMT, "json").decode(
        PART, list(enumerate(lines)))

    def shape(item: Event | Invalid) -> tuple[Any, ...]:
        if isinstance(item, Event):
            return ("event", item.key, item.ts, item.eid, item.record)
        return ("invalid", item.reason, item.raw)

    assert [shape(i) for i in from_kafka] == [shape(i) for i in from_file]


def test_confluent_avro_evolution_and_dead_letters(registry: LocalSchemaRegistry) -> None:
    subject = f"imps-{uuid.uuid4().hex[:8]}-value"
    client = SchemaRegistry(registry.url)
    v1 = client.register(subject, V1)
    v2 = client.register(subject, V2)
    other = client.register(f"other-{uuid.uuid4().hex[:8]}", NEEDS_DEVICE)
    decoder = KafkaRecordDecoder("left", FMT, "confluent-avro", client, reader_schema=V2)
    good_v1 = avro_value(v1, V1, {"key": "k", "ts": 1000})
    good_v2 = avro_value(v2, V2, {"key": "k", "ts": 1000, "country": "xx"})
    values = [
        (0, good_v1),
        (1, good_v2),
        (2, avro_value(v2, V2, {"key": "k", "ts": 2000, "country": "se"})),
        (3, b"\x01" + good_v1[1:]),  # unknown magic byte
        (4, frame(999_999, good_v1[5:])),  # unknown schema id
        (5, good_v1[:3]),  # shorter than the header
        (6, good_v1[:-1]),  # datum cut short
        (7, good_v1 + b"\x00"),  # bytes after the datum
        (8, None),
    ]
    out = decoder.decode(PART, values)
    events = [o for o in out if isinstance(o, Event)]
    bad = {o.offset: o for o in out if isinstance(o, Invalid)}
    # v1 records read as v2 (the default fills the new field) ...
    assert events[0].record == {"key": "k", "ts": 1000, "country": "xx"}
    # ... and keep the identity of the same record written with v2
    assert events[0].eid == events[1].eid
    assert events[2].record["country"] == "se"
    assert sorted(bad) == [3, 4, 5, 6, 7, 8]
    assert bad[3].reason == "confluent-avro: unknown magic byte 0x01 (expected 0x00)"
    assert bad[4].reason == "confluent-avro: unknown schema id 999999"
    assert "shorter than the 5-byte header" in bad[5].reason
    assert bad[6].reason.startswith(f"avro: cannot decode (writer schema id {v1})")
    assert bad[7].reason == f"avro: 1 bytes left after the datum (writer schema id {v1})"
    # exact bytes, with topic, partition and offset
    for offset, value in values[3:8]:
        assert value is not None
        assert bad[offset].raw == value
        assert bad[offset].binary
        assert bad[offset].partition == "left:imps:3"
    # A writer schema the reader cannot resolve: each record a dead letter with the reason.
    needs = KafkaRecordDecoder("left", FMT, "confluent-avro", client, reader_schema=NEEDS_DEVICE)
    [resolved] = needs.decode(PART, [(9, good_v1)])
    assert isinstance(resolved, Invalid)
    assert resolved.reason.startswith(
        f"avro: cannot resolve to the reader schema (writer schema id {v1})")
    # Without a reader schema each record reads as written.
    [as_written] = KafkaRecordDecoder("left", FMT, "confluent-avro", client).decode(
        PART, [(10, avro_value(other, NEEDS_DEVICE, {"key": "z", "ts": 1, "device": "tv"}))])
    assert isinstance(as_written, Event)
    assert as_written.record == {"key": "z", "ts": 1, "device": "tv"}


def test_avro_needs_a_registry_and_a_valid_reader_schema(registry: LocalSchemaRegistry) -> None:
    with pytest.raises(ConfigError, match="--schema-registry"):
        KafkaRecordDecoder("left", FMT, "confluent-avro")
    with pytest.raises(ConfigError, match="reader schema is not a valid Avro schema"):
        KafkaRecordDecoder("left", FMT, "confluent-avro", SchemaRegistry(registry.url),
                           reader_schema={"type": "record"})
    with pytest.raises(ConfigError, match="unknown Kafka value format"):
        KafkaRecordDecoder("left", FMT, "protobuf")  # type: ignore[arg-type]
