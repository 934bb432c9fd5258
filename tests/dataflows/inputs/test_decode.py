"""Decoding: every record becomes an Event or an Invalid with the exact reason."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from dataflows.errors import ConfigError, InputError
from dataflows.inputs import Invalid, SourceFormat, read_batches
from joins import Event, content_id
from joins.spec import MAX_TS_MS

JSONL = SourceFormat("jsonl")


def read_all(path: Path, fmt: SourceFormat = JSONL, **kw: Any) -> list[Event | Invalid]:
    return [x for batch, _ in read_batches(str(path), "left", fmt, "p0", **kw) for x in batch]


def write(tmp_path: Path, data: bytes, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_jsonl_events_carry_identity_offsets_and_records(tmp_path: Path) -> None:
    lines = [b'{"key":"a","ts":5,"x":1}', b'{"key":"b","ts":7}']
    path = write(tmp_path, b"\n".join(lines) + b"\n")
    a, b = read_all(path)
    assert isinstance(a, Event)
    assert isinstance(b, Event)
    assert (a.side, a.key, a.ts, a.record, a.partition, a.offset) == (
        "left", "a", 5, {"key": "a", "ts": 5, "x": 1}, "p0", 0)
    assert a.eid == content_id(lines[0])
    assert b.offset == len(lines[0]) + 1


def test_an_ascii_jsonl_line_is_its_records_text(tmp_path: Path) -> None:
    """State and outputs carry an ASCII line as the record's JSON text (no
    re-encoding); a line with other characters is left to be encoded."""
    lines = ['{"key": "a", "ts": 5, "x": [1, 2.5]}', '{"key":"b","ts":7,"name":"Zoë"}']
    path = write(tmp_path, "\n".join(lines).encode() + b"\r\n")
    a, b = read_all(path)
    assert isinstance(a, Event)
    assert isinstance(b, Event)
    assert a.record_json == lines[0]
    assert json.loads(a.record_json) == a.record
    assert b.record_json is None
    assert b.record["name"] == "Zoë"


def test_crlf_blank_lines_and_missing_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path, b'\r\n{"key":"a","ts":5}\r\n   \n\n{"key":"b","ts":6}')
    out = read_all(path)
    assert [x.key for x in out if isinstance(x, Event)] == ["a", "b"]
    assert isinstance(out[0], Event)
    assert out[0].eid == content_id(b'{"key":"a","ts":5}')
    assert out[1].offset == path.read_bytes().index(b'{"key":"b"')


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{", "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        (b"nonsense", "invalid JSON: Expecting value at column 1"),
        (b"[1,2]", "record is not an object (got array)"),
        (b'{"key":"a"}', "missing field 'ts'"),
        (b'{"ts":1}', "missing field 'key'"),
        (b'{"key":"a","ts":"abc"}', "ts is not an integer: 'abc'"),
        (b'{"key":"a","ts":1.5}', "ts is not an integer: 1.5"),
        (b'{"key":"a","ts":true}', "ts is not an integer: True"),
        (b'{"key":"a","ts":null}', "ts is null"),
        (b'{"key":"a","ts":""}', "ts is empty"),
        (b'{"key":"","ts":1}', "key field 'key' is empty"),
        (b'{"key":null,"ts":1}', "key field 'key' is null"),
        (b'{"key":[1],"ts":1}', "key field 'key' is not a string or an integer: [1]"),
        (b'{"key":"a\\u0000b","ts":1}', "key contains a NUL character: 'a\\x00b'"),
        (b'{"key":"\\ud800","ts":1}', "key is not valid Unicode text: '\\ud800'"),
        (b'{"key":"a","ts":%d}' % (MAX_TS_MS + 1), "ts out of range: "),
        (b'{"key":"\xff","ts":1}', "invalid UTF-8: invalid start byte at byte 8"),
    ],
)
def test_invalid_records_say_exactly_what_is_wrong(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    path = write(tmp_path, b'{"key":"ok","ts":1}\n' + line + b"\n")
    ok, bad = read_all(path)
    assert isinstance(ok, Event)
    assert isinstance(bad, Invalid)
    assert bad.reason.startswith(reason), bad.reason
    assert (bad.side, bad.partition, bad.offset) == ("left", "p0", 20)
    assert bad.raw == line
    assert bad.raw_bytes == len(line)


@pytest.mark.parametrize(
    ("unit", "value", "ms"),
    [
        ("ms", 1_700_000_000_123, 1_700_000_000_123),
        ("ms", "1700000000123", 1_700_000_000_123),
        ("ms", 1.7e12, 1_700_000_000_000),
        ("s", 1_700_000_000, 1_700_000_000_000),
        ("s", "-2", -2_000),
        ("us", 1_700_000_000_123_999, 1_700_000_000_123),
        ("us", -1, -1),
        ("iso", "2023-11-14T22:13:20.123Z", 1_700_000_000_123),
        ("iso", "2023-11-14T22:13:20.123999", 1_700_000_000_123),
        ("iso", "2023-11-14T23:13:20+01:00", 1_700_000_000_000),
    ],
)
def test_time_units_convert_once_to_epoch_ms(
    tmp_path: Path, unit: str, value: Any, ms: int
) -> None:
    path = write(tmp_path, json.dumps({"k": 1, "at": value}).encode())
    fmt = SourceFormat("jsonl", key_fields=("k",), time_field="at", time_unit=unit)  # type: ignore[arg-type]
    (event,) = read_all(path, fmt)
    assert isinstance(event, Event)
    assert (event.key, event.ts) == ("1", ms)


def test_iso_rejects_non_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"key":"a","ts":"yesterday"}\n{"key":"a","ts":5}\n')
    fmt = SourceFormat("jsonl", time_unit="iso")
    reasons = [x.reason for x in read_all(path, fmt) if isinstance(x, Invalid)]
    assert reasons == ["ts is not an ISO-8601 timestamp: 'yesterday'",
                       "ts is not an ISO-8601 string: 5"]


def test_multi_field_keys_are_a_json_array_of_the_parts(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"u":"x","t":3,"ts":1}\n')
    fmt = SourceFormat("jsonl", key_fields=("u", "t"))
    (event,) = read_all(path, fmt)
    assert isinstance(event, Event)
    assert event.key == '["x","3"]'


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_jsonl_resume_from_every_position_reads_the_rest(tmp_path: Path, batch_size: int) -> None:
    body = b"".join(b'{"key":"k%d","ts":%d}\n' % (i, i) for i in range(7)) + b"\n{bad\n"
    path = write(tmp_path, body + b'{"key":"last","ts":9}')
    everything = read_all(path)
    assert len(everything) == 9
    for batch, pos in read_batches(str(path), "left", JSONL, "p0", 0, batch_size):
        rest = read_all(path, start=pos)
        assert rest == everything[everything.index(batch[-1]) + 1 :]
    assert pos == len(body) + len(b'{"key":"last","ts":9}')


CSV = SourceFormat("csv", key_fields=("key",))


def test_csv_records_resume_and_errors(tmp_path: Path) -> None:
    text = (
        '\ufeffid,key,ts\r\n'
        "1,a,10\r\n"
        '2,"b,""x""",11\r\n'
        "\r\n"
        '3,"multi\nline",12\n'
        "4,c\n"
        "5,,13\n"
        "6,d,1.5\n"
        "7,e,\n"
        "8,f,14"
    )
    path = write(tmp_path, text.encode(), "in.csv")
    out = read_all(path, CSV)
    events = [x for x in out if isinstance(x, Event)]
    assert [(e.key, e.ts) for e in events] == [("a", 10), ('b,"x"', 11), ("multi\nline", 12),
                                              ("f", 14)]
    assert events[0].record == {"id": "1", "key": "a", "ts": "10"}
    assert events[0].eid == content_id(b"1,a,10")
    assert events[2].eid == content_id(b'3,"multi\nline",12')
    assert events[2].offset == text.encode().index(b"3,")
    bad = [x for x in out if isinstance(x, Invalid)]
    assert [x.reason for x in bad] == ["csv: expected 3 columns, got 2", "key field 'key' is empty",
                                       "ts is not an integer: '1.5'", "ts is empty"]
    assert [x.raw for x in bad] == [b"4,c", b"5,,13", b"6,d,1.5", b"7,e,"]
    for size in (1, 2, 5):
        for batch, pos in read_batches(str(path), "left", CSV, "p0", 0, size):
            assert read_all(path, CSV, start=pos) == out[out.index(batch[-1]) + 1 :]


def test_csv_header_without_the_time_field_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"key,when\na,1\n", "in.csv")
    with pytest.raises(InputError, match="no column 'ts' \\(columns: key, when\\)"):
        read_all(path, CSV)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read input"):
        read_all(tmp_path / "nope.jsonl")


SCHEMA = {"type": "record", "name": "E", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"},
    {"name": "b", "type": "bytes"}]}


def _avro(records: list[dict[str, Any]]) -> bytes:
    fo = io.BytesIO()
    fastavro.writer(fo, fastavro.parse_schema(SCHEMA), records, sync_interval=1)
    return fo.getvalue()


AVRO = SourceFormat("avro")


def test_avro_events_resume_by_record_index(tmp_path: Path) -> None:
    recs = [{"key": f"k{i}", "ts": i, "b": b"\x01"} for i in range(5)]
    path = write(tmp_path, _avro(recs), "in.avro")
    out = read_all(path, AVRO)
    assert [x.offset for x in out] == [0, 1, 2, 3, 4]
    assert isinstance(out[0], Event)
    # the canonical JSON of the record as decoded: bytes are base64
    assert out[0].record == {"key": "k0", "ts": 0, "b": "AQ=="}
    canon = json.dumps(out[0].record, sort_keys=True, separators=(",", ":"))
    assert out[0].eid == content_id(canon.encode())
    for batch, pos in read_batches(str(path), "left", AVRO, "p0", 0, 2):
        assert read_all(path, AVRO, start=pos) == out[out.index(batch[-1]) + 1 :]


def test_avro_truncation_is_a_dead_letter_of_the_cut_block(tmp_path: Path) -> None:
    data = _avro([{"key": f"k{i}", "ts": i, "b": b""} for i in range(50)])
    truncated = write(tmp_path, data[: len(data) - 30], "t.avro")
    out = read_all(truncated, AVRO)
    assert all(isinstance(x, Event) for x in out[:-1])
    bad = out[-1]
    assert isinstance(bad, Invalid)
    assert bad.reason.startswith("avro: damaged block at byte ")
    assert "no sync marker follows" in bad.reason
    assert truncated.read_bytes().endswith(bad.raw)
    garbage = write(tmp_path, b"not avro at all", "g.avro")
    (header,) = read_all(garbage, AVRO)
    assert isinstance(header, Invalid)
    assert header.reason.startswith("avro: cannot read the file (not an Avro container file")
    assert header.raw == b"not avro at all"
    assert read_all(garbage, AVRO, start=1) == []


def test_avro_record_errors_hold_the_records_binary_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, _avro([{"key": "", "ts": 1, "b": b"\xff"}]), "in.avro")
    (bad,) = read_all(path, AVRO)
    assert isinstance(bad, Invalid)
    assert bad.reason == "key field 'key' is empty"
    assert bad.avro_schema is not None
    writer = fastavro.parse_schema(json.loads(bad.avro_schema))
    assert fastavro.schemaless_reader(io.BytesIO(bad.raw), writer, None) == {
        "key": "", "ts": 1, "b": b"\xff"}
    encoded = io.BytesIO()
    fastavro.schemaless_writer(encoded, writer, {"key": "", "ts": 1, "b": b"\xff"})
    assert bad.raw == encoded.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "xml"}, "unknown input format 'xml'"),
        ({"format": "csv", "key_fields": ()}, "key_fields must be one or more"),
        ({"format": "csv", "key_fields": "key"}, "key_fields must be a tuple"),
        ({"format": "csv", "time_unit": "ns"}, "unknown time unit 'ns'"),
        ({"format": "csv", "time_field": ""}, "time_field must be a non-empty"),
    ],
)
def test_source_format_is_validated(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SourceFormat(**kwargs)
