"""JoinMetrics against a fresh registry, fed by a real IntervalJoiner."""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.metrics import REASON_CLASSES, JoinMetrics, reason_class
from dataflows.metrics.histogram import BatchHistogram
from joins import Event, IntervalJoiner, JoinCounters, JoinSpec, MemoryStore, content_id
from joins.events import Side

SPEC = JoinSpec(lower_ms=0, upper_ms=10_000, how="left", max_out_of_orderness_ms=1_000)
NOW_S = 2_000_000.0  # the injected wall clock, epoch seconds
ALLOWED_LABELS = {"side", "stream", "shard", "partition", "reason", "rank", "process", "le"}


@dataclass
class Clock:
    ms: int = int(NOW_S * 1000)

    def __call__(self) -> int:
        return self.ms


def event(side: Side, key: str, ts: int, n: int = 0, partition: str = "p") -> Event:
    raw = f"{side}|{key}|{ts}|{n}".encode()
    return Event(side, key, ts, content_id(raw), {"k": key, "n": n}, partition, n)


def make_metrics(registry: CollectorRegistry, spec: JoinSpec = SPEC) -> JoinMetrics:
    return JoinMetrics(registry, process="0", spec=spec, wall_clock=lambda: NOW_S)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    assert got is not None, f"no sample {name}{labels}"
    return got


def drive(metrics: JoinMetrics, shard: str, batches: list[list[Event]]) -> IntervalJoiner:
    """Feed ``batches`` through a real joiner and report each call to ``metrics``."""
    clock = Clock()
    joiner = IntervalJoiner(SPEC, MemoryStore(), ["pl", "pr"], clock)
    for batch in batches:
        out = joiner.process(batch)
        metrics.observe_batch(shard, out, joiner.counters, 0.002, batch)
    return joiner


def workload(seed: int) -> list[list[Event]]:
    """Events of both sides, some late, some duplicated, in batches."""
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(400):
        side: Side = "left" if rng.random() < 0.5 else "right"
        ts = 1_000_000 + i * 100 + rng.randint(-4_000, 0)  # some behind the watermark
        events.append(
            event(side, f"k{rng.randint(0, 20)}", ts, i, "pl" if side == "left" else "pr")
        )
    events[40:40] = events[10:30]  # duplicates, while their originals are retained
    return [events[i : i + 37] for i in range(0, len(events), 37)]


def counter_totals(registry: CollectorRegistry, side: Side) -> dict[str, float]:
    names = {
        "events_in": "streamjoin_join_events_total",
        "late": "streamjoin_late_events_total",
        "duplicates": "streamjoin_duplicate_events_total",
        "stored": "streamjoin_stored_events_total",
        "evicted": "streamjoin_evicted_events_total",
        "unmatched_emitted": "streamjoin_unmatched_rows_total",
        "unmatched_dropped": "streamjoin_unmatched_dropped_events_total",
    }
    return {k: value(registry, n, side=side) for k, n in names.items()}


def test_counters_equal_the_joiners_and_conserve() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    joiners = [drive(metrics, f"s{i}", workload(i)) for i in range(3)]
    for j in joiners:  # end of input: everything evicted, outer rows emitted
        out = j.close()
    total = JoinCounters()
    for j in joiners:
        total.add(j.counters)
    # The closes were not reported yet: the metrics lag behind by exactly them.
    assert value(registry, "streamjoin_evicted_events_total", side="left") < total.left.evicted
    for i, j in enumerate(joiners):
        metrics.observe_batch(f"s{i}", out if i == 2 else j.advance(), j.counters, 0.001)
    assert value(registry, "streamjoin_matched_pairs_total") == total.pairs > 0
    for side in ("left", "right"):
        mine = counter_totals(registry, side)
        theirs = total.side(side)
        assert mine["events_in"] == theirs.events_in > 0
        assert mine["late"] == theirs.late > 0
        assert mine["duplicates"] == theirs.duplicates > 0
        assert mine["stored"] == theirs.stored
        assert mine["evicted"] == theirs.evicted == theirs.stored  # all evicted at close
        assert mine["unmatched_emitted"] == theirs.unmatched_emitted
        assert mine["unmatched_dropped"] == theirs.unmatched_dropped
        # The conservation law, on the metrics alone.
        assert mine["events_in"] == mine["late"] + mine["duplicates"] + mine["stored"]
        assert value(registry, "streamjoin_retained_events", side=side) == 0
    assert value(registry, "streamjoin_unmatched_rows_total", side="left") > 0
    assert value(registry, "streamjoin_unmatched_rows_total", side="right") == 0
    assert value(registry, "streamjoin_unmatched_dropped_events_total", side="right") > 0


def test_retained_and_lateness_while_running() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    joiner = drive(metrics, "s0", workload(7))
    for side in ("left", "right"):
        retained = value(registry, "streamjoin_retained_events", side=side)
        assert retained == joiner.counters.side(side).retained == joiner.store.count(side)
        late = joiner.counters.side(side).late
        assert value(registry, "streamjoin_lateness_seconds_count", side=side) == late
    assert value(registry, "streamjoin_lateness_seconds_sum", side="left") > 0
    # Batches: one observation per call, events summed.
    assert value(registry, "streamjoin_batch_duration_seconds_count") == len(workload(7))
    assert value(registry, "streamjoin_batch_events_total") == sum(map(len, workload(7)))


def test_watermarks_and_lag_are_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    joiner = drive(metrics, "s0", workload(1))
    drive(
        metrics,
        "s1",
        [[event("left", "a", 900_000, 1, "pl"), event("right", "a", 900_000, 2, "pr")]],
    )
    wm = joiner.watermark
    assert value(registry, "streamjoin_shard_watermark_seconds", shard="s0") == wm / 1000
    lowest = value(registry, "streamjoin_watermark_seconds")
    assert lowest == value(registry, "streamjoin_shard_watermark_seconds", shard="s1") < wm / 1000
    assert value(registry, "streamjoin_watermark_lag_seconds") == pytest.approx(NOW_S - lowest)
    metrics.forget_shard("s1")
    assert value(registry, "streamjoin_watermark_seconds") == wm / 1000
    # Input watermarks: newest ts - D over open partitions, per stream.
    metrics.observe_input("left", "l0", 10, 50_000)
    metrics.observe_input("left", "l1", 5, 20_000)
    metrics.observe_input("right", "r0", 3, 70_000)
    assert value(registry, "streamjoin_input_watermark_seconds", stream="left") == 19.0
    metrics.observe_input("left", "l1", 0, 20_000, closed=True)
    assert value(registry, "streamjoin_input_watermark_seconds", stream="left") == 49.0
    assert value(registry, "streamjoin_input_watermark_seconds", stream="right") == 69.0
    assert value(registry, "streamjoin_input_events_total", stream="left", partition="l1") == 5


def test_emit_lag_counts_every_emitted_row() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    joiner = drive(metrics, "s0", workload(3))
    out = joiner.close()
    metrics.observe_batch("s0", out, joiner.counters, 0.001)
    rows = joiner.counters.pairs + joiner.counters.left.unmatched_emitted
    assert value(registry, "streamjoin_emit_lag_seconds_count") == rows
    assert value(registry, "streamjoin_emit_lag_seconds_bucket", le="+Inf") == rows
    # Event times are ~1000 s after the epoch, the wall clock ~2e6 s: lags ~2e6 s.
    mean = value(registry, "streamjoin_emit_lag_seconds_sum") / rows
    assert NOW_S - 1_050 < mean < NOW_S - 990


def test_batch_histogram_matches_client_python() -> None:
    registry = CollectorRegistry()
    buckets = (0.5, 1.0, 2.0)
    reference = Histogram("ref_seconds", "reference", buckets=buckets, registry=registry)
    mine = BatchHistogram("mine_seconds", "mine", buckets)
    values = [0.1, 0.5, 0.5000001, 1.0, 1.5, 2.0, 3.0, 100.0]
    for v in values:
        reference.observe(v)
    mine.observe_many(values)
    fam = mine.family()
    got = {(s.name, s.labels.get("le")): s.value for s in fam.samples}
    for le in ("0.5", "1.0", "2.0", "+Inf"):
        want = registry.get_sample_value("ref_seconds_bucket", {"le": le})
        assert got[("mine_seconds_bucket", le)] == want
    assert got[("mine_seconds_sum", None)] == pytest.approx(sum(values))
    assert got[("mine_seconds_count", None)] == len(values)


def test_names_units_and_labels_are_bounded() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    join_key = "user-4711-private"
    drive(
        metrics,
        "s0",
        [[event("left", join_key, 1_000_000), event("right", join_key, 1_000_100, 1)]],
    )
    metrics.observe_invalid("left", ["missing field 'ts'"])
    families = list(registry.collect())
    names = {f.name for f in families}
    assert len([n for n in names if n.startswith("streamjoin_")]) >= 40
    for fam in families:
        if not fam.name.startswith("streamjoin_"):
            assert fam.name.startswith("process_"), fam.name
            continue
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples)
        for word in ("seconds", "bytes"):
            if word in fam.name:
                assert fam.name.endswith((word, f"{word}_per_second")), fam.name
        for sample in fam.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (fam.name, sample.labels)
    text = generate_latest(registry).decode()
    assert join_key not in text
    assert "_ms" not in re.sub(r"#.*", "", text)  # base units only


def test_invalid_counts_by_reason_class() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    metrics.observe_invalid(
        "right", ["missing field 'ts'", "missing field 'key'", "invalid JSON: x"]
    )
    assert (
        value(registry, "streamjoin_invalid_events_total", stream="right", reason="missing_field")
        == 2
    )
    assert value(registry, "streamjoin_invalid_events_total", stream="right", reason="parse") == 1
    assert value(registry, "streamjoin_invalid_events_total", stream="left", reason="avro") == 0


def test_reason_classes_of_the_decoders_real_reasons(tmp_path: Path) -> None:
    lines = {
        "{not json": "parse",
        "[1, 2]": "parse",
        json.dumps({"ts": 5}): "missing_field",
        json.dumps({"key": "a"}): "missing_field",
        json.dumps({"key": "a", "ts": None}): "empty_value",
        json.dumps({"key": "a", "ts": "abc"}): "bad_type",
        json.dumps({"key": "a", "ts": 2**62}): "out_of_range",
        json.dumps({"key": "", "ts": 1}): "empty_value",
        json.dumps({"key": 1.5, "ts": 1}): "bad_type",
        json.dumps({"key": "a\u0000b", "ts": 1}): "bad_key",
    }
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(line.encode() for line in lines) + b'\n{"key": "\x80", "ts": 1}\n')
    fmt = SourceFormat("jsonl", ("key",), "ts", "ms")
    reasons = [
        item.reason
        for batch, _ in read_batches(str(path), "left", fmt, "p")
        for item in batch
        if isinstance(item, Invalid)
    ]
    assert len(reasons) == len(lines) + 1
    want = [*lines.values(), "encoding"]
    assert [reason_class(r) for r in reasons] == want, reasons
    assert reason_class("avro: corrupt record 3") == "avro"
    assert reason_class("something new") == "other"
    assert set(want) | {"avro", "other"} <= set(REASON_CLASSES)


def test_snapshot_and_resume() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    metrics.observe_snapshot(0.012, 4096)
    metrics.observe_snapshot(0.020, 1024)
    metrics.observe_resume(1.5, shards=4)
    assert value(registry, "streamjoin_snapshot_duration_seconds_count") == 2
    assert value(registry, "streamjoin_snapshot_duration_seconds_sum") == pytest.approx(0.032)
    assert value(registry, "streamjoin_snapshot_written_bytes_total") == 5120
    assert value(registry, "streamjoin_last_snapshot_bytes") == 1024
    assert value(registry, "streamjoin_last_snapshot_timestamp_seconds") == NOW_S
    assert value(registry, "streamjoin_resume_duration_seconds") == 1.5
    assert value(registry, "streamjoin_resumed_shards_total") == 4
    assert value(registry, "streamjoin_process_info", process="0") == 1


def test_one_bundle_per_registry() -> None:
    registry = CollectorRegistry()
    make_metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        make_metrics(registry)


def test_a_resumed_shard_counts_its_restored_totals_once() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    before = drive(metrics, "s0", workload(11)[:5])
    # The process restarts: a fresh bundle, a joiner restored from the snapshot.
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    resumed = IntervalJoiner(SPEC, before.store, ["pl", "pr"], Clock(), state=before.to_state())
    for batch in workload(11)[5:]:
        metrics.observe_batch("s0", resumed.process(batch), resumed.counters, 0.001, batch)
    assert value(registry, "streamjoin_matched_pairs_total") == resumed.counters.pairs
    for side in ("left", "right"):
        got = value(registry, "streamjoin_join_events_total", side=side)
        assert got == resumed.counters.side(side).events_in > before.counters.side(side).events_in


def test_scrapes_run_safely_beside_the_worker_threads() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    errors: list[BaseException] = []

    def work(shard: str) -> None:
        try:
            drive(metrics, shard, workload(len(shard)))
        except BaseException as exc:  # reported below; a thread cannot raise into pytest
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"s{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    scrapes = 0
    while any(t.is_alive() for t in threads) or scrapes == 0:
        generate_latest(registry)
        scrapes += 1
    for t in threads:
        t.join()
    assert not errors
    assert scrapes > 0
    total = sum(value(registry, "streamjoin_join_events_total", side=s) for s in ("left", "right"))
    assert total == 3 * sum(map(len, workload(0)))


def test_observe_ages_counts_like_observe_many_and_scales_a_sample() -> None:
    buckets = (0.5, 1.0, 2.0, 60.0)
    exact = BatchHistogram("exact_seconds", "by value", buckets)
    ages = BatchHistogram("ages_seconds", "by event time", buckets)
    now_s = 1_000.0
    times = [999_900, 999_500, 999_000, 998_999, 998_000, 990_000, 900_000, 1_000_000]
    exact.observe_many([now_s - t / 1000.0 for t in times])
    ages.observe_ages(now_s, list(times))
    got = {(s.name[5:], s.labels.get("le")): s.value for s in ages.family().samples}
    want = {(s.name[6:], s.labels.get("le")): s.value for s in exact.family().samples}
    assert got.pop(("seconds_sum", None)) == pytest.approx(want.pop(("seconds_sum", None)))
    assert got == want
    sampled = BatchHistogram("sampled_seconds", "a sample of 4 standing for 8", buckets)
    sampled.observe_ages(now_s, times[::2], count=8)
    by_name = {(s.name, s.labels.get("le")): s.value for s in sampled.family().samples}
    assert by_name[("sampled_seconds_count", None)] == 8
    assert by_name[("sampled_seconds_bucket", "+Inf")] == 8
    buckets_seen = [by_name[("sampled_seconds_bucket", le)] for le in ("0.5", "1.0", "2.0", "60.0")]
    assert buckets_seen == sorted(buckets_seen)  # still cumulative
