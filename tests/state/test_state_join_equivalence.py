"""The join core over RocksStore behaves exactly as over the reference MemoryStore.

Hypothesis drives two :class:`joins.IntervalJoiner` in lockstep, one over each
store, with random events, batch splits, clock ticks (idleness) and closes and
reopens of the RocksDB store (the joiner rebuilt from ``to_state()``): every
call must return the same late events, the same pairs in the same order, the
same unmatched rows (compared as a multiset: the order within a bucket may
differ), the same watermark, counters and counts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from joins import HOWS, SIDES, Event, IntervalJoiner, JoinOutput, JoinSpec, MemoryStore, content_id
from state.store import RocksStore
from tests.budgets import small_budget

BUDGET = small_budget()
PARTITIONS = ("L0", "L1", "R0")


@dataclass(frozen=True)
class Step:
    kind: str  # "batch", "tick" or "reopen"
    events: tuple[Event, ...] = ()
    dt_ms: int = 0


payloads = st.one_of(
    st.integers(0, 2), st.just([1, {"x": None}]), st.just(2.5), st.text(max_size=3)
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[JoinSpec, list[Step]]:
    lower = draw(st.integers(-10, 10))
    spec = JoinSpec(
        lower_ms=lower,
        upper_ms=lower + draw(st.integers(0, 12)),
        how=draw(st.sampled_from(HOWS)),
        max_out_of_orderness_ms=draw(st.integers(0, 8)),
        allowed_lateness_ms=draw(st.integers(0, 3)),
        idle_timeout_ms=draw(st.integers(1, 30)),
        eviction_bucket_ms=draw(st.integers(1, 20)),
    )
    raw = draw(
        st.lists(
            st.tuples(
                st.sampled_from(SIDES),
                st.sampled_from(["a", "b", "ü", ""]),
                st.integers(-5, 50),
                payloads,
                st.integers(0, 1),
            ),
            max_size=40,
        )
    )
    events = [
        Event(
            side,
            key,
            ts,
            content_id(repr((key, ts, payload)).encode()),
            {"p": payload, "key": key},
            f"L{p}" if side == "left" else "R0",
            i,
        )
        for i, (side, key, ts, payload, p) in enumerate(raw)
    ]
    steps: list[Step] = []
    i = 0
    while i < len(events):
        size = draw(st.integers(1, 6))
        steps.append(Step("batch", tuple(events[i : i + size]), draw(st.integers(0, 6))))
        i += size
        extra = draw(st.integers(0, 5))
        if extra == 0:
            steps.append(Step("tick", (), draw(st.integers(0, 25))))
        elif extra == 1:
            steps.append(Step("reopen"))
    return spec, steps


def summary(out: JoinOutput) -> tuple[object, ...]:
    return (
        [(m.left, m.right) for m in out.matched],
        sorted(u.id for u in out.unmatched),
        [(late.event, late.watermark_ms, late.lateness_ms) for late in out.late],
        out.watermark_ms,
        dict(out.evicted),
    )


@contextmanager
def rocks_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sj-equiv-") as d:
        yield Path(d)


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios(), sweep=st.integers(1, 4))
def test_joiner_over_rocks_equals_joiner_over_memory(
    scenario: tuple[JoinSpec, list[Step]], sweep: int
) -> None:
    spec, steps = scenario
    now = [1_000]

    def clock() -> int:
        return now[0]

    with rocks_dir() as root:
        rocks = RocksStore(root / "db", BUDGET, bucket_ms=spec.bucket_ms)
        ref = IntervalJoiner(
            spec, MemoryStore(spec.bucket_ms), PARTITIONS, clock, eviction_chunk=sweep
        )
        sut = IntervalJoiner(spec, rocks, PARTITIONS, clock, eviction_chunk=sweep)
        try:
            for step in steps:
                now[0] += step.dt_ms
                if step.kind == "reopen":
                    rocks.close()
                    rocks = RocksStore(root / "db", BUDGET, bucket_ms=spec.bucket_ms)
                    # a resumed joiner restarts its idleness clocks: rebuild both
                    sut = IntervalJoiner(
                        spec, rocks, PARTITIONS, clock, eviction_chunk=sweep, state=sut.to_state()
                    )
                    ref = IntervalJoiner(
                        spec,
                        ref.store,
                        PARTITIONS,
                        clock,
                        eviction_chunk=sweep,
                        state=ref.to_state(),
                    )
                    continue
                if step.kind == "batch":
                    expected, got = ref.process(step.events), sut.process(step.events)
                else:
                    expected, got = ref.advance(), sut.advance()
                assert summary(got) == summary(expected)
                assert sut.counters.to_dict() == ref.counters.to_dict()
                for side in SIDES:
                    assert rocks.count(side) == ref.store.count(side)
            assert summary(sut.close()) == summary(ref.close())
            assert sut.counters.to_dict() == ref.counters.to_dict()
            assert rocks.count("left") == rocks.count("right") == 0
        finally:
            rocks.close()
