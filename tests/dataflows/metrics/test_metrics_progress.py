"""ProcessProgress: what the metrics remember of the shards and inputs of a
process, between the worker threads that record it and the scrapes that read it."""

from __future__ import annotations

from dataflows.metrics.progress import ProcessProgress
from joins import JoinCounters
from joins.counters import SideCounters
from joins.watermark import WM_MAX, WM_MIN


def counters(left_in: int, right_in: int, pairs: int) -> JoinCounters:
    return JoinCounters(SideCounters(events_in=left_in), SideCounters(events_in=right_in), pairs)


def test_a_batch_returns_what_was_recorded_before_and_keeps_a_copy() -> None:
    progress = ProcessProgress(max_out_of_orderness_ms=1_000)
    live = counters(3, 1, 2)  # the joiner's own object, mutated by later batches
    assert progress.record_batch("s0", live, 5_000) == JoinCounters()
    live.left.events_in = 10
    live.pairs = 7
    assert progress.record_batch("s0", live, 6_000) == counters(3, 1, 2)
    progress.record_batch("s1", counters(1, 1, 1), 4_000)
    assert progress.counters() == counters(11, 2, 8)
    assert progress.watermarks_ms() == {"s0": 6_000, "s1": 4_000}


def test_no_watermark_until_a_real_one_and_none_after_the_end() -> None:
    progress = ProcessProgress(max_out_of_orderness_ms=0)
    progress.record_batch("s0", counters(1, 0, 0), WM_MIN)  # no event time yet
    assert progress.watermarks_ms() == {}
    progress.record_batch("s0", counters(2, 0, 0), 3_000)
    progress.record_batch("s0", counters(2, 0, 0), WM_MAX)  # end of input: keeps 3000
    assert progress.watermarks_ms() == {"s0": 3_000}
    progress.end_shard("s0")
    progress.end_shard("never-seen")
    assert progress.watermarks_ms() == {}
    assert progress.counters() == counters(2, 0, 0)  # counts are cumulative: they stay


def test_input_watermarks_are_the_minimum_over_open_partitions() -> None:
    progress = ProcessProgress(max_out_of_orderness_ms=1_000)
    progress.record_input("left", "p0", None)  # read nothing valid yet
    assert progress.input_watermarks_ms() == {}
    progress.record_input("left", "p0", 10_000)
    progress.record_input("left", "p1", 4_000)
    progress.record_input("right", "p0", 8_000)
    progress.record_input("left", "p0", None)  # a read without events keeps the newest
    assert progress.input_watermarks_ms() == {"left": 3_000, "right": 7_000}
    progress.record_input("left", "p1", 4_000, closed=True)  # exhausted: holds nothing
    assert progress.input_watermarks_ms() == {"left": 9_000, "right": 7_000}
