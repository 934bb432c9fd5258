"""Table-driven cases of the join core: each join type and each edge of the rules.

Each case is a spec, a list of steps (a batch of events, a clock tick, or the
end of input) and, per step, the outputs expected from that very step, so a row
emitted too early or too late fails as surely as a wrong row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from store_factories import STORES, dispose

from joins import (
    Event,
    IntervalJoiner,
    JoinOutput,
    JoinSpec,
    JoinSpecError,
    JoinStore,
    content_id,
)


def L(name: str, key: str, ts: int, partition: str = "L0") -> Event:
    return Event("left", key, ts, content_id(name.encode()), {"name": name}, partition)


def R(name: str, key: str, ts: int, partition: str = "R0") -> Event:
    return Event("right", key, ts, content_id(name.encode()), {"name": name}, partition)


CLOSE = "close"
TICK = "tick"


@dataclass(frozen=True)
class Case:
    name: str
    spec: JoinSpec
    # (clock advance in ms, a batch of events | TICK | CLOSE, outputs of that step)
    steps: list[tuple[int, list[Event] | str, set[tuple[object, ...]]]]
    partitions: tuple[str, ...] = ("L0", "R0")
    counters: dict[str, dict[str, int]] = field(default_factory=dict)


def spec(**kw: object) -> JoinSpec:
    base: dict[str, object] = {
        "lower_ms": 0,
        "upper_ms": 10,
        "how": "inner",
        "max_out_of_orderness_ms": 0,
        "allowed_lateness_ms": 0,
        "idle_timeout_ms": 1_000,
        "eviction_bucket_ms": 1,  # per-entry eviction, unless a case says otherwise
    }
    base.update(kw)
    return JoinSpec(**base)  # type: ignore[arg-type]


CASES = [
    Case(
        "inner pair inside the window, emitted by the second to arrive",
        spec(),
        [
            (0, [L("l1", "k", 0)], set()),
            (0, [R("r1", "k", 10)], {("match", "l1", "r1")}),
            (0, CLOSE, set()),
        ],
    ),
    Case(
        "upper bound inclusive, one past it excluded",
        spec(),
        [(0, [L("l1", "k", 0), R("r1", "k", 10), R("r2", "k", 11)], {("match", "l1", "r1")})],
    ),
    Case(
        "lower bound inclusive, one before it excluded",
        spec(lower_ms=2),
        [(0, [R("r1", "k", 7), R("r0", "k", 6), L("l1", "k", 5)], {("match", "l1", "r1")})],
    ),
    Case(
        "negative bounds: plays before the impression",
        spec(lower_ms=-10, upper_ms=-5),
        [
            (0, [L("l1", "k", 20)], set()),
            (
                0,
                [R("r9", "k", 9), R("r10", "k", 10), R("r15", "k", 15), R("r16", "k", 16)],
                {("match", "l1", "r10"), ("match", "l1", "r15")},
            ),
        ],
    ),
    Case(
        "equal timestamps match; other keys do not",
        spec(),
        [(0, [L("l1", "k", 5), R("r1", "k", 5), R("r2", "j", 5)], {("match", "l1", "r1")})],
    ),
    Case(
        "duplicates of the same event join once and are counted",
        spec(),
        [
            (0, [L("l1", "k", 0), L("l1", "k", 0)], set()),
            (0, [L("l1", "k", 0), R("r1", "k", 3)], {("match", "l1", "r1")}),
            (0, [R("r1", "k", 3)], set()),
            (0, CLOSE, set()),
        ],
        counters={"left": {"duplicates": 2, "evicted_matched": 1}, "right": {"duplicates": 1}},
    ),
    Case(
        "left outer row at eviction, never earlier; a quiet key is still evicted",
        spec(how="left"),
        [
            (0, [L("l1", "k", 0)], set()),
            (0, [R("r9", "z", 10)], set()),  # W = min(0, 10) = 0
            (0, [L("l2", "y", 11)], set()),  # W = 10: l1 (bound 0+10) still held
            (0, [R("r8", "z", 11)], {("left_only", "l1")}),  # W = 11 > 10
            (0, CLOSE, {("left_only", "l2")}),
        ],
        counters={"right": {"unmatched_dropped": 2}, "left": {"unmatched_emitted": 2}},
    ),
    Case(
        "left retention boundary: a partner exactly at the last on-time watermark",
        spec(how="left"),
        [
            (0, [L("l1", "k", 0), R("rz", "z", 10)], set()),  # W = 0
            (0, [L("ly", "y", 10)], set()),  # W = 10 = l1's bound: l1 kept
            (0, [R("r1", "k", 10)], {("match", "l1", "r1")}),  # on time, joins
        ],
    ),
    Case(
        "right retention boundary with a negative lower bound",
        spec(lower_ms=-5, upper_ms=0, how="right"),
        [
            (0, [R("r1", "k", 0), L("lz", "z", 5)], set()),  # W = 0
            (0, [R("ry", "y", 5)], set()),  # W = 5 = r1's bound (0 + 5): r1 kept
            (0, [L("l1", "k", 5)], {("match", "l1", "r1")}),
            (0, [R("rx", "x", 6), L("lw", "w", 6)], set()),  # r1 evicted, matched: no row
        ],
    ),
    Case(
        "right outer row when the watermark passes",
        spec(how="right"),
        [
            (0, [R("r1", "k", 0)], set()),
            (0, [L("l9", "z", 1), R("r9", "z", 1)], {("right_only", "r1"), ("match", "l9", "r9")}),
        ],
    ),
    Case(
        "full outer: unmatched rows of both sides at the end, none for a pair",
        spec(how="full"),
        [
            (
                0,
                [L("l1", "k", 0), R("r1", "k", 5), L("l2", "j", 0), R("r2", "i", 100)],
                {("match", "l1", "r1")},
            ),
            (0, CLOSE, {("left_only", "l2"), ("right_only", "r2")}),
        ],
    ),
    Case(
        "late event goes to the late output with its lateness, joins nothing",
        spec(),
        [
            (0, [L("la", "x", 100), R("ra", "x", 100)], {("match", "la", "ra")}),
            (
                0,
                [L("l2", "k", 99), L("l3", "k", 100), R("r3", "k", 100)],
                {("late", "l2", 1), ("match", "l3", "r3")},
            ),
        ],
        counters={"left": {"late": 1}},
    ),
    Case(
        "allowed lateness extends the grace",
        spec(allowed_lateness_ms=5),
        [
            (0, [L("la", "x", 100), R("ra", "x", 200)], set()),  # W = 100
            (0, [L("l95", "k", 95), L("l94", "k", 94)], {("late", "l94", 1)}),
        ],
    ),
    Case(
        "an idle partition stops holding the watermark back",
        spec(idle_timeout_ms=50, how="left"),
        [
            (0, [L("l1", "k", 100)], set()),  # R0 silent but not idle yet: W = -inf
            (49, [L("l2", "k", 101)], set()),
            (1, TICK, set()),  # R0 silent 50 ms: idle; W = 101 - 0, l1's bound 110 holds
            (0, [L("l3", "j", 200)], {("left_only", "l1"), ("left_only", "l2")}),
        ],
    ),
    Case(
        "a partition back from idleness cannot pull the watermark back",
        spec(idle_timeout_ms=50, how="left"),
        [
            (50, [L("l1", "k", 100)], set()),  # both idle at the start of the batch
            (0, [R("r1", "k", 50)], {("late", "r1", 50)}),  # W = 100: r1 is late
            (0, [L("l2", "j", 101)], set()),  # W stays 100 though R0 says 50
            (0, [R("r2", "k", 100), R("r3", "k", 99)], {("match", "l1", "r2"), ("late", "r3", 1)}),
        ],
    ),
    Case(
        "bucketed eviction: outer rows wait for their whole bucket, then go together",
        spec(how="left", eviction_bucket_ms=10),  # left bucket 0 (ts 0..9) due at W = 20
        [
            (0, [L("l1", "k", 0), L("l2", "j", 9)], set()),
            (0, [R("r1", "z", 19)], set()),  # W = 9
            (0, [L("l3", "y", 19)], set()),  # W = 19: l1's bound (10) passed, its bucket's (19) not
            (0, [R("rk", "k", 10)], {("late", "rk", 9)}),  # l1 still held, yet nothing joins it
            (0, [R("r2", "x", 20), L("l4", "w", 20)], {("left_only", "l1"), ("left_only", "l2")}),
            (0, CLOSE, {("left_only", "l3"), ("left_only", "l4")}),
        ],
        counters={"left": {"unmatched_emitted": 4}, "right": {"unmatched_dropped": 2, "late": 1}},
    ),
    Case(
        "a watermark jump evicts several buckets in one step",
        spec(how="full", eviction_bucket_ms=5),
        [
            (0, [L("l0", "a", 0), L("l6", "b", 6), L("l12", "c", 12), R("r3", "d", 3)], set()),
            (
                0,
                [L("l100", "e", 100), R("r100", "f", 100)],
                {
                    ("left_only", "l0"),
                    ("left_only", "l6"),
                    ("left_only", "l12"),
                    ("right_only", "r3"),
                },
            ),
            (0, CLOSE, {("left_only", "l100"), ("right_only", "r100")}),
        ],
    ),
    Case(
        "buckets of negative times",
        spec(how="right", lower_ms=-5, upper_ms=0, eviction_bucket_ms=4),
        [
            # right retention 5: bucket -2 (ts -8..-5) is due at W = -4 + 5 = 1
            (0, [R("rm8", "k", -8), R("rm5", "j", -5), L("lz", "z", -10)], set()),  # W = -10
            (0, [L("l0", "y", 0), R("r0", "y", 0)], {("match", "l0", "r0")}),  # W = 0
            (
                0,
                [L("l1", "x", 1), R("r1", "x", 1)],
                {("match", "l1", "r1"), ("right_only", "rm8"), ("right_only", "rm5")},
            ),
        ],
    ),
    Case(
        "end of input evicts everything; inner sides are counted, not emitted",
        spec(how="left"),
        [
            (0, [L("l1", "k", 0), R("r1", "k", 50), R("r2", "k", 5)], {("match", "l1", "r2")}),
            (0, CLOSE, set()),
        ],
        counters={
            "left": {"evicted_matched": 1, "retained": 0},
            "right": {"unmatched_dropped": 1, "evicted_matched": 1, "retained": 0},
        },
    ),
]


def describe(out: JoinOutput) -> set[tuple[object, ...]]:
    rows: set[tuple[object, ...]] = set()
    for m in out.matched:
        rows.add(("match", m.left.record["name"], m.right.record["name"]))
    for u in out.unmatched:
        rows.add((u.kind, u.event.record["name"]))
    for late in out.late:
        rows.add(("late", late.event.record["name"], late.lateness_ms))
    return rows


@pytest.mark.parametrize("make_store", STORES.values(), ids=STORES.keys())
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, make_store: Callable[[], JoinStore]) -> None:
    now = [0]
    store = make_store(case.spec.bucket_ms)
    joiner = IntervalJoiner(case.spec, store, case.partitions, lambda: now[0])
    try:
        run_case(case, joiner, now)
    finally:
        dispose(store)


def run_case(case: Case, joiner: IntervalJoiner, now: list[int]) -> None:
    for i, (dt, what, expected) in enumerate(case.steps):
        now[0] += dt
        if what == CLOSE:
            out = joiner.close()
        elif what == TICK:
            out = joiner.advance()
        else:
            assert isinstance(what, list)
            out = joiner.process(what)
        assert describe(out) == expected, f"step {i}"
    counters = joiner.counters.to_dict()
    for side, expected_counts in case.counters.items():
        for name, value in expected_counts.items():
            assert counters[side][name] == value, f"{side}.{name}"
    for side in ("left", "right"):
        assert joiner.counters.side(side).unaccounted() == 0


def test_output_ids_are_deterministic_and_distinct() -> None:
    from joins import Matched, Unmatched

    l1, r1, r2 = L("l1", "k", 0), R("r1", "k", 1), R("r2", "k", 1)
    assert Matched(l1, r1).id == Matched(L("l1", "k", 0), R("r1", "k", 1)).id
    ids = {Matched(l1, r1).id, Matched(l1, r2).id, Unmatched(l1).id, Unmatched(r1).id}
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lower_ms": 5, "upper_ms": 4}, "must not exceed"),
        ({"how": "outer"}, "how must be one of"),
        ({"max_out_of_orderness_ms": -1}, "max_out_of_orderness_ms must be >= 0"),
        ({"idle_timeout_ms": 0}, "idle_timeout_ms must be > 0"),
        ({"upper_ms": 1.5}, "integer number of milliseconds"),
    ],
)
def test_spec_rejects_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(JoinSpecError, match=message):
        JoinSpec(**kwargs)  # type: ignore[arg-type]


def test_snapshot_state_round_trips_and_resumes() -> None:
    """The joiner's own state (watermarks, counters) survives ``to_state``."""
    from joins import MemoryStore

    now = [0]
    store = MemoryStore(spec().bucket_ms)
    first = IntervalJoiner(spec(how="left"), store, ("L0", "R0"), lambda: now[0])
    first.process([L("l1", "k", 0), R("r9", "z", 10)])
    assert first.watermark == 0
    again = IntervalJoiner(
        spec(how="left"), store, ("L0", "R0"), lambda: now[0], state=first.to_state()
    )
    assert again.watermark == 0
    assert again.counters.to_dict() == first.counters.to_dict()
    out = again.process([L("l2", "y", 20), R("r8", "y", 20)])
    assert {("left_only", "l1")} <= describe(out)
