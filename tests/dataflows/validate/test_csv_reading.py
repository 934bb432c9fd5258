"""What validate makes of CSV inputs: strict RFC 4180 quoting, records over
several lines, the bound on what a stray quote may swallow, exact bytes and
offsets of dead letters; and a seeded comparison of its field splitting (SQL)
with Python's ``csv`` module in strict mode."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataflows.errors import ValidationError
from dataflows.validate.csv_framing import MAX_RECORD_LINES
from dataflows.validate.reading import read_inputs
from dataflows.validate.run_file import SideInputs
from joins import content_id


def _side(path: Path, keys: tuple[str, ...] = ("key",), unit: str = "ms") -> SideInputs:
    return SideInputs("right", (str(path),), "csv", keys, "ts", unit)


def _read(path: Path, data: bytes, **kw: Any) -> tuple[dict[int, Any], dict[int, Any]]:
    """Events and dead letters of the CSV file ``data``, by byte offset."""
    path.write_bytes(data)
    events, dead = read_inputs((_side(path, **kw),))
    return {e.offset: e for e in events}, {d.offset: d for d in dead}


def _fp(db: Any, header: list[str], row: list[str]) -> int:
    """The fingerprint validate gives the record ``dict(zip(header, row))``."""
    rec = dict(zip(header, row, strict=True))
    args = [x for kv in rec.items() for x in kv]
    marks = ", ".join("?" for _ in args)
    return int(db.execute(f"SELECT hash(json(json_object({marks})))", args).fetchone()[0])


def test_csv_rules(tmp_path: Path) -> None:
    rows = [
        (b"1,a,5", ("a", 5)),
        (b'2,"a,b",6', ("a,b", 6)),
        (b'3,"q""uote",7', ('q"uote', 7)),
        (b'4,a"b,8', ('a"b', 8)),  # a quote inside an unquoted value is a character
        (b'5,"ab"c,9', None),  # text after a closing quote: strict RFC 4180 refuses it
        (b"6,a,", None),
        (b"7,,5", None),
        (b"8,a", None),
        (b"9,a,5,x", None),
        (b'10,"multi\nline",10', ("multi\nline", 10)),
        (b'11,"crlf\r\nline",11', ("crlf\r\nline", 11)),  # the line break kept as it is
        (b"12,a\rb,12", None),
        (b"13,a,13\r", ("a", 13)),
        (b"\r", "blank"),
        (b"", "blank"),
        (b" ", None),  # one column
        (b"17,\xff,17", None),
        (b"19,k\x00,19", None),
        (b"20,\xc3\xa9,20", ("\u00e9", 20)),
        (b"21,a, 21 ", ("a", 21)),
        (b'22,"q",22\r\r', ("q", 22)),
    ]
    data = b"id,key,ts\n" + b"".join(r + b"\n" for r, _ in rows)
    events, dead = _read(tmp_path / "in.csv", data)
    off = len(b"id,key,ts\n")
    db = duckdb.connect()
    for raw, want in rows:
        record = raw[:-1] if raw[-1:] == b"\r" else raw
        if want == "blank":
            assert off not in events
            assert off not in dead
        elif want is None:
            assert off in dead, (raw, events.get(off))
            assert dead[off].raw == record
            assert dead[off].partition == "right:0:in.csv"
        else:
            assert off in events, (raw, dead.get(off))
            e = events[off]
            assert (e.key, e.ts) == want
            assert e.eid == content_id(record)
            row = next(csv.reader([record.decode() + "\n"], strict=True))
            assert e.fp == _fp(db, ["id", "key", "ts"], row)
        off += len(raw) + 1
    assert len(events) + len(dead) == sum(1 for _, w in rows if w != "blank")


def test_a_stray_quote_costs_its_line_alone(tmp_path: Path) -> None:
    good = [f"{i},k{i},{i}".encode() for i in range(6)]
    lines = [good[0], b'1,"stray,1', *good[1:5], b'7,"q",7', good[5]]
    data = b"id,key,ts\n" + b"\n".join(lines) + b"\n"
    events, dead = _read(tmp_path / "in.csv", data)
    stray = data.index(b'1,"stray')
    assert list(dead) == [stray]
    assert dead[stray].raw == b'1,"stray,1'
    assert sorted(e.key for e in events.values()) == sorted(
        [f"k{i}" for i in range(6)] + ["q"])


def test_a_quote_open_past_the_bound_or_the_end(tmp_path: Path) -> None:
    # Unbounded, the quote would close on the line `end",5` and make one record of
    # three columns out of all the lines before it.
    lines = [b'0,"open,0'] + [f"{i},k{i},{i}".encode() for i in range(1, MAX_RECORD_LINES + 20)]
    data = (b"id,key,ts\n" + b"\n".join(lines) + b'\nend",5\n'
            + b'9,"open at the end,9')
    events, dead = _read(tmp_path / "in.csv", data)
    assert [d.raw for d in dead.values()] == [b'0,"open,0', b'end",5', b'9,"open at the end,9']
    assert len(events) == MAX_RECORD_LINES + 19


def test_records_over_several_lines(tmp_path: Path) -> None:
    many = b"\n".join([b'1,"' + b"x" * 3, *[b"y"] * (MAX_RECORD_LINES - 2), b'z",1'])
    wrong = b'2,"two\nlines",2,extra'
    data = b"id,key,ts\n" + many + b"\n" + wrong + b"\n3,k,3\n"
    events, dead = _read(tmp_path / "in.csv", data)
    first = data.index(b'1,"')
    assert events[first].key.count("\n") == MAX_RECORD_LINES - 1  # within the bound
    assert dead[data.index(wrong)].raw == b'2,"two'  # wrong column count: its first line
    assert dead[data.index(b'lines",2')].raw == b'lines",2,extra'  # then the next line
    assert events[data.index(b"3,k,3")].key == "k"


def test_repeated_header_names_take_the_last_column(tmp_path: Path) -> None:
    events, _ = _read(tmp_path / "in.csv", b"key,ts,key\na,1,b\n")
    assert events[len(b"key,ts,key\n")].key == "b"


def test_a_header_without_the_key_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="has no column 'key'"):
        _read(tmp_path / "in.csv", b"id,ts\n1,2\n")


def test_composite_csv_keys(tmp_path: Path) -> None:
    events, _ = _read(tmp_path / "in.csv", b'a,b,ts\n"x|y",z,1\nx,y|z,1\n', keys=("a", "b"))
    assert sorted(e.key for e in events.values()) == ['["x","y|z"]', '["x|y","z"]']


def test_field_splitting_matches_python_csv_strict(tmp_path: Path) -> None:
    """Seeded single-line rows of quotes, commas, CRs and text, against
    ``csv.reader(..., strict=True)``: the same rows are valid, with the same values."""
    rng = random.Random(3)
    alphabet = ["a", "b", ",", '"', '""', "\r", " ", "\u00e9", "\x00", "x,y"]
    tails = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
                    for _ in range(1500)})

    def open_quote(line: str) -> bool:  # it would run on into the next line
        try:
            list(csv.reader([line + "\n"], strict=True))
        except csv.Error as exc:
            return str(exc) == "unexpected end of data"
        return False

    lines = [line for line in (f"k{i},{i},{t}" for i, t in enumerate(tails))
             if not open_quote(line)]
    data = ("key,ts,x,y\n" + "\n".join(lines) + "\n").encode()
    events, dead = _read(tmp_path / "in.csv", data)
    by_key = {e.key: e for e in events.values()}
    db = duckdb.connect()
    checked = 0
    for line in lines:
        try:
            rows = list(csv.reader([line + "\n"], strict=True))
            row: list[str] | None = rows[0] if len(rows) == 1 and len(rows[0]) == 4 else None
        except csv.Error:
            row = None
        key = line.split(",")[0]
        if row is None or row[0] != key:
            assert key not in by_key, line
            continue
        assert key in by_key, (line, row)
        assert by_key[key].fp == _fp(db, ["key", "ts", "x", "y"], row), (line, row)
        checked += 1
    assert checked > 100
    assert len(dead) > 100
