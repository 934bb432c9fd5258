"""Issue 10, items 1-5, end to end through the real CLI: ``streamjoin run`` then
``streamjoin validate``, on inputs that lost or confused records before."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from dataflows.inputs import RAW_LIMIT_BYTES
from dataflows.outputs import raw_bytes_of, read_rows

pytestmark = pytest.mark.slow


def streamjoin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def run_and_validate(out: Path, *args: str) -> dict[str, Any]:
    res = streamjoin("run", "--out", str(out), "--shards", "4", "--how", "full", *args)
    assert res.returncode == 0, res.stderr
    check = streamjoin("validate", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
    summary: dict[str, Any] = json.loads((out / "run.json").read_text())
    return summary


def matches(out: Path) -> list[tuple[str, Any, Any]]:
    return sorted((r["key"], r["left"], r["right"]) for r in read_rows(out / "joined")
                  if r["kind"] == "match")


def test_jsonl_composite_keys_non_objects_and_exact_dead_letters(tmp_path: Path) -> None:
    """Items 1, 2 and 5: ("x|y","z") and ("x","y|z") do not join, 1 and "1" do;
    a null line, other non-objects, invalid UTF-8 and a 2 MiB line are dead
    letters whose bytes come back."""
    left = [
        {"a": "x|y", "b": "z", "ts": 1000, "n": 1},
        {"a": 1, "b": "q", "ts": 1000, "n": 2},
    ]
    right = [
        {"a": "x", "b": "y|z", "ts": 1500, "n": 3},
        {"a": "1", "b": "q", "ts": 1500, "n": 4},
    ]
    bad = [b"null", b"true", b"[1]", b'"s"', b'{"a":"\xff","b":"q","ts":1}',
           b'{"a":"x","b":"q","ts":1,"note":"\\ud800"}',  # not Unicode text
           b'{"a":"x","b":"' + b"y" * (2 * RAW_LIMIT_BYTES) + b'","ts":NaN}']
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(r) + "\n" for r in left))
    (tmp_path / "r.jsonl").write_bytes(
        b"".join(json.dumps(r).encode() + b"\n" for r in right) + b"\n".join(bad) + b"\n")
    out = tmp_path / "out"
    # Most of the right side is dead letters on purpose: allowed here.
    summary = run_and_validate(out, "--left", str(tmp_path / "l.jsonl"),
                               "--right", str(tmp_path / "r.jsonl"), "--key-field", "a,b",
                               "--max-invalid-fraction", "1")
    assert matches(out) == [('["1","q"]', left[1], right[1])]
    rows = sorted(read_rows(out / "joined"), key=lambda r: r["kind"])
    assert [(r["kind"], r["key"]) for r in rows] == [
        ("left_only", '["x|y","z"]'), ("match", '["1","q"]'), ("right_only", '["x","y|z"]')]
    assert summary["counters"]["invalid"] == {"left": 0, "right": len(bad)}
    dead = sorted(read_rows(out / "invalid"), key=lambda r: r["offset"])
    assert [d["reason"].split(" (")[0] for d in dead[:4]] == ["record is not an object"] * 4
    big = dead[-1]
    assert (big["raw_truncated"], big["raw_bytes"]) == (True, len(bad[-1]))
    assert bad[-1].startswith(raw_bytes_of(big))
    assert [raw_bytes_of(d) for d in dead[:-1]] == bad[:-1]
    assert dead[4]["raw_encoding"] == "base64"
    assert dead[5]["reason"].endswith("unpaired surrogate escape (not Unicode text)")


def test_csv_a_stray_quote_costs_one_line(tmp_path: Path) -> None:
    """Item 4: the rows after a stray quote are joined, not swallowed."""
    header = "id,key,ts\n"
    lefts = [f"{i},k{i},{1000 + i}" for i in range(300)]
    stray = '150,"k150,1150'
    lefts[150] = stray
    rights = [f"{i},k{i},{1500 + i}" for i in range(300)]
    (tmp_path / "l.csv").write_text(header + "\n".join(lefts) + "\n")
    (tmp_path / "r.csv").write_text(header + "\n".join(rights) + "\n")
    out = tmp_path / "out"
    summary = run_and_validate(out, "--left", str(tmp_path / "l.csv"),
                               "--right", str(tmp_path / "r.csv"), "--format", "csv",
                               "--upper", "1s")
    assert summary["counters"]["pairs"] == 299
    (dead,) = read_rows(out / "invalid")
    assert raw_bytes_of(dead) == stray.encode()
    assert dead["reason"] == (
        "csv: a quote opened on this line is not closed within 100 lines")


AVRO_SCHEMA: dict[str, Any] = {"type": "record", "name": "Imp", "fields": [
    {"name": "key", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9,
                               "scale": 2}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "blob", "type": "bytes"},
    {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
    {"name": "uid", "type": {"type": "fixed", "name": "Uid", "size": 16, "logicalType": "uuid"}},
]}


def _avro(path: Path, records: list[dict[str, Any]], per_block: int) -> list[tuple[int, int]]:
    """Write ``records`` to ``path``; return each block's ``(start, end)``."""
    fo = io.BytesIO()
    writer = fastavro.write.Writer(fo, fastavro.parse_schema(AVRO_SCHEMA), codec="deflate")
    for i, rec in enumerate(records):
        writer.write(rec)
        if (i + 1) % per_block == 0:
            writer.flush()
    writer.flush()
    path.write_bytes(fo.getvalue())
    return [(b.offset, b.offset + b.size) for b in fastavro.block_reader(io.BytesIO(fo.getvalue()))]


def test_avro_logical_types_join_and_a_damaged_block_costs_that_block(tmp_path: Path) -> None:
    """Item 3: timestamp-micros as the time field, decimals, dates, uuids, bytes
    and fixed are joined, retained and written out; a damaged block is one dead
    letter and the blocks after it are read."""
    keys = [str(uuid.UUID(int=i)) for i in range(40)]

    def rec(i: int, ts_us: int) -> dict[str, Any]:
        return {"key": keys[i], "ts": ts_us, "price": Decimal(i * 101 - 2000).scaleb(-2),
                "day": 19_000 + i, "blob": bytes([i, 255]), "tag": b"\x00" + bytes([i]),
                "uid": uuid.UUID(int=i + 1000).bytes}

    base = 1_700_000_000_000_000
    left_blocks = _avro(tmp_path / "l.avro", [rec(i, base + i * 1_000_000) for i in range(40)], 5)
    _avro(tmp_path / "r.avro", [rec(i, base + i * 1_000_000 + 500_123) for i in range(40)], 8)
    data = bytearray((tmp_path / "l.avro").read_bytes())
    start, end = left_blocks[3]  # records 15..19
    data[end - 1] ^= 0xFF  # its sync marker
    (tmp_path / "l.avro").write_bytes(bytes(data))
    out = tmp_path / "out"
    summary = run_and_validate(out, "--left", str(tmp_path / "l.avro"),
                               "--right", str(tmp_path / "r.avro"), "--format", "avro",
                               "--upper", "1s", "--time-unit", "s")
    assert summary["counters"]["pairs"] == 35
    (dead,) = read_rows(out / "invalid")
    assert raw_bytes_of(dead) == bytes(data[start:end])
    assert dead["raw_encoding"] == "base64"
    assert "its header says 5 records" in dead["reason"]
    assert json.loads(dead["avro_schema"]) == AVRO_SCHEMA
    assert dead["avro_codec"] == "deflate"
    pair = next(m for m in matches(out) if m[0] == keys[7])
    assert pair[1] == {"key": keys[7], "ts": base + 7_000_000, "price": "-12.93", "day": 19_007,
                       "blob": "B/8=", "tag": "AAc=",
                       "uid": str(uuid.UUID(int=1007))}
    assert pair[2]["ts"] == base + 7_500_123
    unmatched = sorted(r["right"]["key"] for r in read_rows(out / "joined")
                       if r["kind"] == "right_only")
    assert unmatched == sorted(keys[15:20])
