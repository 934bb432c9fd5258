"""The run's progress line: what each worker writes (its status file) and how
the parent adds them up, measures the pace and words the line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dataflows.config import build_config
from dataflows.generator import GeneratorConfig, generate
from dataflows.inputs import SourceFormat, count_records, read_batches
from dataflows.metrics import StatusWriter, aggregate, format_progress, read_statuses
from dataflows.metrics.progress import ProcessProgress
from dataflows.metrics.watch import InputSize, RunProgress, _Pace, input_sizes
from joins import JoinCounters
from joins.counters import SideCounters


def _part(side: str, position: int, events: int, invalid: int = 0, max_ts: int | None = None,
          closed: bool = False, backlog: int | None = None) -> dict[str, Any]:
    return {"side": side, "position": position, "events": events, "invalid": invalid,
            "max_ts_ms": max_ts, "closed": closed, "backlog": backlog}


STATUSES = [
    {"process": 0, "time": 1.0, "done": False, "watermark_ms": 50_000, "shards": 4,
     "late": {"left": 2, "right": 0},
     "partitions": {"left:0:a.jsonl": _part("left", 500, 90, 10, max_ts=60_000),
                    "right:0:b.avro": _part("right", 30, 30, max_ts=58_000)}},
    {"process": 1, "time": 1.0, "done": False, "watermark_ms": 45_000, "shards": 4,
     "late": {"left": 1, "right": 5},
     "partitions": {"left:1:c.jsonl": _part("left", 1_000, 200, closed=True, max_ts=70_000)}},
]
SIZES = {
    "left:0:a.jsonl": InputSize(1_000, 1_000),  # half its bytes read
    "right:0:b.avro": InputSize(2_000, 120),  # a quarter of its records
    "left:1:c.jsonl": InputSize(1_000, 1_000),  # closed: all of it
    "left:2:d.jsonl": InputSize(1_000, 1_000),  # not started
}


def test_the_processes_figures_add_up() -> None:
    p = aggregate(STATUSES, SIZES, state_bytes=3 * 1024 * 1024)
    assert p.events == {"left": 290, "right": 30}
    assert p.invalid == {"left": 10, "right": 0}
    assert p.late == {"left": 3, "right": 5}
    assert p.watermark_ms == 45_000  # the lowest over the processes
    assert p.newest_ms == 70_000
    assert not p.ended
    assert p.backlog is None
    # Weighted by bytes: (500 + 2000 * 0.25 + 1000 + 0) / 5000.
    assert p.read_share == pytest.approx(0.4)
    assert p.records == 330


def test_the_line_says_every_figure() -> None:
    p = aggregate(STATUSES, SIZES, state_bytes=3 * 1024 * 1024)
    assert format_progress(p, 1234.4, 75.0) == (
        "read 40.0%, ETA 1m15s | left 290 right 30 | 1,234 ev/s | W 1970-01-01 00:00:45 "
        "(lag 25s) | late 3/5 | invalid 10/0 | state 3.0 MiB"
    )
    # Before the first watermark, before a rate; at the end.
    early = RunProgress({"left": 0, "right": 0}, {"left": 0, "right": 0},
                        {"left": 0, "right": 0}, None, False, None, 0, 0.0, None)
    assert format_progress(early, None, None).startswith("read 0.0%, ETA - | left 0 right 0 | "
                                                         "- ev/s | W - |")
    done = [dict(s, done=True) for s in STATUSES]
    line = format_progress(aggregate(done, {}, 0), 10.0, None)
    assert "| W end |" in line
    assert "read" not in line  # no bounded input: no share


def test_a_kafka_backlog_is_shown_as_consumer_lag() -> None:
    status = {"partitions": {"left:0:t/0": _part("left", 10, 10, backlog=400),
                             "left:1:t/1": _part("left", 10, 10, backlog=35)}}
    line = format_progress(aggregate([status], {}, 0), None, None)
    assert "| kafka lag 435 |" in line


def test_the_pace_gives_a_rate_and_an_eta() -> None:
    pace = _Pace()
    assert pace.add(100.0, 0, 0.0) == (None, None)
    rate, eta = pace.add(102.0, 2_000, 0.25)
    assert rate == pytest.approx(1_000.0)
    assert eta == pytest.approx(6.0)  # 0.75 left at 0.125 a second
    # No progress in the window: no ETA.
    assert pace.add(103.0, 2_000, 0.25) == (pytest.approx(2_000 / 3), pytest.approx(9.0))


def test_a_worker_writes_what_its_metrics_hold(tmp_path: Path) -> None:
    progress = ProcessProgress(max_out_of_orderness_ms=1_000)
    progress.record_input("left", "left:0:a", 9_000, position=700, events=40, invalid=2)
    progress.record_input("right", "right:0:b", 8_000, closed=True, position=99, events=9,
                          invalid=0)
    progress.record_batch("s0", JoinCounters(SideCounters(late=3), SideCounters(late=1), 0), 7_000)
    progress.record_batch("s1", JoinCounters(), 6_500)
    writer = StatusWriter(str(tmp_path), 1, progress, interval_s=0.05)
    writer.start()
    deadline = time.monotonic() + 5
    while not read_statuses(str(tmp_path), 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    writer.finish()
    (status,) = read_statuses(str(tmp_path), 2)  # process 0 wrote nothing
    assert status["process"] == 1
    assert status["done"] is True
    assert status["watermark_ms"] == 6_500
    assert status["late"] == {"left": 3, "right": 1}
    assert status["partitions"] == {
        "left:0:a": _part("left", 700, 40, 2, max_ts=9_000),
        "right:0:b": _part("right", 99, 9, 0, max_ts=8_000, closed=True),
    }
    assert json.loads((tmp_path / ".run" / "status-1.json").read_text()) == status


def test_an_avro_files_end_is_where_its_reader_ends(tmp_path: Path) -> None:
    ds = generate(tmp_path / "data", GeneratorConfig(impressions=3_000, keys=300), format="avro",
                  progress=False)
    path = str(ds.left_paths[0])
    positions = [pos for _batch, pos in read_batches(path, "left", SourceFormat("avro"), "p",
                                                     batch_size=700)]
    assert count_records(path) == positions[-1] == 3_003  # 3 copies
    cfg = build_config({"left": path, "right": str(ds.right_paths[0]), "out": str(tmp_path / "o")})
    sizes = input_sizes(cfg)
    assert sizes["left:0:impressions.avro"] == InputSize(Path(path).stat().st_size, 3_003)
