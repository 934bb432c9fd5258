"""Counters of the join, one set per side, and the conservation law over them.

Every input event is counted exactly once in one of: late, duplicate, evicted
after matching, emitted unmatched (outer side), evicted unmatched on an inner
side (counted, not emitted), invalid (counted by the sources, outside the core),
or still retained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from joins.events import Side


@dataclass(slots=True)
class SideCounters:
    """Counts of one side's events by where they ended."""

    events_in: int = 0
    late: int = 0
    duplicates: int = 0
    stored: int = 0
    evicted_matched: int = 0
    unmatched_emitted: int = 0
    unmatched_dropped: int = 0

    @property
    def evicted(self) -> int:
        return self.evicted_matched + self.unmatched_emitted + self.unmatched_dropped

    @property
    def retained(self) -> int:
        """Events stored and not yet evicted."""
        return self.stored - self.evicted

    def unaccounted(self) -> int:
        """Events in minus every category they may end in: 0 when the law holds."""
        return self.events_in - (
            self.late
            + self.duplicates
            + self.evicted_matched
            + self.unmatched_emitted
            + self.unmatched_dropped
            + self.retained
        )


@dataclass(slots=True)
class JoinCounters:
    """Both sides' counters and the number of pairs emitted."""

    left: SideCounters = field(default_factory=SideCounters)
    right: SideCounters = field(default_factory=SideCounters)
    pairs: int = 0

    def side(self, side: Side) -> SideCounters:
        return self.left if side == "left" else self.right

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy, with ``retained`` per side spelled out."""
        out: dict[str, Any] = {"pairs": self.pairs}
        for name in ("left", "right"):
            side = getattr(self, name)
            out[name] = {**asdict(side), "retained": side.retained}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JoinCounters:
        names = {f.name for f in fields(SideCounters)}
        return cls(
            left=SideCounters(**{k: v for k, v in data["left"].items() if k in names}),
            right=SideCounters(**{k: v for k, v in data["right"].items() if k in names}),
            pairs=int(data["pairs"]),
        )

    def add(self, other: JoinCounters) -> None:
        """Add ``other`` into this (to sum the counters of several shards)."""
        for name in ("left", "right"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for f in fields(SideCounters):
                setattr(mine, f.name, getattr(mine, f.name) + getattr(theirs, f.name))
        self.pairs += other.pairs
