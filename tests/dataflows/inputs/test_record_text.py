"""Records travel as their JSON text: made once at the source, never re-encoded.

- A CSV record's ``record_json`` is ``json``'s compact text of its row dict,
  whatever the values hold (a template for plain values, ``json`` for the
  rest), so the state and the outputs write it as it is.
- A JSON Lines line parsed by orjson gives the same event as ``json`` would:
  orjson reads integers beyond 64 bits as floats, so its result is used for
  the key and the time only, and a float there sends the line the careful way.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.inputs.csv_format import record_template
from dataflows.inputs.fields import BadRecord, key_of, ts_of
from joins import Event, content_id

CSV = SourceFormat("csv", key_fields=("id",), time_field="ts")
JSONL = SourceFormat("jsonl")
compact = json.JSONEncoder(separators=(",", ":")).encode


def read_all(path: Path, fmt: SourceFormat) -> list[Event | Invalid]:
    return [x for batch, _ in read_batches(str(path), "left", fmt, "p") for x in batch]


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


#: Values of every kind: plain ASCII, quotes, backslashes, commas, control
#: characters, line breaks and non-ASCII (no NUL: csv refuses it; no lone
#: surrogates: not UTF-8).
values = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00\r"), max_size=12
)
names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00\r\n"),
                min_size=1, max_size=8).filter(lambda s: s not in ("id", "ts"))  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    extra=st.lists(names, max_size=4, unique=True),
    rows=st.lists(st.lists(values, min_size=4, max_size=4), min_size=1, max_size=5),
)
def test_a_csv_records_text_is_jsons_text_of_its_row(
    tmp_path_factory: pytest.TempPathFactory, extra: list[str], rows: list[list[str]]
) -> None:
    header = ["id", *extra, "ts"]
    body = [[f"k{i}", *row[: len(extra)], str(1000 + i)] for i, row in enumerate(rows)]
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes(csv_bytes(header, body))
    events = read_all(path, CSV)
    assert len(events) == len(body)
    for event, row in zip(events, body, strict=True):
        assert isinstance(event, Event), event
        record = dict(zip(header, row, strict=True))
        assert event.record_json == compact(record)
        assert event.record == record


def test_the_template_escapes_names_and_percent_signs() -> None:
    template = record_template(['a"b', "50%", "é"])
    assert template % ("x", "y", "z") == compact({'a"b': "x", "50%": "y", "é": "z"})


def test_a_csv_event_carries_its_text_from_the_start(tmp_path: Path) -> None:
    """The store and the outputs take ``record_json`` as it is: made here once
    (the event holds no dict until something asks for ``record``)."""
    path = tmp_path / "in.csv"
    path.write_bytes(b'id,ts,note\nk1,5,plain\nk2,6,"say ""hi"""\n')
    plain, quoted = read_all(path, CSV)
    assert isinstance(plain, Event)
    assert isinstance(quoted, Event)
    assert plain.record_json == '{"id":"k1","ts":"5","note":"plain"}'
    assert quoted.record_json == '{"id":"k2","ts":"6","note":"say \\"hi\\""}'
    assert plain.eid == content_id(b"k1,5,plain")


def test_jsonl_integers_beyond_64_bits_keep_their_value(tmp_path: Path) -> None:
    big = 123456789012345678901234567890
    lines = [
        b'{"key":%d,"ts":5}' % big,  # the key: its decimal text, not a float's
        b'{"key":"a","ts":6,"n":%d}' % big,  # another field: kept exact
        b'{"key":"b","ts":%d}' % (2**64),  # a time beyond range: the exact reason
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    by_key, other, too_late = read_all(path, JSONL)
    assert isinstance(by_key, Event)
    assert by_key.key == str(big)
    assert isinstance(other, Event)
    assert other.record["n"] == big
    assert other.record_json == lines[1].decode()
    assert isinstance(too_late, Invalid)
    assert too_late.reason.startswith(f"ts out of range: {2**64} is ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    key=st.one_of(st.text(max_size=5), st.integers(), json_values),
    ts=st.one_of(st.integers(-(2**66), 2**66), json_values),
    rest=st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    ensure_ascii=st.booleans(),
)
def test_jsonl_events_are_what_json_makes_of_the_line(
    tmp_path_factory: pytest.TempPathFactory, key: object, ts: object,
    rest: dict[str, object], ensure_ascii: bool,
) -> None:  # fmt: skip
    """The oracle is ``json`` and the field rules alone (``key_of``, ``ts_of``)."""
    line = json.dumps({**rest, "key": key, "ts": ts}, ensure_ascii=ensure_ascii).encode()
    path = tmp_path_factory.mktemp("jsonl") / "in.jsonl"
    path.write_bytes(line + b"\n")
    (got,) = read_all(path, JSONL)
    parsed = json.loads(line)
    try:
        expected: tuple[str, int] | str = (key_of(parsed, JSONL), ts_of(parsed, JSONL))
    except BadRecord as bad:
        expected = str(bad)
    if isinstance(expected, str):
        assert isinstance(got, Invalid)
        assert got.reason == expected
        return
    assert isinstance(got, Event), got
    assert (got.key, got.ts) == expected
    assert got.record == parsed
    assert got.record_json == (line.decode() if line.isascii() else None)
