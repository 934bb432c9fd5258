"""Exact dead letters (issue 10, item 5): the input's bytes come back from the
``invalid/`` output, as text or base64; a cut is stated and counted."""

from __future__ import annotations

from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from dataflows.inputs import RAW_LIMIT_BYTES, Invalid, SourceFormat, read_batches
from dataflows.metrics import JoinMetrics
from dataflows.metrics.wiring import observe_source_batch
from dataflows.outputs import invalid_record, raw_bytes_of, read_rows, records
from dataflows.sources import SourceBatch
from joins import PartitionMark


def dead_letters(path: Path, fmt: SourceFormat) -> list[Invalid]:
    return [x for b, _ in read_batches(str(path), "left", fmt, "p") for x in b
            if isinstance(x, Invalid)]


def round_trip(tmp_path: Path, bad: list[Invalid]) -> dict[str, list[dict[str, object]]]:
    """The rows of ``bad`` written as JSON Lines and as Avro and read back."""
    rows = [invalid_record(x) for x in bad]
    back = {}
    for fmt in ("jsonl", "avro"):
        (tmp_path / fmt).mkdir()
        with (tmp_path / fmt / f"part.{fmt}").open("wb") as fo:
            if fmt == "avro":
                records.write_avro(fo, "invalid", rows)
            else:
                records.write_jsonl(fo, rows)
        back[fmt] = list(read_rows(tmp_path / fmt))
    return back


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe broken UTF-8 {",
        b'{"key":"\xc3","ts":1}',  # a truncated character
        b'{"s":"\xed\xa0\x80"}',  # an encoded surrogate
        b"nul \x00 and cr \r inside",
        b"\xef\xbb\xbf[1]",  # a byte-order mark and an array
        "not an object: Zoë 東京".encode(),
    ],
)
def test_the_bytes_of_a_bad_line_come_back_exactly(tmp_path: Path, line: bytes) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"key":"k","ts":1}\n' + line + b"\r\n")
    (bad,) = dead_letters(src, SourceFormat("jsonl"))
    assert bad.raw == line
    back = round_trip(tmp_path, [bad])
    for rows in back.values():
        (row,) = rows
        assert raw_bytes_of(row) == line
        assert row["raw_bytes"] == len(line)
        assert row["raw_truncated"] is False
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            assert row["raw_encoding"] == "base64"
        else:
            assert (row["raw"], row["raw_encoding"]) == (text, "utf-8")


def test_csv_rows_keep_their_bytes_too(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    rows = [b"1,\xe9t\xe9,5", b'2,"two\r\nlines",x', b"3,a,4,extra"]
    src.write_bytes(b"id,key,ts\r\n" + b"\r\n".join(rows) + b"\r\n")
    bad = dead_letters(src, SourceFormat("csv"))
    assert [x.raw for x in bad] == rows
    back = round_trip(tmp_path, bad)
    assert [raw_bytes_of(r) for r in back["jsonl"]] == rows
    assert [raw_bytes_of(r) for r in back["avro"]] == rows


@pytest.mark.parametrize("tail", [b"", "é".encode(), "東".encode()])
def test_a_record_over_the_limit_keeps_its_first_mib_and_says_so(
    tmp_path: Path, tail: bytes
) -> None:
    # The cut falls inside the multi-byte character: it is left out whole.
    line = b'{"key":' + b"x" * (RAW_LIMIT_BYTES - 8) + tail + b"y" * 100
    src = tmp_path / "in.jsonl"
    src.write_bytes(line + b"\n")
    (bad,) = dead_letters(src, SourceFormat("jsonl"))
    assert bad.raw_bytes == len(line)
    assert bad.raw_truncated
    assert line.startswith(bad.raw)
    assert RAW_LIMIT_BYTES - 3 <= len(bad.raw) <= RAW_LIMIT_BYTES
    for rows in round_trip(tmp_path, [bad]).values():
        (row,) = rows
        assert (row["raw_truncated"], row["raw_bytes"], row["raw_encoding"]) == (
            True, len(line), "utf-8")
        assert raw_bytes_of(row) == bad.raw


def test_the_cut_is_counted_by_a_metric() -> None:
    registry = CollectorRegistry()
    metrics = JoinMetrics(registry, process_collector=False)
    big = b"x" * (RAW_LIMIT_BYTES + 1)
    batch = SourceBatch("right", [], [Invalid("right", "invalid JSON", big, "p", 0),
                                      Invalid("right", "invalid JSON", b"x", "p", 1)],
                        PartitionMark("p", None, 0, False), False)
    observe_source_batch(metrics, batch)

    def value(stream: str) -> float | None:
        return registry.get_sample_value("streamjoin_invalid_raw_truncated_total",
                                         {"stream": stream})

    assert value("right") == 1
    assert value("left") == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_survive_the_row(raw: bytes) -> None:
    row = invalid_record(Invalid("left", "r", raw, "p", 0))
    assert raw_bytes_of(row) == raw
    assert row["raw_encoding"] == ("utf-8" if _is_utf8(raw) else "base64")


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"raw": "!!", "raw_encoding": "base64"}, "not base64"),
        ({"raw": "x", "raw_encoding": "rot13"}, "unknown raw_encoding 'rot13'"),
        ({"raw": 5, "raw_encoding": "utf-8"}, "not a string"),
    ],
)
def test_a_malformed_row_is_a_clear_error(row: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        raw_bytes_of(row)


def test_avro_dead_letters_are_always_base64(tmp_path: Path) -> None:
    """An Avro record's encoding is binary, even when its bytes happen to be
    valid UTF-8 (here b"\\x00\\x02": an empty key and ts 1)."""
    schema = fastavro.parse_schema({"type": "record", "name": "E", "fields": [
        {"name": "key", "type": "string"}, {"name": "ts", "type": "long"}]})
    src = tmp_path / "in.avro"
    with src.open("wb") as fo:
        fastavro.writer(fo, schema, [{"key": "", "ts": 1}])
    (bad,) = dead_letters(src, SourceFormat("avro"))
    assert bad.raw == b"\x00\x02"
    for rows in round_trip(tmp_path, [bad]).values():
        (row,) = rows
        assert (row["raw"], row["raw_encoding"]) == ("AAI=", "base64")
        assert raw_bytes_of(row) == b"\x00\x02"
