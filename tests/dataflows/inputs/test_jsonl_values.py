"""JSON Lines (issue 10, item 2): every line is an event, a dead letter or blank;
a JSON value that is not an object never vanishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflows.inputs import Invalid, SourceFormat, read_batches
from joins import Event

JSONL = SourceFormat("jsonl")
OK = b'{"key":"k","ts":1}'


def read_all(path: Path) -> list[Event | Invalid]:
    return [x for batch, _ in read_batches(str(path), "left", JSONL, "p") for x in batch]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"null", "record is not an object (got null)"),
        (b"  null  ", "record is not an object (got null)"),
        (b"true", "record is not an object (got boolean)"),
        (b"false", "record is not an object (got boolean)"),
        (b"0", "record is not an object (got number)"),
        (b"-1.5e3", "record is not an object (got number)"),
        (b'"text"', "record is not an object (got string)"),
        (b'""', "record is not an object (got string)"),
        (b"[]", "record is not an object (got array)"),
        (b'[{"key":"k","ts":1}]', "record is not an object (got array)"),
        (b"NaN", "invalid JSON: ValueError: NaN is not valid JSON"),
        (b'{"key":"k","ts":1,"x":Infinity}', "invalid JSON: ValueError: Infinity is not valid"),
        (b'{"key":"k","ts":-Infinity}', "invalid JSON: ValueError: -Infinity is not valid"),
        (b"\x0c", "invalid JSON: Expecting value at column 1"),
        (b"\xef\xbb\xbf", "invalid JSON: Expecting value at column 1"),
        (b'{"key":"k","ts":1} {}', "invalid JSON: Extra data at column 20"),
        # UTF-16 is not UTF-8: no guessing of encodings per line
        (b'{\x00"\x00k\x00e\x00y\x00"\x00', "invalid JSON: Expecting property name"),
        # an encoded surrogate is not UTF-8 either
        (b'{"key":"k","ts":1,"s":"\xed\xa0\x80"}', "invalid UTF-8: invalid continuation"),
    ],
)
def test_a_line_that_is_no_object_is_a_dead_letter(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(OK + b"\n" + line + b"\n" + OK + b"\r\n")
    first, bad, last = read_all(path)
    assert isinstance(first, Event)
    assert isinstance(last, Event)
    assert isinstance(bad, Invalid)
    assert bad.reason.startswith(reason), bad.reason
    assert (bad.raw, bad.offset) == (line, len(OK) + 1)


def test_blank_lines_are_only_json_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n \t \r\n\r\n" + OK + b"\n\r\r\n")
    (event,) = read_all(path)
    assert isinstance(event, Event)
    assert event.offset == path.read_bytes().index(OK)


def test_a_byte_order_mark_before_an_object_is_not_part_of_it(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    line = b"\xef\xbb\xbf" + OK
    path.write_bytes(line + b"\n")
    (event,) = read_all(path)
    assert isinstance(event, Event)
    assert event.record == {"key": "k", "ts": 1}


def test_every_line_is_counted_once(tmp_path: Path) -> None:
    """One result per line that is not blank, at its own offset, whatever it holds."""
    lines = [OK, b"null", b"1", b"[", b"{}", b'"s"', b"", b"  ", OK, b"false", b"\xff"]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines))
    out = read_all(path)
    offsets, at = [], 0
    for line in lines:
        if line.strip():
            offsets.append(at)
        at += len(line) + 1
    assert [x.offset for x in out] == offsets
    assert [isinstance(x, Event) for x in out] == [
        True, False, False, False, False, False, True, False, False]


def test_a_key_named_twice_in_an_object_takes_its_last_value(tmp_path: Path) -> None:
    """The documented rule (README, "Inputs and dead letters"): as Python's json,
    JavaScript's JSON.parse and Jackson by default; the record's bytes are kept
    as read, both names included. Checking for duplicates would cost every
    record about a quarter of its JSON parse (measured: 1.66 -> 2.13 us)."""
    line = b'{"key":"a","ts":1700000000000,"key":"b","ts":1700000000005}'
    path = tmp_path / "in.jsonl"
    path.write_bytes(line + b"\n")
    (event,) = read_all(path)
    assert isinstance(event, Event)
    assert (event.key, event.ts) == ("b", 1_700_000_000_005)
    assert event.record == {"key": "b", "ts": 1_700_000_000_005}
    assert event.record_json == line.decode()  # written out as read
