"""Join keys (issue 10, item 1): one field's text, or a composite key that is an
unambiguous encoding of the tuple of its parts, the same from every format."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.inputs.fields import BadRecord, key_of
from joins import Event

PAIR = SourceFormat("jsonl", key_fields=("a", "b"))


def keys_of(path: Path, fmt: SourceFormat) -> list[str | Invalid]:
    out: list[str | Invalid] = []
    for batch, _ in read_batches(str(path), "left", fmt, "p"):
        out += [x.key if isinstance(x, Event) else x for x in batch]
    return out


def test_composite_keys_that_a_separator_would_confuse_differ(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a":"x|y","b":"z","ts":1}\n{"a":"x","b":"y|z","ts":1}\n')
    assert keys_of(path, PAIR) == ['["x|y","z"]', '["x","y|z"]']


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (("x", "y"), '["x","y"]'),
        ((1, "1"), '["1","1"]'),
        (("-7", 12345678901234567890), '["-7","12345678901234567890"]'),
        (('q"uote', "back\\slash"), '["q\\"uote","back\\\\slash"]'),
        (("Zoë", "東京"), '["Zoë","東京"]'),  # not escaped (ensure_ascii=False)
        (("tab\tnl\n", "nul\x00"), '["tab\\tnl\\n","nul\\u0000"]'),
        (("", "y"), "key field 'a' is empty"),
        ((None, "y"), "key field 'a' is null"),
        (("x", 1.5), "key field 'b' is not a string or an integer: 1.5"),
        (("x", True), "key field 'b' is not a string or an integer: True"),
        (("x", ["y"]), "key field 'b' is not a string or an integer: ['y']"),
        (("\ud800", "y"), "key is not valid Unicode text"),
    ],
)
def test_a_composite_key_is_the_json_array_of_its_parts_as_text(
    parts: tuple[Any, Any], key: str
) -> None:
    record = {"a": parts[0], "b": parts[1]}
    if key.startswith("["):
        assert key_of(record, PAIR) == key
        assert json.loads(key) == [str(p) for p in parts]
    else:
        with pytest.raises(BadRecord, match=key.replace("[", "\\[").replace("(", "\\(")):
            key_of(record, PAIR)


def test_a_missing_part_names_its_field() -> None:
    with pytest.raises(BadRecord, match="missing field 'b'"):
        key_of({"a": "x"}, PAIR)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(min_size=1), st.integers()), min_size=2, max_size=2),
       st.lists(st.one_of(st.text(min_size=1), st.integers()), min_size=2, max_size=2))
def test_composite_keys_are_equal_exactly_when_their_parts_are(
    one: list[str | int], two: list[str | int]
) -> None:
    def key(parts: list[str | int]) -> str | None:
        try:
            return key_of({"a": parts[0], "b": parts[1]}, PAIR)
        except BadRecord:
            return None  # a lone surrogate: a dead letter, never a key

    k1, k2 = key(one), key(two)
    if k1 is not None and k2 is not None:
        assert (k1 == k2) == ([str(p) for p in one] == [str(p) for p in two])


def test_an_integer_and_its_decimal_text_are_the_same_key_in_every_format(
    tmp_path: Path,
) -> None:
    """CSV has no types, so ``"7"`` from CSV must meet ``7`` from JSON or Avro."""
    (tmp_path / "in.jsonl").write_text('{"key":7,"ts":1}\n{"key":"7","ts":2}\n')
    (tmp_path / "in.csv").write_text("key,ts\n7,1\n")
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "key", "type": "long"}, {"name": "ts", "type": "long"}]})
    fo = io.BytesIO()
    fastavro.writer(fo, schema, [{"key": 7, "ts": 1}])
    (tmp_path / "in.avro").write_bytes(fo.getvalue())
    assert keys_of(tmp_path / "in.jsonl", SourceFormat("jsonl")) == ["7", "7"]
    assert keys_of(tmp_path / "in.csv", SourceFormat("csv")) == ["7"]
    assert keys_of(tmp_path / "in.avro", SourceFormat("avro")) == ["7"]
    fmt = SourceFormat("jsonl", key_fields=("a", "b"))
    (tmp_path / "pair.jsonl").write_text('{"a":7,"b":"x","ts":1}\n')
    (tmp_path / "pair.csv").write_text("a,b,ts\n7,x,1\n")
    assert keys_of(tmp_path / "pair.jsonl", fmt) == ['["7","x"]']
    assert keys_of(tmp_path / "pair.csv", SourceFormat("csv", key_fields=("a", "b"))) == [
        '["7","x"]']
