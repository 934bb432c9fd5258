"""What validate makes of Avro inputs, read with fastavro directly: logical types
as JSON-safe values (and a ``timestamp-*`` time field in its own unit), dead
letters holding a record's binary encoding, and damage confined to the block it
hits (a broken record, a wrong sync marker), or to the file (its header)."""

from __future__ import annotations

import base64
import io
import json
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import fastavro
import pytest

from dataflows.validate.reading import read_inputs
from dataflows.validate.run_file import SideInputs
from joins import content_id

SCHEMA = {
    "type": "record", "name": "Ev", "fields": [
        {"name": "key", "type": ["null", "string"]},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 6, "scale": 2}},
        {"name": "small", "type": {"type": "fixed", "name": "F4", "size": 4,
                                   "logicalType": "decimal", "precision": 4, "scale": 3}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "blob", "type": "bytes"},
        {"name": "pair", "type": {"type": "fixed", "name": "F2", "size": 2}},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "later", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
    ],
}
WHEN = datetime(2024, 2, 29, 12, 30, 15, 123000, tzinfo=UTC)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _record(key: str | None, n: int) -> dict[str, Any]:
    return {"key": key, "ts": WHEN, "day": date(2024, 2, 29), "amount": Decimal("-0.50"),
            "small": Decimal("1.005"), "id": str(UID), "blob": b"\x00\xff" + bytes([n]),
            "pair": b"ab", "at": time(1, 2, 3, 4000), "later": None}


def _json_safe(key: str | None, n: int) -> dict[str, Any]:
    """The record as validate expects it decoded (the lead's mapping)."""
    return {"key": key, "ts": 1_709_209_815_123, "day": 19_782, "amount": "-0.50",
            "small": "1.005", "id": str(UID),
            "blob": base64.b64encode(b"\x00\xff" + bytes([n])).decode(), "pair": "YWI=",
            "at": 3_723_004, "later": None}


def _write(path: Path, records: list[dict[str, Any]], blocks: int = 1,
           codec: str = "null", schema: Any = SCHEMA) -> None:
    parsed = fastavro.parse_schema(schema)
    with path.open("wb") as fo:
        writer = fastavro.write.Writer(fo, parsed, codec=codec)
        per = max(1, len(records) // blocks)
        for i, rec in enumerate(records):
            writer.write(rec)
            if (i + 1) % per == 0:
                writer.flush()
        writer.flush()


def _side(path: Path, unit: str = "s") -> SideInputs:
    return SideInputs("left", (str(path),), "avro", ("key",), "ts", unit)


def _blocks(path: Path) -> list[tuple[int, int, int]]:
    """(start, end, records) of each block, as fastavro's block reader sees them."""
    data = path.read_bytes()
    with path.open("rb") as fo:
        found = [(b.offset, b.num_records) for b in fastavro.block_reader(fo)]
    ends = [start for start, _ in found[1:]] + [len(data)]
    return [(start, end, n) for (start, n), end in zip(found, ends, strict=True)]


def test_logical_types_are_json_safe_and_the_time_field_states_its_unit(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write(path, [_record("k", 0), _record("j", 1)])
    events, dead = read_inputs((_side(path, unit="s"),))  # the logical type wins over "s"
    assert not dead
    assert [(e.key, e.ts, e.offset) for e in events] == [
        ("k", 1_709_209_815_123, 0), ("j", 1_709_209_815_123, 1)]
    db = duckdb.connect()
    for e, key, n in zip(events, "kj", range(2), strict=True):
        want = _json_safe(key, n)
        canon = json.dumps(want, sort_keys=True, separators=(",", ":"))
        assert e.eid == content_id(canon.encode())
        fp = db.execute("SELECT hash(json(?))", [json.dumps(want)]).fetchone()
        assert fp is not None
        assert e.fp == fp[0]


def test_timestamp_micros_time_field_is_floored_to_the_ms(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "M", "fields": [
        {"name": "key", "type": "string"},
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]}]}
    path = tmp_path / "in.avro"
    _write(path, [{"key": "a", "ts": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},
                  {"key": "b", "ts": None}], schema=schema)
    events, dead = read_inputs((_side(path, unit="iso"),))
    assert [(e.key, e.ts) for e in events] == [("a", -1)]
    assert [d.offset for d in dead] == [1]


def test_a_record_that_is_no_event_keeps_its_binary_encoding(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    records = [_record("k", 0), _record(None, 1), _record("k", 2)]
    _write(path, records)
    events, dead = read_inputs((_side(path),))
    assert [e.offset for e in events] == [0, 2]
    (bad,) = dead
    encoded = io.BytesIO()
    fastavro.schemaless_writer(encoded, fastavro.parse_schema(SCHEMA), records[1])
    assert (bad.offset, bad.raw, bad.raw_bytes) == (1, encoded.getvalue(), len(encoded.getvalue()))


def test_a_datum_that_is_not_a_record_is_a_dead_letter(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write(path, ["a", "b"], schema="string")
    events, dead = read_inputs((_side(path),))
    assert not events
    assert [(d.offset, d.raw) for d in dead] == [(0, b"\x02a"), (1, b"\x02b")]


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_a_broken_record_costs_its_block(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "in.avro"
    _write(path, [_record(f"k{i}", i) for i in range(9)], blocks=3, codec=codec)
    (_, _, n1), (start, end, n2), _ = _blocks(path)
    data = bytearray(path.read_bytes())
    data[end - 16 - 5] ^= 0xFF  # a byte inside block 2's data
    path.write_bytes(bytes(data))
    events, dead = read_inputs((_side(path),))
    assert [e.offset for e in events] == [0, 1, 2, 6, 7, 8]
    (bad,) = dead
    assert (bad.offset, bad.raw) == (n1, bytes(data[start:end]))
    assert n2 == 3


def test_a_wrong_sync_marker_costs_its_block(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write(path, [_record(f"k{i}", i) for i in range(9)], blocks=3)
    _, (start, end, _n), _ = _blocks(path)
    data = bytearray(path.read_bytes())
    data[end - 1] ^= 0xFF  # the last byte of block 2's sync marker
    path.write_bytes(bytes(data))
    events, dead = read_inputs((_side(path),))
    (bad,) = dead
    assert (bad.offset, bad.raw) == (3, bytes(data[start:end]))
    assert [e.offset for e in events] == [0, 1, 2, 6, 7, 8]  # its count held: 3 indexes


def test_a_count_that_cannot_fit_is_damage_of_one_index(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write(path, [_record(f"k{i}", i) for i in range(9)], blocks=3)
    _, (start, end, n), _ = _blocks(path)
    data = bytearray(path.read_bytes())
    assert data[start] == 2 * n  # the count, a one-byte zig-zag varint
    data[start] = 2 * 63  # 63 records of at least 14 bytes cannot fit in the block
    path.write_bytes(bytes(data))
    events, dead = read_inputs((_side(path),))
    (bad,) = dead
    assert (bad.offset, bad.raw) == (3, bytes(data[start:end]))
    assert [e.offset for e in events] == [0, 1, 2, 4, 5, 6]  # an untrusted count: one index


def test_a_long_damaged_stretch_keeps_its_first_mib(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write(path, [_record("k", 0)])
    (start, _end, _n), = _blocks(path)
    data = path.read_bytes()[:start] + b"\x02" + b"\xff" * (2 << 20)  # no sync marker follows
    path.write_bytes(data)
    events, dead = read_inputs((_side(path),))
    (bad,) = dead
    assert not events
    assert (bad.offset, bad.raw, bad.raw_bytes) == (0, data[start:start + (1 << 20)],
                                                    len(data) - start)


@pytest.mark.parametrize("damage", ["header", "codec"])
def test_an_unreadable_file_is_one_dead_letter(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "in.avro"
    _write(path, [_record("k", 0)], codec="deflate")
    data = path.read_bytes()
    data = b"Obj\x02" + data[4:] if damage == "header" else data.replace(b"deflate", b"zzzzzzz", 1)
    path.write_bytes(data)
    events, dead = read_inputs((_side(path),))
    assert not events
    (bad,) = dead
    assert (bad.offset, bad.raw, bad.raw_bytes) == (0, data, len(data))
