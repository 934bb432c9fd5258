"""The output files: fast joined lines equal the records module's, and a
partition resumed from a snapshot truncates what was written after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataflows.outputs import JoinedLineEncoder, joined_record, json_line, read_rows
from dataflows.sinks import RowFileSink
from joins import Event, Matched, Unmatched, content_id


def ev(side: str, key: str, ts: int, record: dict[str, object], offset: int = 0) -> Event:
    raw = json.dumps(record).encode()
    return Event(side, key, ts, content_id(raw), record, f"{side}:0:f é.jsonl", offset)  # type: ignore[arg-type]


ROWS = [
    Matched(ev("left", "k1", 10, {"a": 1, "s": "x"}), ev("right", "k1", 20, {"b": [1, 2]})),
    Matched(ev("left", "ké\"\\", -5, {"u": "é\u2028\n"}), ev("right", "ké\"\\", 0, {})),
    Unmatched(ev("left", "k2", 30, {"n": None, "f": 1.5}, offset=99)),
    Unmatched(ev("right", "k3", 40, {"t": True})),
]


def test_fast_joined_lines_equal_the_records_module() -> None:
    enc = JoinedLineEncoder(cache_events=2)
    for _ in range(3):  # cached and uncached paths
        assert enc.lines(ROWS) == [json_line(joined_record(r)) for r in ROWS]


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_a_resumed_partition_truncates_to_its_snapshot(tmp_path: Path, fmt: str) -> None:
    sink = RowFileSink(str(tmp_path), "joined", fmt, ["s0"], ["s0"])
    part = sink.build_part("out", "s0", None)
    part.write_batch([ROWS[:2]])
    pos = part.snapshot()
    part.write_batch([ROWS[2:]])  # written after the snapshot, then "crash"
    part.close()
    resumed = sink.build_part("out", "s0", pos)
    resumed.write_batch([ROWS[3:]])
    resumed.close()
    kinds = [r["kind"] for r in read_rows(tmp_path)]
    assert kinds == ["match", "match", "right_only"]


def test_a_fresh_partition_replaces_an_old_file(tmp_path: Path) -> None:
    (tmp_path / "s0.jsonl").write_text("old\n")
    sink = RowFileSink(str(tmp_path), "joined", "jsonl", ["s0"], ["s0"])
    part = sink.build_part("out", "s0", None)
    part.write_batch([ROWS[:1]])
    part.close()
    assert [r["kind"] for r in read_rows(tmp_path)] == ["match"]
