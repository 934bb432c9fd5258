"""The Kafka source against a real Kafka protocol server: partitions, until-end,
resume state, idleness only when caught up, heartbeats, dead letters."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from conftest import KafkaHost

from dataflows.inputs import SourceFormat
from dataflows.kafka import KafkaSettings, parse_kafka_url
from dataflows.kafka.produce import produce
from dataflows.sources.kafka import (
    KafkaInput,
    KafkaPartition,
    KafkaPosition,
    KafkaSource,
    KafkaSourceOptions,
)
from dataflows.sources.marks import SourceBatch
from joins.watermark import WatermarkTracker

SETTINGS = KafkaSettings()
IDLE = 30_000


class Clock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def put(kafka: KafkaHost, topic: str, partition: int, records: list[dict[str, object] | bytes]
        ) -> None:
    items = [(None, r if isinstance(r, bytes) else json.dumps(r).encode()) for r in records]
    produce(SETTINGS, kafka.bootstrap, topic, items, partition_of=lambda _: partition)


def source(kafka: KafkaHost, topic: str, clock: Clock, **options: object) -> KafkaSource:
    spec = KafkaInput("left", parse_kafka_url(f"kafka://{kafka.bootstrap}/{topic}"),
                      SourceFormat("jsonl"))
    opts = KafkaSourceOptions(**{"idle_timeout_ms": IDLE, "poll_interval_ms": 1, **options})
    return KafkaSource([spec], SETTINGS, opts, clock=clock)


def read_until(part: KafkaPartition, done: Callable[[list[SourceBatch]], bool],
               timeout_s: float = 10.0) -> list[SourceBatch]:
    got: list[SourceBatch] = []
    deadline = time.monotonic() + timeout_s
    while not done(got):
        assert time.monotonic() < deadline, f"timed out; read {got}"
        try:
            got.extend(part.next_batch())
        except StopIteration:
            break
        time.sleep(0.002)
    return got


def events_of(batches: list[SourceBatch]) -> list[tuple[int, int]]:
    return [(e.offset, e.ts) for b in batches for e in b.events]


def closed(batches: list[SourceBatch]) -> bool:
    return any(b.closed for b in batches)


def test_until_end_reads_to_the_end_taken_at_start(
    kafka: KafkaHost, new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(3)
    put(kafka, topic, 0, [{"key": "a", "ts": t} for t in (5, 3, 9)])
    put(kafka, topic, 1, [{"key": "b", "ts": 7}, b"{broken", {"key": "b"}])
    src = source(kafka, topic, Clock(), until_end=True)
    assert src.list_parts() == [f"left:{topic}:0", f"left:{topic}:1", f"left:{topic}:2"]
    p0 = src.build_part("in", f"left:{topic}:0", None)
    put(kafka, topic, 0, [{"key": "a", "ts": 100}])  # after the start: not read
    got = read_until(p0, closed)
    assert events_of(got) == [(0, 5), (1, 3), (2, 9)]
    totals = got[-1].totals
    assert totals is not None
    kafka = totals.pop("kafka")
    assert totals == {"kind": "source", "partition": f"left:{topic}:0",
                      "side": "left", "events": 3, "invalid": 0}
    # run.json's record of the partition: read from the first offset to the end
    # offset taken at start (the record produced after the start is not lag).
    assert {k: kafka[k] for k in ("topic", "partition", "first_offset", "end_offset",
                                  "next_offset", "lag_records", "last_ts")} == {
        "topic": topic, "partition": 0, "first_offset": 0, "end_offset": 3,
        "next_offset": 3, "lag_records": 0, "last_ts": 9}
    assert got[-1].mark.max_ts == 9
    p1 = src.build_part("in", f"left:{topic}:1", None)
    got = read_until(p1, closed)
    bad = [(i.offset, i.reason, i.raw, i.partition) for b in got for i in b.invalid]
    assert bad == [(1, "invalid JSON: Expecting property name enclosed in double quotes "
                       "at column 2", b"{broken", f"left:{topic}:1"),
                   (2, "missing field 'ts'", b'{"key": "b"}', f"left:{topic}:1")]
    p2 = src.build_part("in", f"left:{topic}:2", None)  # empty: closes at once
    [only] = read_until(p2, closed)
    assert only.closed
    assert only.mark.max_ts is None


def test_resume_state_is_offset_and_watermark_state(
    kafka: KafkaHost, new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    put(kafka, topic, 0, [{"key": "k", "ts": t} for t in (10, 40, 20, 30, 50)])
    src = source(kafka, topic, Clock(), until_end=True, batch_size=2)
    name = f"left:{topic}:0"
    first = src.build_part("in", name, None)
    got = read_until(first, lambda b: len(events_of(b)) >= 2)
    assert events_of(got) == [(0, 10), (1, 40)]
    state = first.snapshot()
    assert state == KafkaPosition(next_offset=2, max_ts=40, events=2, invalid=0, end_offset=5,
                                  first_offset=0, readers=((0, ""),))
    first.close()
    put(kafka, topic, 0, [{"key": "k", "ts": 99}])  # past the end the first start took
    again = src.build_part("in", name, state)
    got = read_until(again, closed)
    assert events_of(got) == [(2, 20), (3, 30), (4, 50)]
    assert got[0].mark.max_ts == 40  # the watermark state did not restart
    assert got[-1].totals is not None
    assert got[-1].totals["events"] == 5


def test_idle_only_when_caught_up_and_silent_empty_idle_at_once(
    kafka: KafkaHost, new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(2)
    put(kafka, topic, 0, [{"key": "k", "ts": 1000 * t} for t in range(1, 7)])
    clock = Clock()
    src = source(kafka, topic, clock, batch_size=1, heartbeat_ms=1)
    busy = src.build_part("in", f"left:{topic}:0", None)
    empty = src.build_part("in", f"left:{topic}:1", None)
    tracker = WatermarkTracker([], max_out_of_orderness_ms=0, idle_timeout_ms=IDLE,
                               start_ms=clock.now)
    # The empty partition reports itself idle from the start ...
    [hb] = read_until(empty, lambda b: len(b) >= 1)
    assert hb.mark.active_ms <= clock.now - IDLE
    tracker.observe(hb.mark)
    # ... while the lagging one, read one record per call with the clock minutes
    # ahead each time, reports itself active at every read: never idle.
    for n in range(1, 7):
        for batch in read_until(busy, lambda b: len(events_of(b)) >= 1):
            tracker.observe(batch.mark)
            assert batch.mark.active_ms == clock.now
        assert tracker.advance(clock.now) == 1000 * n  # it holds W at its own mark
        clock.now += 10 * IDLE
    for batch in read_until(busy, lambda b: busy.caught_up and len(b) > 0):
        tracker.observe(batch.mark)
    caught_up_at = clock.now
    assert busy.snapshot().next_offset == 6
    # Caught up: silent for less than the idle timeout, still active ...
    clock.now += IDLE - 1
    [beat] = read_until(busy, lambda b: len(b) >= 1)
    assert beat.mark.active_ms == caught_up_at
    tracker.observe(beat.mark)
    assert tracker.advance(clock.now) == 6000
    # ... and idle from the idle timeout on (W is no longer held by it).
    clock.now += 1
    [beat] = read_until(busy, lambda b: len(b) >= 1)
    assert clock.now - beat.mark.active_ms >= IDLE
    tracker.observe(beat.mark)
    tracker.observe_event("right:other:0", 9000, clock.now)
    assert tracker.advance(clock.now) == 9000


def test_unbounded_tails_with_heartbeats(
    kafka: KafkaHost, new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    clock = Clock()
    part = source(kafka, topic, clock, heartbeat_ms=500).build_part(
        "in", f"left:{topic}:0", None)
    first = read_until(part, lambda b: len(b) >= 1)
    assert first[0].broadcast  # the first mark always goes to every shard
    assert part.next_batch() == []  # nothing new, no heartbeat due
    assert part.next_awake() is not None  # and it asks not to be polled at once
    clock.now += 500
    [heartbeat] = read_until(part, lambda b: len(b) >= 1)
    assert heartbeat.broadcast
    assert heartbeat.events == []
    put(kafka, topic, 0, [{"key": "z", "ts": 77}])
    got = read_until(part, lambda b: len(events_of(b)) >= 1)
    assert events_of(got) == [(0, 77)]
    assert part.lag_records() == 0
    part.close()


def test_a_lagging_partition_without_events_is_not_idle(
    kafka: KafkaHost, new_topic: Callable[[int], str]
) -> None:
    """Reads that bring no event (here dead letters only) while records are still
    waiting on the broker keep the partition active."""
    topic = new_topic(1)
    put(kafka, topic, 0, [b"{bad"] * 4 + [{"key": "k", "ts": 5}])
    clock = Clock()
    part = source(kafka, topic, clock, batch_size=1, heartbeat_ms=1).build_part(
        "in", f"left:{topic}:0", None)
    for _ in range(4):
        clock.now += 10 * IDLE
        got = read_until(part, lambda b: any(x.invalid for x in b))
        assert not events_of(got)
        assert got[-1].mark.active_ms == clock.now


def test_lag_in_records_and_seconds_behind_the_wall_clock(
    kafka: KafkaHost, new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    put(kafka, topic, 0, [{"key": "k", "ts": 1000 * t} for t in range(1, 6)])
    clock = Clock(now=60_000)
    part = source(kafka, topic, clock, batch_size=2).build_part("in", f"left:{topic}:0", None)
    assert part.lag_records() == 5
    assert part.lag_seconds() == 0.0  # nothing read yet: no event time to be behind
    read_until(part, lambda b: len(events_of(b)) >= 2)
    assert part.lag_records() == 3
    assert part.lag_seconds() == (60_000 - 2000) / 1000  # wall clock - last event read
    read_until(part, lambda b: len(events_of(b)) >= 3)
    assert part.lag_records() == 0
    assert part.lag_seconds() == 0.0  # caught up: not behind, however old the data
    part.close()


def test_many_partitions_each_read_a_share_of_the_process_budget(
    kafka: KafkaHost, new_topic: Callable[[int], str]
) -> None:
    # 40 partitions in one process: 20 reads of 10,000 shared, 5,000 a read,
    # and 256 MiB of prefetch shared, 6,553 KiB a consumer.
    topic = new_topic(40)
    src = source(kafka, topic, Clock(), batch_size=10_000, until_end=True)
    part = src.build_part("in", f"left:{topic}:0", None)
    assert (part._options.batch_size, part._options.prefetch_kib) == (5_000, 6_553)
    part.close()
    two = source(kafka, topic, Clock(), batch_size=10_000, until_end=True, processes=2)
    part = two.build_part("in", f"left:{topic}:1", None)
    assert (part._options.batch_size, part._options.prefetch_kib) == (10_000, 13_107)
    part.close()
