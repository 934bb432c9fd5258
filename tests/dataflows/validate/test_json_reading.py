"""What validate makes of JSON Lines inputs (:func:`dataflows.validate.reading.read_inputs`):
which lines are events (with which key and time) and which are dead letters
(with their exact bytes and offsets), table-driven, plus seeded comparisons of
its integer and ISO-8601 times with Python's ``int()`` and
``datetime.fromisoformat`` (the rules the contract names)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dataflows.validate.reading import read_inputs
from dataflows.validate.run_file import SideInputs
from joins import content_id

EVENT = "event"
DEAD = "dead"

#: (line, expected): ("event", key, ts) or ("dead",). One file, one DuckDB run.
CASES: list[tuple[bytes, tuple[Any, ...]]] = [
    (b'{"key":"a","ts":5}', (EVENT, "a", 5)),
    (b'{"key":1,"ts":"5"}', (EVENT, "1", 5)),  # an integer key is its decimal text
    (b'{"key":-0,"ts":5}', (EVENT, "0", 5)),
    (b'{"key":123456789012345678901234567890,"ts":5}',
     (EVENT, "123456789012345678901234567890", 5)),
    (b'{"key":1.0,"ts":5}', (DEAD,)),
    (b'{"key":true,"ts":5}', (DEAD,)),
    (b'{"key":null,"ts":5}', (DEAD,)),
    (b'{"key":["a"],"ts":5}', (DEAD,)),
    (b'{"key":{},"ts":5}', (DEAD,)),
    (b'{"key":"","ts":5}', (DEAD,)),
    (b'{"key":"a\\u0000b","ts":5}', (DEAD,)),  # NUL in a key
    (b'{"ts":5}', (DEAD,)),
    (b'{"key":"a"}', (DEAD,)),
    (b'{"key":"a","ts":null}', (DEAD,)),
    (b'null', (DEAD,)),  # every JSON value that is not an object is a dead letter
    (b'true', (DEAD,)),
    (b'42', (DEAD,)),
    (b'"text"', (DEAD,)),
    (b'[1,2]', (DEAD,)),
    (b'{"key":"a","ts":5,}', (DEAD,)),  # DuckDB allows trailing commas; RFC 8259 does not
    (b'{"key":"a","ts":NaN}', (DEAD,)),
    (b'{"key":"a","ts":1,"x":-Infinity}', (DEAD,)),
    (b'{"key":"a","ts":1,"x":"nan, inf, [1,]"}', (EVENT, "a", 1)),  # inside a string: fine
    (b'{"key":"a","ts":1,"x":"\\ud800"}', (DEAD,)),  # an unpaired surrogate is no text
    (b'{"key":"a","ts":1.7e12}', (EVENT, "a", 1_700_000_000_000)),
    (b'{"key":"a","ts":1700000000000.0}', (EVENT, "a", 1_700_000_000_000)),
    (b'{"key":"a","ts":1.5}', (DEAD,)),
    (b'{"key":"a","ts":1e400}', (DEAD,)),
    (b'{"key":"a","ts":true}', (DEAD,)),
    (b'{"key":"a","ts":" 12 "}', (EVENT, "a", 12)),
    (b'{"key":"a","ts":"+7"}', (EVENT, "a", 7)),
    (b'{"key":"a","ts":"1_000"}', (EVENT, "a", 1000)),
    (b'{"key":"a","ts":"1__0"}', (DEAD,)),
    (b'{"key":"a","ts":""}', (DEAD,)),
    (b'{"key":"a","ts":"12a"}', (DEAD,)),
    (b'{"key":"a","ts":2305843009213693952}', (EVENT, "a", 2**61)),
    (b'{"key":"a","ts":2305843009213693953}', (DEAD,)),  # past joins.spec.MAX_TS_MS
    (b'{"key":"a","ts":-2305843009213693953}', (DEAD,)),
    (b'{"key":"a","ts":99999999999999999999999999999999999999999}', (DEAD,)),
    (b'{"key":"a","key":"b","ts":3}', (EVENT, "b", 3)),  # a repeated name: the last value
    (b'\xef\xbb\xbf{"key":"bom","ts":1}', (EVENT, "bom", 1)),  # a leading BOM is ignored
    (b'{"key":"\xc3\xa9","ts":1}', (EVENT, "\u00e9", 1)),
    (b'{"key":"\xc3","ts":1}', (DEAD,)),  # not UTF-8
    (b'{"key":"\xed\xa0\x80","ts":1}', (DEAD,)),  # a UTF-8-encoded surrogate is not UTF-8
    (b'{"key":"a","ts":1}\r', (EVENT, "a", 1)),  # CRLF: the \r is the terminator's
    (b'{"key":"a","ts":1}\r\r', (EVENT, "a", 1)),  # the second \r is JSON whitespace
    (b'\x0b', (DEAD,)),  # only spaces, tabs and CRs make a blank line
    (b'{"key":"a\x1fb","ts":1}', (DEAD,)),  # a raw control character in a string
    (b'{"key":"a","ts":1}x', (DEAD,)),
]
BLANK = [b"", b"   ", b"\t \r"]


def _side(path: Path, fmt: str = "jsonl", keys: tuple[str, ...] = ("key",),
          time_field: str = "ts", unit: str = "ms") -> SideInputs:
    return SideInputs("left", (str(path),), fmt, keys, time_field, unit)


def _read(path: Path, lines: list[bytes], **kw: Any) -> tuple[dict[int, Any], dict[int, Any]]:
    """Events and dead letters of ``lines`` (a JSON Lines file), by line number."""
    path.write_bytes(b"\n".join(lines) + b"\n")
    starts, pos = {}, 0
    for number, line in enumerate(lines):
        starts[pos] = number
        pos += len(line) + 1
    events, dead = read_inputs((_side(path, **kw),))
    return ({starts[e.offset]: e for e in events}, {starts[d.offset]: d for d in dead})


def test_json_lines_rules(tmp_path: Path) -> None:
    lines = [line for line, _ in CASES] + BLANK
    events, dead = _read(tmp_path / "in.jsonl", lines)
    for number, (line, want) in enumerate(CASES):
        raw = line[:-1] if line[-1:] == b"\r" else line  # the terminator is \n or \r\n
        if want[0] == EVENT:
            assert number in events, (line, dead.get(number))
            e = events[number]
            assert (e.key, e.ts) == want[1:], line
            assert e.eid == content_id(raw)
        else:
            assert number in dead, (line, events.get(number))
            assert dead[number].raw == raw, line
            assert dead[number].partition == "left:0:in.jsonl"
    assert len(events) + len(dead) == len(CASES)  # blank lines are nothing


def test_identity_is_the_line_without_its_terminator(tmp_path: Path) -> None:
    events, _ = _read(tmp_path / "in.jsonl", [b'{"key":"a","ts":1}\r', b'{"key":"a","ts":1}'])
    assert events[0].eid == events[1].eid == content_id(b'{"key":"a","ts":1}')
    assert events[0].fp == events[1].fp


def test_fingerprint_follows_content_not_spelling(tmp_path: Path) -> None:
    events, _ = _read(tmp_path / "in.jsonl", [
        b'{"key":"a","ts":1,"v":1E2}', b'{ "key" : "a", "ts" : 1, "v" : 100.0 }',
        b'{"key":"a","ts":1,"v":101}', b'{"key":"a","ts":1,"v":1,"v":100.0}',
    ])
    assert events[0].fp == events[1].fp == events[3].fp != events[2].fp


@pytest.mark.parametrize(("unit", "value", "ms"), [
    ("s", "5", 5000), ("s", '"-2"', -2000), ("us", "1999", 1), ("us", "-1", -1),
    ("us", "-1000", -1), ("us", "-1001", -2), ("ms", "-1", -1),
    ("iso", '"1970-01-01T00:00:01Z"', 1000), ("iso", '"1969-12-31T23:59:59.9995"', -1),
])
def test_time_units(tmp_path: Path, unit: str, value: str, ms: int) -> None:
    events, dead = _read(tmp_path / "in.jsonl", [f'{{"key":"k","ts":{value}}}'.encode()],
                         unit=unit)
    assert not dead, dead
    assert events[0].ts == ms


def test_composite_keys_are_unambiguous_json_arrays(tmp_path: Path) -> None:
    lines = [json.dumps(r).encode() for r in (
        {"a": "x|y", "b": "z", "ts": 1}, {"a": "x", "b": "y|z", "ts": 1},
        {"a": 1, "b": "\u00e9\n\"", "ts": 1}, {"a": "n\u0000", "b": "c", "ts": 1},
        {"a": "", "b": "c", "ts": 1}, {"a": "q", "ts": 1},
    )]
    events, dead = _read(tmp_path / "in.jsonl", lines, keys=("a", "b"))
    assert events[0].key == '["x|y","z"]'
    assert events[1].key == '["x","y|z"]'
    assert events[2].key == json.dumps(["1", "\u00e9\n\""], ensure_ascii=False,
                                       separators=(",", ":"))
    assert events[3].key == '["n\\u0000","c"]'  # escaped inside the array: allowed
    assert set(dead) == {4, 5}


def test_integer_strings_follow_python_int(tmp_path: Path) -> None:
    rng = random.Random(11)
    alphabet = ["0", "1", "7", "9", "+", "-", "_", " ", "\t", ".", "a", "\u00a0"]
    texts = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
                    for _ in range(600)})
    lines = [json.dumps({"key": "k", "ts": t}).encode() for t in texts]
    events, dead = _read(tmp_path / "in.jsonl", lines)
    for number, text in enumerate(texts):
        try:
            want: int | None = int(text)
        except ValueError:
            want = None
        got = events[number].ts if number in events else None
        assert got == want, (text, got, want, dead.get(number))


def _iso_forms(when: datetime, rng: random.Random) -> list[str]:
    date = when.strftime(rng.choice(["%Y-%m-%d", "%Y%m%d"]))
    sep = rng.choice(["T", " ", "t", "x"])
    extended = rng.random() < 0.5
    time = when.strftime("%H:%M:%S" if extended else "%H%M%S")
    frac = rng.choice(["", ".5", ",25", ".123456", ".1234567", f".{when.microsecond:06d}"])
    zone = rng.choice(["", "Z", "+01:30", "-0745", "+05", "-00:00", "+01:30:15.25"])
    short = when.strftime("%H:%M" if extended else "%H%M")
    return [date, f"{date}{sep}{when.strftime('%H')}", f"{date}{sep}{short}{zone}",
            f"{date}{sep}{time}{frac}{zone}", f"  {date}{sep}{time}{frac}{zone}\n"]


def test_iso_times_follow_python_fromisoformat(tmp_path: Path) -> None:
    rng = random.Random(5)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    texts: list[str] = []
    first = datetime(1, 1, 1, tzinfo=UTC).replace(tzinfo=None)  # naive: zones come as text
    for _ in range(150):
        when = first + timedelta(seconds=rng.randrange(315_000_000_000),
                                 microseconds=rng.randrange(1_000_000))
        texts += _iso_forms(when, rng)
    texts += ["2023-02-29", "0000-01-01", "2023-01-01T24:00", "2023-1-1", "2023-01-01T",
              "2023-01-01T10:00:60", "2023-01-01T10:0000", "2023-01-01T10:00:00+24:00",
              "2023-01-01T10:00:00z", "2023-01-01T10:00:00.", "", "now"]
    lines = [json.dumps({"key": "k", "ts": t}).encode() for t in texts]
    events, dead = _read(tmp_path / "in.jsonl", lines, unit="iso")
    for number, text in enumerate(texts):
        try:
            parsed = datetime.fromisoformat(text.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            want: int | None = (parsed - epoch) // timedelta(milliseconds=1)
        except ValueError:
            want = None
        got = events[number].ts if number in events else None
        assert got == want, (text, got, want, dead.get(number))
