"""Avro logical types (issue 10, item 3): records are JSON-safe and lossless, and a
``timestamp-*`` time field states its own unit."""

from __future__ import annotations

import base64
import io
import json
import uuid
from datetime import UTC, date, datetime, time
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.inputs.avro_values import decimal_text
from joins import Event, content_id
from state import RocksStore
from tests.budgets import small_budget

AVRO = SourceFormat("avro")

SCHEMA: dict[str, Any] = {"type": "record", "name": "Play", "namespace": "t", "fields": [
    {"name": "key", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9,
                               "scale": 2}},
    {"name": "fprice", "type": ["null", {"type": "fixed", "name": "Money", "size": 8,
                                         "logicalType": "decimal", "precision": 18,
                                         "scale": 4}]},
    {"name": "blob", "type": "bytes"},
    {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
    {"name": "again", "type": "Digest"},
    {"name": "tags", "type": {"type": "map", "values": ["null", "bytes", "long"]}},
    {"name": "items", "type": {"type": "array", "items": {
        "type": "record", "name": "Item", "fields": [
            {"name": "n", "type": "int"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "when", "type": ["null", {"type": "long",
                                               "logicalType": "timestamp-micros"}]}]}}},
    {"name": "ratio", "type": "float"},
]}

KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
MS = 1_714_979_289_123
RECORD: dict[str, Any] = {
    "key": str(KEY), "ts": WHEN, "at_us": WHEN, "local": MS,
    "day": date(2024, 5, 6), "tm": time(7, 8, 9, 123000), "tu": time(7, 8, 9, 123456),
    "price": Decimal("-1234.50"), "fprice": Decimal("0.0001"), "blob": b"\x00\xff\x10",
    "digest": b"\xde\xad\xbe\xef", "again": b"abcd", "tags": {"a": None, "b": b"\x01", "c": 5},
    "items": [{"n": 1, "kind": "B", "when": WHEN}, {"n": 2, "kind": "A", "when": None}],
    "ratio": 0.5,
}
#: The record as the decoder gives it: Avro's underlying values, except decimals
#: (exact strings), bytes and fixed (base64).
EXPECTED: dict[str, Any] = {
    "key": str(KEY), "ts": MS, "at_us": MS * 1000 + 456, "local": MS, "day": 19849,
    "tm": 25_689_123, "tu": 25_689_123_456, "price": "-1234.50", "fprice": "0.0001",
    "blob": "AP8Q", "digest": "3q2+7w==", "again": "YWJjZA==",
    "tags": {"a": None, "b": "AQ==", "c": 5},
    "items": [{"n": 1, "kind": "B", "when": MS * 1000 + 456}, {"n": 2, "kind": "A", "when": None}],
    "ratio": 0.5,
}


def avro_file(path: Path, schema: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    with path.open("wb") as fo:
        fastavro.writer(fo, fastavro.parse_schema(schema), records)
    return path


def read_all(path: Path, fmt: SourceFormat = AVRO) -> list[Event | Invalid]:
    return [x for b, _ in read_batches(str(path), "left", fmt, "p") for x in b]


def test_logical_types_decode_to_json_safe_lossless_values(tmp_path: Path) -> None:
    (event,) = read_all(avro_file(tmp_path / "in.avro", SCHEMA, [RECORD]))
    assert isinstance(event, Event)
    assert event.record == EXPECTED
    assert json.loads(json.dumps(event.record, allow_nan=False)) == EXPECTED
    assert event.key == str(KEY)
    assert event.ts == MS
    canon = json.dumps(EXPECTED, sort_keys=True, separators=(",", ":"))
    assert event.eid == content_id(canon.encode())


@pytest.mark.parametrize(
    ("logical", "unit_value", "configured"),
    [
        ("timestamp-millis", MS, "s"),
        ("local-timestamp-millis", MS, "iso"),
        ("timestamp-micros", MS * 1000 + 999, "ms"),
        ("local-timestamp-micros", MS * 1000, "s"),
        ("timestamp-nanos", MS * 1_000_000 + 999_999, "ms"),
        ("local-timestamp-nanos", MS * 1_000_000, "us"),
    ],
)
def test_a_timestamp_time_field_states_its_own_unit(
    tmp_path: Path, logical: str, unit_value: int, configured: str
) -> None:
    schema = {"type": "record", "name": "E", "fields": [
        {"name": "key", "type": "string"},
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": logical}]}]}
    # fastavro writes an int as the underlying long of any timestamp type
    path = avro_file(tmp_path / "in.avro", schema, [{"key": "k", "ts": unit_value},
                                                    {"key": "k", "ts": None}])
    event, null = read_all(path, SourceFormat("avro", time_unit=configured))  # type: ignore[arg-type]
    assert isinstance(event, Event)
    assert event.ts == MS
    assert event.record["ts"] == unit_value
    assert isinstance(null, Invalid)
    assert null.reason == "ts is null"


def _long(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), b""
    while z > 0x7F:
        out += bytes([(z & 0x7F) | 0x80])
        z >>= 7
    return out + bytes([z])


def spliced(path: Path, header_schema: dict[str, Any], data_schema: dict[str, Any],
            records: list[dict[str, Any]]) -> Path:
    """A file whose header holds ``header_schema`` (written by hand: fastavro
    refuses some schemas the specification allows) and whose blocks hold
    ``records`` written with ``data_schema``."""
    sync = b"0123456789abcdef"
    data, empty = io.BytesIO(), io.BytesIO()
    fastavro.writer(data, fastavro.parse_schema(data_schema), records, sync_marker=sync)
    fastavro.writer(empty, fastavro.parse_schema(data_schema), [], sync_marker=sync)
    meta = {b"avro.schema": json.dumps(header_schema).encode(), b"avro.codec": b"null"}
    header = b"Obj\x01" + _long(len(meta))
    for k, v in meta.items():
        header += _long(len(k)) + k + _long(len(v)) + v
    header += _long(0) + sync
    path.write_bytes(header + data.getvalue()[len(empty.getvalue()):])
    return path


def test_a_plain_long_time_field_follows_the_configured_unit(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "E", "fields": [
        {"name": "key", "type": "string"}, {"name": "ts", "type": "long"}]}
    path = avro_file(tmp_path / "in.avro", schema, [{"key": "k", "ts": 1_714_979_289}])
    (event,) = read_all(path, SourceFormat("avro", time_unit="s"))
    assert isinstance(event, Event)
    assert event.ts == 1_714_979_289_000


def test_timestamps_beyond_datetime_range_decode(tmp_path: Path) -> None:
    """Year 10000 and later: no ``datetime`` is built, the long is the value."""
    schema = {"type": "record", "name": "E", "fields": [
        {"name": "key", "type": "string"},
        {"name": "ts", "type": "long"},
        {"name": "far", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
    far = 400_000_000_000_000
    (event,) = read_all(avro_file(tmp_path / "in.avro", schema, [{"key": "k", "ts": 1,
                                                                  "far": far}]))
    assert isinstance(event, Event)
    assert event.record["far"] == far


def test_an_invalid_decimal_is_its_underlying_bytes(tmp_path: Path) -> None:
    """The specification: a decimal whose scale exceeds its precision is ignored."""
    fields = [{"name": "key", "type": "string"}, {"name": "ts", "type": "long"}]
    bad = {"type": "record", "name": "E", "fields": [*fields, {"name": "d", "type": {
        "type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 3}}]}
    plain = {"type": "record", "name": "E", "fields": [*fields, {"name": "d", "type": "bytes"}]}
    path = spliced(tmp_path / "in.avro", bad, plain, [{"key": "k", "ts": 1, "d": b"\x01\x02"}])
    (event,) = read_all(path)
    assert isinstance(event, Event)
    assert event.record["d"] == base64.b64encode(b"\x01\x02").decode()


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**40), max_value=10**40), st.integers(0, 30))
def test_decimal_text_is_exact(unscaled: int, scale: int) -> None:
    text = decimal_text(unscaled, scale)
    assert Decimal(text) == Decimal(unscaled).scaleb(-scale, Context(prec=100))
    assert len(text.partition(".")[2]) == scale


def test_records_with_logical_types_are_stored_and_read_back(tmp_path: Path) -> None:
    """Retained in RocksDB (as JSON text) and read back equal."""
    (event,) = read_all(avro_file(tmp_path / "in.avro", SCHEMA, [RECORD]))
    assert isinstance(event, Event)
    store = RocksStore(str(tmp_path / "db"), budget=small_budget())
    try:
        store.insert(event, False)
        store.commit()
        (back,) = store.scan("left", event.key, event.ts, event.ts)
        assert back.event.record == EXPECTED
    finally:
        store.close()
