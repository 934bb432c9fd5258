"""Hypothesis properties of the join core against the brute-force oracle.

For random events, partitions, interleavings, batch splits, clock advances
(idleness), heartbeats, eviction bucket widths and chunk sizes:

- each batch's late events are exactly those with ``ts < W - A`` for the
  watermark the oracle computes, with the right lateness;
- after every step the retained entries are exactly the accepted events whose
  bucket is not yet due: bucket ``b = ts // width`` of a side goes once
  ``(b + 1) * width - 1 + retention < W - A`` (so eviction is never early, and
  late by less than one bucket);
- after every step the unmatched rows emitted so far are exactly the outer-side
  accepted events that are evicted and have no partner among the accepted ones
  (an outer row appears at its bucket's eviction, not before, not after);
- the emitted pairs and unmatched rows equal the batch join of the distinct
  on-time events, each exactly once;
- the counters satisfy the conservation law.

Run against every store in ``STORES`` (the in-memory reference and RocksDB).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from join_oracle import OracleWatermark, batch_join, output_rows
from store_factories import STORES, dispose

from joins import (
    HOWS,
    SIDES,
    Event,
    IntervalJoiner,
    JoinOutput,
    JoinSpec,
    JoinStore,
    PartitionMark,
    content_id,
)

FIXTURES_OK = [HealthCheck.function_scoped_fixture]


@dataclass(frozen=True)
class Step:
    kind: str  # "batch" or "tick"
    events: tuple[Event, ...]
    dt_ms: int


@dataclass(frozen=True)
class Scenario:
    spec: JoinSpec
    partitions: tuple[str, ...]
    steps: tuple[Step, ...]
    chunk: int = 3


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    lower = draw(st.integers(-12, 12))
    spec = JoinSpec(
        lower_ms=lower,
        upper_ms=lower + draw(st.integers(0, 15)),
        how=draw(st.sampled_from(HOWS)),
        max_out_of_orderness_ms=draw(st.integers(0, 10)),
        allowed_lateness_ms=draw(st.integers(0, 4)),
        idle_timeout_ms=draw(st.integers(1, 40)),
        # widths from one millisecond (per-entry eviction) to wider than the data
        eviction_bucket_ms=draw(st.one_of(st.integers(1, 25), st.just(1), st.just(200))),
    )
    n_left = draw(st.integers(1, 2))
    n_right = draw(st.integers(1, 2))
    partitions = tuple(f"L{i}" for i in range(n_left)) + tuple(f"R{i}" for i in range(n_right))
    raw = draw(
        st.lists(
            st.tuples(
                st.sampled_from(SIDES),
                st.sampled_from("abc"),
                # mostly dense times; now and then a jump of many buckets
                st.one_of(st.integers(0, 60), st.integers(0, 60), st.integers(60, 400)),
                st.integers(0, 2),  # payload: small, so exact duplicates occur
                st.integers(0, 1),  # partition index
            ),
            max_size=45,
        )
    )
    events = [
        Event(
            side,
            key,
            ts,
            content_id(f"{key}|{ts}|{payload}".encode()),
            {"payload": payload},
            partition=f"L{p % n_left}" if side == "left" else f"R{p % n_right}",
            offset=i,
        )
        for i, (side, key, ts, payload, p) in enumerate(raw)
    ]
    steps: list[Step] = []
    i = 0
    while i < len(events):
        size = draw(st.integers(1, 8))
        steps.append(Step("batch", tuple(events[i : i + size]), draw(st.integers(0, 8))))
        i += size
        if draw(st.integers(0, 3)) == 0:
            steps.append(Step("tick", (), draw(st.integers(0, 30))))
    return Scenario(spec, partitions, tuple(steps), draw(st.integers(1, 4)))


def retention_bound(spec: JoinSpec, e: Event) -> int:
    """Retained at least while ``W - A`` is at most this: the semantics' rule
    (with docs/semantics-notes.md's care for duplicates), written out."""
    if e.side == "left":
        return max(e.ts + spec.upper_ms, e.ts)
    return max(e.ts - spec.lower_ms, e.ts)


def evicted_by(spec: JoinSpec, e: Event, w: int) -> bool:
    """Whether the bucketed eviction has removed ``e`` at watermark ``w``: once
    the bound of the last millisecond of its bucket is behind ``W - A``."""
    width = spec.bucket_ms
    last_in_bucket = (e.ts // width + 1) * width - 1
    return retention_bound(spec, e) - e.ts + last_in_bucket < w - spec.allowed_lateness_ms


def partnerless(spec: JoinSpec, e: Event, pool: list[Event]) -> bool:
    for o in pool:
        if o.side == e.side or o.key != e.key:
            continue
        left, right = (e, o) if e.side == "left" else (o, e)
        if left.ts + spec.lower_ms <= right.ts <= left.ts + spec.upper_ms:
            return False
    return True


def run_checked(scenario: Scenario, store: JoinStore) -> None:
    spec = scenario.spec
    a = spec.allowed_lateness_ms
    now = [1_000]
    joiner = IntervalJoiner(
        spec, store, scenario.partitions, lambda: now[0], eviction_chunk=scenario.chunk
    )
    oracle = OracleWatermark.start(
        scenario.partitions, spec.max_out_of_orderness_ms, spec.idle_timeout_ms, now[0]
    )
    accepted: dict[tuple[str, bytes], Event] = {}
    duplicates = Counter[str]()
    total = JoinOutput()
    for step in scenario.steps:
        now[0] += step.dt_ms
        w_before = oracle.compute(now[0])
        cutoff = w_before - a
        if step.kind == "batch":
            out = joiner.process(step.events)
            expected_late = [(e, w_before, cutoff - e.ts) for e in step.events if e.ts < cutoff]
            got_late = [(late.event, late.watermark_ms, late.lateness_ms) for late in out.late]
            assert got_late == expected_late
            for e in step.events:
                if e.ts >= cutoff:
                    if (e.side, e.identity) in accepted:
                        duplicates[e.side] += 1
                    accepted.setdefault((e.side, e.identity), e)
                oracle.see(e.partition, e.ts, now[0])
        else:
            out = joiner.advance()
        total.extend(out)
        w_after = oracle.compute(now[0])
        assert joiner.watermark == w_after
        pool = list(accepted.values())
        for side in SIDES:
            mine = [e for (s, _), e in accepted.items() if s == side]
            retained = [e for e in mine if not evicted_by(spec, e, w_after)]
            # never early: everything retained by the contract's bound still is
            assert all(e in retained for e in mine if retention_bound(spec, e) >= w_after - a)
            assert store.count(side) == len(retained) == joiner.counters.side(side).retained
            outer = spec.outer_left if side == "left" else spec.outer_right
            expected_rows = {
                e.identity
                for e in mine
                if outer and evicted_by(spec, e, w_after) and partnerless(spec, e, pool)
            }
            emitted = {u.event.identity for u in total.unmatched if u.event.side == side}
            assert emitted == expected_rows
    total.extend(joiner.close())
    assert output_rows(total) == batch_join(spec, accepted.values())
    assert joiner.counters.pairs == len(total.matched)
    for side in SIDES:
        counters = joiner.counters.side(side)
        assert counters.duplicates == duplicates[side]
        assert counters.retained == 0 == store.count(side)
        assert counters.unaccounted() == 0
        assert counters.events_in == sum(e.side == side for s in scenario.steps for e in s.events)


@pytest.mark.parametrize("make_store", STORES.values(), ids=STORES.keys())
@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES_OK)
@given(scenario=scenarios())
def test_join_equals_batch_join_of_on_time_events(
    make_store: Callable[[int], JoinStore], scenario: Scenario
) -> None:
    store = make_store(scenario.spec.bucket_ms)
    try:
        run_checked(scenario, store)
    finally:
        dispose(store)


def _shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards


@pytest.mark.parametrize("make_store", STORES.values(), ids=STORES.keys())
@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES_OK)
@given(scenario=scenarios(), shards=st.integers(1, 4), heartbeat_every=st.integers(1, 3))
def test_sharded_join_equals_batch_join_minus_its_late_output(
    make_store: Callable[[int], JoinStore], scenario: Scenario, shards: int, heartbeat_every: int
) -> None:
    """As the dataflow runs it: keys split over shards, each with its own
    watermark fed by marks stamped on its events and by heartbeats. Whatever the
    run classified late (L), the output is the batch join of ``E \\ L``."""
    spec = scenario.spec
    now = [1_000]
    joiners = [
        IntervalJoiner(
            spec,
            make_store(spec.bucket_ms),
            scenario.partitions,
            lambda: now[0],
            eviction_chunk=scenario.chunk,
        )
        for _ in range(shards)
    ]
    max_ts: dict[str, int] = {}
    active: dict[str, int] = {}
    total = JoinOutput()
    everything: list[Event] = []
    for n, step in enumerate(scenario.steps):
        now[0] += step.dt_ms
        everything.extend(step.events)
        for e in step.events:
            max_ts[e.partition] = max(max_ts.get(e.partition, e.ts), e.ts)
            active[e.partition] = now[0]
        by_shard: list[list[Event]] = [[] for _ in range(shards)]
        for e in step.events:
            by_shard[_shard_of(e.key, shards)].append(e)
        marks = [PartitionMark(p, max_ts[p], active[p]) for p in max_ts]
        for joiner, events in zip(joiners, by_shard, strict=True):
            if events:
                total.extend(joiner.process(events, marks))
            elif n % heartbeat_every == 0:
                total.extend(joiner.advance(marks))
    for joiner in joiners:
        total.extend(joiner.close())
        dispose(joiner.store)
    remaining = Counter((e.side, e.identity) for e in everything)
    for late in total.late:
        remaining[(late.event.side, late.event.identity)] -= 1
        assert late.lateness_ms > 0
    on_time = [e for e in everything if remaining[(e.side, e.identity)] > 0]
    assert output_rows(total) == batch_join(spec, on_time)
    for joiner in joiners:
        for side in SIDES:
            assert joiner.counters.side(side).unaccounted() == 0
