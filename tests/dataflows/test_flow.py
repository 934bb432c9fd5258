"""The Bytewax join operator end to end, in process (``bytewax.testing.run_main``).

Scripted source partitions (real :class:`~dataflows.sources.MarkStamper` marks,
real wall-clock pacing) feed :func:`dataflows.flow.interval_join`; the outputs
are compared with a brute-force batch join of the events that were not late.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import TestingSink, run_main

from dataflows.flow import interval_join, memory_runtime, rocks_runtime
from dataflows.shard_logic import ShardRuntime
from dataflows.sources import MarkStamper, SourceBatch, wall_ms
from joins import Event, JoinSpec, Late, Matched, Unmatched, content_id


def event(side: str, key: str, ts: int, partition: str, n: int = 0) -> Event:
    raw = f"{side}|{key}|{ts}|{n}".encode()
    return Event(side, key, ts, content_id(raw), {"key": key, "ts": ts, "n": n}, partition, 0)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Step:
    """Wait ``wait_ms`` of wall time, then emit ``events`` (one batch)."""

    wait_ms: int
    events: list[Event]


class _ScriptedPartition(StatefulSourcePartition[SourceBatch, None]):
    def __init__(self, name: str, side: str, steps: Sequence[Step], heartbeat_ms: int) -> None:
        self._side = side
        self._steps = list(steps)
        self._stamper = MarkStamper(name, None, heartbeat_ms, wall_ms)
        self._due = time.monotonic()
        self._next_heartbeat = time.monotonic()
        self._heartbeat_s = heartbeat_ms / 1000
        self._done = False
        if self._steps:
            self._due += self._steps[0].wait_ms / 1000

    def next_batch(self) -> list[SourceBatch]:
        if self._done:
            raise StopIteration
        now = time.monotonic()
        if not self._steps:
            self._done = True
            mark, _ = self._stamper.stamp([], closed=True)
            return [SourceBatch(self._side, [], [], mark, True, {"kind": "source"})]  # type: ignore[arg-type]
        if now >= self._due:
            step = self._steps.pop(0)
            if self._steps:
                self._due = now + self._steps[0].wait_ms / 1000
            mark, broadcast = self._stamper.stamp(step.events)
            return [SourceBatch(self._side, step.events, [], mark, broadcast)]  # type: ignore[arg-type]
        if now >= self._next_heartbeat:
            # Silent but open: a heartbeat carries the old activity time.
            self._next_heartbeat = now + self._heartbeat_s
            mark, _ = self._stamper.stamp([])
            return [SourceBatch(self._side, [], [], mark, True)]  # type: ignore[arg-type]
        return []

    def next_awake(self) -> datetime:
        return datetime.now(UTC) + timedelta(milliseconds=5)

    def snapshot(self) -> None:
        return None


class ScriptedSource(FixedPartitionedSource[SourceBatch, None]):
    """Partitions that emit scripted batches at scripted wall-clock times."""

    def __init__(self, scripts: dict[str, list[Step]], heartbeat_ms: int = 50) -> None:
        self._scripts = scripts
        self._heartbeat_ms = heartbeat_ms

    def list_parts(self) -> list[str]:
        return list(self._scripts)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ScriptedPartition:
        side = for_part.split(":", 1)[0]
        return _ScriptedPartition(for_part, side, self._scripts[for_part], self._heartbeat_ms)


@dataclass
class Collected:
    joined: list[tuple[float, Matched | Unmatched]]
    late: list[tuple[float, Late]]
    stats: list[dict[str, Any]]

    def rows(self) -> Counter[tuple[object, ...]]:
        rows: Counter[tuple[object, ...]] = Counter()
        for _, row in self.joined:
            if isinstance(row, Matched):
                rows[("match", row.left.identity, row.right.identity)] += 1
            else:
                rows[(row.kind, row.event.identity)] += 1
        return rows


def run_join(
    scripts: dict[str, list[Step]],
    spec: JoinSpec,
    shards: int = 8,
    runtime: ShardRuntime | None = None,
) -> Collected:
    flow = Dataflow("test_join")
    src = op.input("in", flow, ScriptedSource(scripts))
    rt = runtime or memory_runtime(spec, tuple(scripts))
    out = interval_join("join", src, rt, shards)
    joined: list[Any] = []
    late: list[Any] = []
    stats: list[Any] = []

    def stamp_rows(item: tuple[str, list[Any]]) -> list[tuple[float, Any]]:
        now = time.monotonic()
        return [(now, row) for row in item[1]]

    op.output("j", op.flat_map("tj", out.joined, stamp_rows), TestingSink(joined))
    op.output("l", op.flat_map("tl", out.late, stamp_rows), TestingSink(late))
    op.output("s", out.stats, TestingSink(stats))
    run_main(flow, epoch_interval=timedelta(milliseconds=200))
    return Collected(joined, late, stats)


def batch_join(spec: JoinSpec, events: Iterable[Event]) -> Counter[tuple[object, ...]]:
    """Brute force: the batch interval join of the distinct events."""
    distinct = {(e.side, e.identity): e for e in events}
    left = [e for e in distinct.values() if e.side == "left"]
    right = [e for e in distinct.values() if e.side == "right"]
    rows: Counter[tuple[object, ...]] = Counter()
    matched = set()
    for l in left:  # noqa: E741
        for r in right:
            if l.key == r.key and l.ts + spec.lower_ms <= r.ts <= l.ts + spec.upper_ms:
                rows[("match", l.identity, r.identity)] += 1
                matched.update({("left", l.identity), ("right", r.identity)})
    for side, outer in (("left", spec.outer_left), ("right", spec.outer_right)):
        kind = f"{side}_only"
        if outer:
            for e in left if side == "left" else right:
                if (side, e.identity) not in matched:
                    rows[(kind, e.identity)] += 1
    return rows


def assert_exact(spec: JoinSpec, events: list[Event], got: Collected) -> None:
    # A copy of an event may be late while another copy is on time: only the
    # late occurrences are taken out.
    late = Counter((x.event.side, x.event.identity) for _, x in got.late)
    on_time = []
    for e in events:
        ident = (e.side, e.identity)
        if late[ident]:
            late[ident] -= 1
        else:
            on_time.append(e)
    assert got.rows() == batch_join(spec, on_time)


def random_scripts(
    seed: int, partitions: int, per_partition: int, keys: int, disorder_ms: int
) -> tuple[dict[str, list[Step]], list[Event]]:
    rng = random.Random(seed)
    scripts: dict[str, list[Step]] = {}
    every: list[Event] = []
    for side in ("left", "right"):
        for p in range(partitions):
            name = f"{side}:{p}:f{p}"
            evs = []
            for i in range(per_partition):
                ts = i * 100 + rng.randint(0, disorder_ms)
                evs.append(event(side, f"k{rng.randrange(keys)}", ts, name, i))
            evs += rng.sample(evs, per_partition // 20)  # duplicates
            every += evs
            steps = []
            i = 0
            while i < len(evs):
                n = rng.randint(1, 60)
                steps.append(Step(rng.randint(0, 3), evs[i : i + n]))
                i += n
            scripts[name] = steps
    return scripts, every


@pytest.mark.parametrize("how", ["inner", "left", "right", "full"])
def test_join_is_exact_for_every_join_type(how: str) -> None:
    spec = JoinSpec(
        lower_ms=-500, upper_ms=2_000, how=how, max_out_of_orderness_ms=300  # type: ignore[arg-type]
    )
    scripts, events = random_scripts(
        seed=7, partitions=2, per_partition=400, keys=40, disorder_ms=800
    )
    got = run_join(scripts, spec, shards=8)
    assert_exact(spec, events, got)
    assert got.late, "the disorder exceeds D: some events must be late"
    counters = [s for s in got.stats if s.get("kind") == "shard"]
    assert sum(c["left"]["events_in"] + c["right"]["events_in"] for c in counters) == len(events)
    assert all(c["left"]["retained"] == 0 == c["right"]["retained"] for c in counters)


def test_rocksdb_state_gives_the_same_rows(tmp_path: Path) -> None:
    spec = JoinSpec(upper_ms=1_000, how="full", max_out_of_orderness_ms=200)
    scripts, events = random_scripts(
        seed=3, partitions=1, per_partition=300, keys=20, disorder_ms=400
    )
    rt = rocks_runtime(spec, tuple(scripts), str(tmp_path / "state"))
    got = run_join(scripts, spec, shards=4, runtime=rt)
    assert_exact(spec, events, got)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) != []


def test_a_stream_that_falls_behind_does_not_make_the_other_late() -> None:
    # Left is read 20x faster in event time than right: W is the minimum over
    # partitions, so right's events stay on time however far behind they are.
    spec = JoinSpec(upper_ms=5_000, how="full", max_out_of_orderness_ms=100, idle_timeout_ms=30_000)
    left = [event("left", f"k{i % 10}", i * 100, "left:0:fast", i) for i in range(1_000)]
    right = [event("right", f"k{i % 10}", i * 100 + 50, "right:0:slow", i) for i in range(1_000)]
    scripts = {
        "left:0:fast": [Step(1, left[i : i + 100]) for i in range(0, 1_000, 100)],
        "right:0:slow": [Step(2, right[i : i + 5]) for i in range(0, 1_000, 5)],
    }
    got = run_join(scripts, spec)
    assert got.late == []
    assert_exact(spec, left + right, got)
    assert sum(1 for _, r in got.joined if isinstance(r, Matched)) > 0


def test_an_idle_stream_does_not_stall_eviction() -> None:
    # Right stays open and silent; after the idle timeout it no longer holds W
    # back, so left events are evicted (emitted unmatched) while the flow runs,
    # and right's first event, far behind W by then, is late.
    spec = JoinSpec(upper_ms=1_000, how="left", max_out_of_orderness_ms=100, idle_timeout_ms=300)
    left = [event("left", f"k{i}", i * 1_000, "left:0:busy", i) for i in range(40)]
    late_right = event("right", "k0", 10, "right:0:quiet", 0)
    scripts = {
        "left:0:busy": [Step(50, left[i : i + 2]) for i in range(0, 40, 2)],
        "right:0:quiet": [Step(2_000, [late_right])],
    }
    t0 = time.monotonic()
    got = run_join(scripts, spec)
    unmatched_at = sorted(t - t0 for t, r in got.joined if isinstance(r, Unmatched))
    assert len(unmatched_at) == 40
    # Left's script ends after ~1 s; right speaks after ~2 s: eviction must not
    # have waited for either.
    assert unmatched_at[0] < 1.0
    assert [x.event for _, x in got.late] == [late_right]


def test_heartbeats_reach_shards_without_events() -> None:
    # Every shard gets the closing marks, so shards that never saw an event
    # still report (zero) counters, and no shard is left without W = +inf.
    spec = JoinSpec(upper_ms=10, how="inner")
    scripts = {
        "left:0:a": [Step(0, [event("left", "only", 5, "left:0:a")])],
        "right:0:b": [Step(0, [])],
    }
    got = run_join(scripts, spec, shards=16)
    shards = [s for s in got.stats if s.get("kind") == "shard"]
    assert len(shards) == 16
    assert sum(s["left"]["unmatched_dropped"] for s in shards) == 1
    assert {s["watermark_ms"] for s in shards} == {2**62}
