"""Output records: the contract's fields, their Avro encoding, and reading back."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest

from dataflows.inputs import Invalid
from dataflows.outputs import read_rows, records
from joins import Event, Late, Matched, Unmatched, content_id, match_id, unmatched_id

L = Event("left", "k", 10, content_id(b"l"), {"a": 1, "ts": 10}, "left:0:x", 3)
R = Event("right", "k", 20, content_id(b"r"),
          {"b": "\ud800", "when": datetime(2024, 1, 1, tzinfo=UTC)}, "right:0:y", 7)
CONTRACT = {"key", "kind", "left", "right", "left_ts", "right_ts", "id"}


def test_joined_record_of_a_pair() -> None:
    row = records.joined_record(Matched(L, R))
    assert CONTRACT <= set(row)
    assert row["key"] == "k"
    assert row["kind"] == "match"
    assert (row["left"], row["right"]) == (L.record, R.record)
    assert (row["left_ts"], row["right_ts"]) == (10, 20)
    assert row["id"] == match_id(L, R)
    assert (row["left_eid"], row["right_eid"]) == (L.eid.hex(), R.eid.hex())
    assert (row["left_partition"], row["right_offset"]) == ("left:0:x", 7)


@pytest.mark.parametrize(("event", "kind"), [(L, "left_only"), (R, "right_only")])
def test_joined_record_of_an_unmatched_row(event: Event, kind: str) -> None:
    row = records.joined_record(Unmatched(event))
    own, other = ("left", "right") if event.side == "left" else ("right", "left")
    assert row["kind"] == kind
    assert row["id"] == unmatched_id(event)
    assert row[own] == event.record
    assert row[other] is None
    assert row[f"{other}_ts"] is None
    assert row[f"{own}_ts"] == event.ts


def test_late_and_invalid_records() -> None:
    late = records.late_record(Late(L, 100, 90))
    assert late == {"side": "left", "reason": "late", "watermark_ms": 100, "lateness_ms": 90,
                    "record": L.record, "key": "k", "ts": 10, "partition": "left:0:x",
                    "offset": 3, "eid": L.eid.hex()}
    bad = records.invalid_record(Invalid("right", "missing field 'ts'", b"{}", "p", 5))
    assert bad == {"side": "right", "reason": "missing field 'ts'", "raw": "{}",
                   "raw_encoding": "utf-8", "raw_bytes": 2, "raw_truncated": False,
                   "partition": "p", "offset": 5, "avro_schema": None, "avro_codec": None}


def test_json_line_is_compact_ascii_and_total() -> None:
    line = records.json_line(records.joined_record(Matched(L, R)))
    assert "\n" not in line
    assert line.isascii()
    assert ", " not in line
    back = json.loads(line)
    assert back["right"]["when"] == "2024-01-01 00:00:00+00:00"
    assert back["right"]["b"] == "\ud800"


def test_avro_round_trip_gives_the_jsonl_shape(tmp_path: Path) -> None:
    rows = {
        "joined": [records.joined_record(Matched(L, R)), records.joined_record(Unmatched(L))],
        "late": [records.late_record(Late(R, 100, 80))],
        "invalid": [records.invalid_record(Invalid("left", "x", b"raw", "p", 1)),
                    records.invalid_record(Invalid("left", "y", b"\xff\x00", "p", 2,
                                                   avro_schema='"long"', avro_codec="null"))],
    }
    for kind, kind_rows in rows.items():
        for fmt in ("avro", "jsonl"):
            (tmp_path / fmt / kind).mkdir(parents=True)
            with (tmp_path / fmt / kind / f"part.{fmt}").open("wb") as fo:
                if fmt == "avro":
                    records.write_avro(fo, kind, kind_rows)  # type: ignore[arg-type]
                else:
                    records.write_jsonl(fo, kind_rows)
        from_avro = list(read_rows(tmp_path / "avro" / kind))
        from_jsonl = list(read_rows(tmp_path / "jsonl" / kind))
        assert from_avro == from_jsonl
        assert len(from_avro) == len(kind_rows)


def test_builders_for_avro_write_with_the_published_schemas() -> None:
    fo = io.BytesIO()
    datum = records.BUILDERS[("joined", "avro")](Matched(L, R))
    fastavro.writer(fo, fastavro.parse_schema(records.JOINED_SCHEMA), [datum])
    fo.seek(0)
    (back,) = list(fastavro.reader(fo))
    assert isinstance(back, dict)
    assert json.loads(back["left"]) == L.record
    assert records.BUILDERS[("joined", "jsonl")] is records.joined_record
