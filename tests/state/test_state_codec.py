"""The value codec: exact round trips, the matched flag, errors and evolution."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from joins import Event, content_id
from state import codec as codec_module
from state import layout
from state.codec import (
    StateCodec,
    default_schema,
    is_matched,
    schema_fingerprint,
    v1_schema,
    with_matched,
)
from state.errors import StateDecodeError, StateError
from state.store import RocksStore
from tests.budgets import small_budget

CODEC = StateCodec()

flat = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too: JSON fallback
    st.floats(allow_nan=False),
    st.text(),
)
json_values = st.recursive(
    flat,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
records = st.dictionaries(st.text(max_size=10), json_values, max_size=8)


def same(a: Any, b: Any) -> bool:
    """Equal with types: True is not 1, 1.0 is not 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@given(records, st.text(), st.integers(-(2**63), 2**63 - 1), st.booleans())
def test_round_trip_is_exact(record: dict[str, Any], partition: str, offset: int, m: bool) -> None:
    value = CODEC.encode(partition, offset, record, m)
    got = CODEC.decode(value)
    assert same(got.record, record)
    assert (got.partition, got.offset, got.matched) == (partition, offset, m)


def test_special_floats_and_types() -> None:
    record = {"inf": math.inf, "neg0": -0.0, "one": 1.0, "t": True, "i": 1, "d": {"json": "x"}}
    got = CODEC.decode(CODEC.encode("p", 0, record, False)).record
    assert same(got, record)
    assert math.copysign(1, got["neg0"]) == -1
    assert math.isnan(CODEC.decode(CODEC.encode("p", 0, {"n": math.nan}, False)).record["n"])


def test_matched_flag_rewrites_byte_zero_only() -> None:
    value = CODEC.encode("p", 7, {"a": "b"}, False)
    flipped = with_matched(value)
    assert not is_matched(value)
    assert is_matched(flipped)
    assert flipped[1:] == value[1:]
    assert len(flipped) == len(value)
    assert flipped == CODEC.encode("p", 7, {"a": "b"}, True)
    assert value[1:9] == CODEC.fingerprint


def test_fingerprint_is_crc64_avro_of_canonical_form() -> None:
    assert CODEC.fingerprint == schema_fingerprint(CODEC.schema_json)
    assert len(CODEC.fingerprint) == 8


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x00",
        CODEC.encode("p", 1, {"a": "b"}, False)[:-3],
        b"\x00" + b"\x01" * 8 + b"xx",
        b"\x00" + CODEC.fingerprint + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    ],
)
def test_bad_bytes_raise_one_decode_error(bad: bytes) -> None:
    with pytest.raises(StateDecodeError):
        CODEC.decode(bad)


def test_invalid_schema_is_a_state_error() -> None:
    with pytest.raises(StateError, match="invalid state value schema"):
        StateCodec({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})


def v2_schema() -> dict[str, Any]:
    schema = default_schema()
    schema["fields"].append({"name": "ingest_ms", "type": ["null", "long"], "default": None})
    return schema


def test_newer_reader_reads_state_written_with_v1(tmp_path: Path) -> None:
    budget = small_budget()
    old = Event("left", "k", 5, content_id(b"old"), {"a": 1, "b": [1, "x"]}, "p1", 42)
    with RocksStore(tmp_path / "db", budget, StateCodec()) as v1:
        v1.insert(old, False)
        v1.commit()
    v2 = StateCodec(v2_schema())
    assert v2.fingerprint != CODEC.fingerprint
    fresh = StateCodec(v2_schema())  # no writer schemas known yet: must learn them from the DB
    with pytest.raises(StateDecodeError, match="unknown schema"):
        fresh.decode(CODEC.encode("p", 0, {}, False))
    new = Event("left", "k", 6, content_id(b"new"), {"c": None}, "p2", 43)
    with RocksStore(tmp_path / "db", budget, fresh) as store:
        assert [e.event for e in store.scan("left", "k", 0, 10)] == [old]
        store.mark_matched(store.scan("left", "k", 5, 5)[0])
        store.insert(new, False)
        store.commit()
    with RocksStore(tmp_path / "db", budget, StateCodec(v2_schema())) as store:
        got = store.scan("left", "k", 0, 10)
        assert [e.event for e in got] == [old, new]
        assert [e.matched for e in got] == [True, False]
        # the reader resolves v1 values through the v2 schema: the new field defaults
        raw = store._db.get(layout.entry_key("left", 5 // store.bucket_ms, "k", 5, old.eid))
        assert raw is not None
        assert raw[1:9] == CODEC.fingerprint
    assert json.loads(v2.schema_json)["fields"][-1]["name"] == "ingest_ms"


def test_v2_reads_state_written_with_the_v1_map_schema(tmp_path: Path) -> None:
    budget = small_budget()
    v1 = StateCodec(v1_schema())
    assert v1.fingerprint != CODEC.fingerprint
    old = Event("left", "k", 5, content_id(b"old"), {"a": 1, "b": [1, "x"], "f": 1.0}, "p1", 42)
    with RocksStore(tmp_path / "db", budget, v1) as store:
        store.insert(old, False)
    new = Event("left", "k", 6, content_id(b"new"), {"c": None}, "p2", 43)
    with RocksStore(tmp_path / "db", budget, StateCodec()) as store:
        got = store.scan("left", "k", 0, 10)
        assert [e.event for e in got] == [old]
        assert same(got[0].event.record, old.record)
        store.mark_matched(store.scan("left", "k", 5, 5)[0])
        store.insert(new, False)
    with RocksStore(tmp_path / "db", budget, StateCodec()) as store:
        got = store.scan("left", "k", 0, 10)
        assert [(e.event, e.matched) for e in got] == [(old, True), (new, False)]
        evicted = store.evict("left", 2**62, 10, True)
        assert (evicted.matched, evicted.events) == (1, [new])


@given(records, st.text(), st.integers(-(2**63), 2**63 - 1), st.booleans())
def test_hand_written_v2_body_is_what_fastavro_writes(
    record: dict[str, Any], partition: str, offset: int, m: bool
) -> None:
    generic = StateCodec(default_schema())
    generic._fast = False  # the fastavro path of the same schema
    value = CODEC.encode(partition, offset, record, m)
    assert value == generic.encode(partition, offset, record, m)
    got = generic.decode(value)
    assert same(got.record, record)
    assert (got.partition, got.offset) == (partition, offset)


@given(records)
def test_record_json_is_the_output_encoding_of_the_record(record: dict[str, Any]) -> None:
    from dataflows.outputs import JoinedLineEncoder, joined_record, json_line
    from joins import Unmatched

    stored = CODEC.decode(CODEC.encode("p", 1, record, False))
    assert stored.record_json == json_line(record)
    plain = Event("left", "k", 5, content_id(b"x"), record, "p", 1)
    carried = Event("left", "k", 5, content_id(b"x"), stored.record, "p", 1, stored.record_json)
    assert carried == plain
    row = Unmatched(carried)
    assert JoinedLineEncoder().lines([row]) == [json_line(joined_record(Unmatched(plain)))]


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers(-(2**28), 2**28))
def test_hand_written_avro_longs_are_fastavros(n: int) -> None:
    buf = io.BytesIO()
    schemaless_writer(buf, "long", n)
    expected = buf.getvalue()
    assert codec_module._zigzag_varint(n) == expected
    assert codec_module._read_long(expected + b"\x00\x01", 0) == (n, len(expected))
