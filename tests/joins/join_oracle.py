"""A brute-force batch interval join and watermark, the oracle of the core's tests.

Written independently of ``joins.joiner``: no store, no expiry index, just the
definitions of ``shared/design/semantics.md`` applied to whole lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from joins import Event, JoinOutput, JoinSpec

INF = 2**62


def batch_join(spec: JoinSpec, events: Iterable[Event]) -> Counter[tuple[object, ...]]:
    """The batch interval join of distinct events, as a multiset of output rows."""
    distinct: dict[tuple[str, bytes], Event] = {}
    for e in events:
        distinct.setdefault((e.side, e.identity), e)
    left = [e for e in distinct.values() if e.side == "left"]
    right = [e for e in distinct.values() if e.side == "right"]
    rows: Counter[tuple[object, ...]] = Counter()
    matched: set[tuple[str, bytes]] = set()
    for l in left:  # noqa: E741
        for r in right:
            if l.key == r.key and l.ts + spec.lower_ms <= r.ts <= l.ts + spec.upper_ms:
                rows[("match", l.identity, r.identity)] += 1
                matched.add(("left", l.identity))
                matched.add(("right", r.identity))
    if spec.outer_left:
        for l in left:  # noqa: E741
            if ("left", l.identity) not in matched:
                rows[("left_only", l.identity)] += 1
    if spec.outer_right:
        for r in right:
            if ("right", r.identity) not in matched:
                rows[("right_only", r.identity)] += 1
    return rows


def output_rows(out: JoinOutput) -> Counter[tuple[object, ...]]:
    """The joiner's matched and unmatched outputs in :func:`batch_join`'s form."""
    rows: Counter[tuple[object, ...]] = Counter()
    for m in out.matched:
        rows[("match", m.left.identity, m.right.identity)] += 1
    for u in out.unmatched:
        rows[(u.kind, u.event.identity)] += 1
    return rows


@dataclass
class OracleWatermark:
    """``W = max(W, min(max_ts_p - D))`` over open, non-idle partitions."""

    partitions: dict[str, list[object]]  # p -> [max_ts | None, active_ms, closed]
    d: int
    idle: int
    w: int = -INF

    @classmethod
    def start(cls, partitions: Iterable[str], d: int, idle: int, now: int) -> OracleWatermark:
        return cls({p: [None, now, False] for p in partitions}, d, idle)

    def see(self, partition: str, ts: int, now: int) -> None:
        state = self.partitions.setdefault(partition, [None, now, False])
        state[0] = ts if state[0] is None else max(state[0], ts)  # type: ignore[call-overload]
        state[1] = now

    def close(self) -> None:
        for state in self.partitions.values():
            state[2] = True

    def compute(self, now: int) -> int:
        open_parts = [s for s in self.partitions.values() if not s[2]]
        if not open_parts:
            self.w = INF
            return self.w
        live = [s for s in open_parts if now - s[1] < self.idle]  # type: ignore[operator]
        if live:
            lowest = min(-INF if s[0] is None else s[0] - self.d for s in live)  # type: ignore[operator]
            self.w = max(self.w, lowest)
        return self.w
