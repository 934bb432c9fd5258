"""Values that cross process boundaries pickle and unpickle whole.

Bytewax pickles the items it exchanges between processes (events and marks on
their way to a shard, dead letters on their way to a sink). The classes are
compiled by mypyc, which gives them no default pickling: each says how
(``__reduce__``). Without it, these fail on the compiled build.
"""

from __future__ import annotations

import pickle

import pytest

from dataflows.inputs.fields import Invalid
from joins import Event, Late, Matched, PartitionMark, Unmatched, content_id


def _round_trip(value: object) -> object:
    return pickle.loads(pickle.dumps(value))  # noqa: S301 - our own bytes


def _event(**kw: object) -> Event:
    fields: dict[str, object] = {"side": "left", "key": "k", "ts": 5, "eid": content_id(b"x"),
                                 "record": {"a": 1}, "partition": "p", "offset": 7}  # fmt: skip
    fields.update(kw)
    return Event(**fields)  # type: ignore[arg-type]


def test_an_event_keeps_every_field() -> None:
    e = _event(record_json='{"a":1}')
    back = _round_trip(e)
    assert isinstance(back, Event)
    assert back == e
    assert (back.partition, back.offset, back.record_json) == ("p", 7, '{"a":1}')


def test_an_event_with_only_its_text_stays_lazy() -> None:
    e = _event(record=None, record_json='{"a":2}')
    back = _round_trip(e)
    assert isinstance(back, Event)
    assert back.record_json == '{"a":2}'
    assert back.record == {"a": 2}


@pytest.mark.parametrize(
    "value",
    [
        PartitionMark("left:0", 12, 34),
        PartitionMark("right:1", None, 0, closed=True),
        Matched(_event(), _event(side="right")),
        Unmatched(_event()),
        Late(_event(), 100, 95),
        Invalid(
            "right", "missing field 'ts'", b"{}", "right:0", 3,
            raw_bytes=9, avro_schema='"string"', avro_codec="null", binary=True,
        ),
    ],
    ids=lambda v: type(v).__name__,
)
def test_exchanged_values_round_trip(value: object) -> None:
    assert _round_trip(value) == value
