"""A partition declared up front takes its first report's ``active_ms`` as is:
a source that reports a partition idle from the start (an empty Kafka
partition) does not hold ``W`` back for an idle timeout; later reports only
move ``active_ms`` forward."""

from __future__ import annotations

from joins import (
    Event,
    IntervalJoiner,
    JoinSpec,
    MemoryStore,
    PartitionMark,
    WatermarkTracker,
    content_id,
)
from joins.watermark import WM_MIN

IDLE = 30_000
D = 1_000


def event(key: str, ts: int) -> Event:
    return Event("left", key, ts, content_id(key.encode()), {"key": key}, "busy")


def tracker(now: int) -> WatermarkTracker:
    return WatermarkTracker(
        ["busy", "empty"], max_out_of_orderness_ms=D, idle_timeout_ms=IDLE, start_ms=now
    )


def test_a_declared_partition_reported_idle_from_the_start_does_not_hold_w() -> None:
    t = tracker(now=100_000)
    t.observe(PartitionMark("busy", 50_000, 100_000))
    assert t.advance(100_000) == WM_MIN  # "empty" has not reported: it holds W
    t.observe(PartitionMark("empty", None, 100_000 - IDLE))
    assert t.advance(100_001) == 50_000 - D


def test_later_reports_only_move_active_forward() -> None:
    t = tracker(now=100_000)
    t.observe(PartitionMark("busy", 50_000, 100_000))
    t.observe(PartitionMark("empty", 10_000, 100_000))
    t.observe(PartitionMark("empty", None, 100_000 - IDLE))  # older: ignored
    assert t.advance(100_001) == 10_000 - D


def test_a_restored_partition_takes_its_first_report_as_is() -> None:
    t = tracker(now=100_000)
    t.observe(PartitionMark("busy", 50_000, 100_000))
    t.observe(PartitionMark("empty", None, 100_000))
    restored = WatermarkTracker.from_state(
        t.to_state(), max_out_of_orderness_ms=D, idle_timeout_ms=IDLE, now_ms=200_000
    )
    restored.observe(PartitionMark("busy", 60_000, 200_000))
    assert restored.advance(200_000) == WM_MIN
    restored.observe(PartitionMark("empty", None, 200_000 - IDLE))
    assert restored.advance(200_001) == 60_000 - D


def test_the_joiners_watermark_moves_at_once_past_an_empty_partition() -> None:
    now = [100_000]
    spec = JoinSpec(lower_ms=0, upper_ms=1_000, how="left", max_out_of_orderness_ms=D,
                    allowed_lateness_ms=0, idle_timeout_ms=IDLE)
    joiner = IntervalJoiner(spec, MemoryStore(), ["busy", "empty"], lambda: now[0])
    e = event("k", 1_000)
    joiner.process([e], [PartitionMark("busy", 1_000, now[0])])
    assert joiner.watermark == WM_MIN  # the empty partition has not reported yet
    out = joiner.process(
        [event("k2", 10_000)],
        [PartitionMark("busy", 10_000, now[0]), PartitionMark("empty", None, now[0] - IDLE)],
    )
    assert out.watermark_ms == 10_000 - D
