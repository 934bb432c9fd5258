"""What a source partition reports: :class:`SourceBatch`, stamped with its
partition's :class:`~joins.PartitionMark` by a :class:`MarkStamper`.

The mark (the partition's largest event time so far and the wall-clock time of
its last activity) is stamped here, *before* the keyed exchange, so that every
shard can keep the minimum over partitions. ``broadcast`` asks the router to
send the mark to every shard: on the first batch, at least every
``heartbeat_ms`` of wall time (also while the partition is silent) and on the
final ``closed`` mark, so quiet shards still evict and bounded inputs end at
``W = +inf``. Every kind of source (files today) reports this way.

A batch also says how far its partition has read (:class:`PartitionRead`),
for the run's progress line (:mod:`dataflows.metrics.status`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dataflows.inputs import Invalid
from joins import Event, PartitionMark, Side

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class PartitionRead:
    """How far one source partition has read, after a batch.

    ``position`` is where it would resume: a byte offset (CSV, JSON Lines), a
    record index (Avro) or a Kafka offset; ``events`` and ``invalid`` are the
    records read so far, over all executions of a resumed run. ``backlog`` is
    how many records the partition is behind its end: a Kafka source sets it
    (its consumer lag, shown on the progress line); files leave it ``None``
    (their share read comes from ``position`` against the file's size).
    """

    position: int
    events: int
    invalid: int
    backlog: int | None = None


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """What one read of one source partition produced."""

    side: Side
    events: list[Event]
    invalid: list[Invalid]
    mark: PartitionMark
    broadcast: bool
    #: On the closing batch only: ``{"kind": "source", "partition", "side",
    #: "events", "invalid"}``, what the partition read in all.
    totals: dict[str, Any] | None = None
    #: How far the partition has read (None: the source does not say).
    read: PartitionRead | None = None

    @property
    def closed(self) -> bool:
        return self.mark.closed


class MarkStamper:
    """A partition's watermark report and heartbeat schedule (pure: clock injected)."""

    def __init__(
        self, partition: str, max_ts: int | None, heartbeat_ms: int, clock: Clock
    ) -> None:
        self.partition = partition
        self.max_ts = max_ts
        self._heartbeat_ms = heartbeat_ms
        self._clock = clock
        self.active_ms = clock()
        self._last_broadcast_ms: int | None = None

    def stamp(self, events: list[Event], closed: bool = False) -> tuple[PartitionMark, bool]:
        """The mark after ``events`` were read, and whether to broadcast it."""
        now = self._clock()
        if events:
            self.active_ms = now
            top = max(e.ts for e in events)
            if self.max_ts is None or top > self.max_ts:
                self.max_ts = top
        due = (
            closed
            or self._last_broadcast_ms is None
            or now - self._last_broadcast_ms >= self._heartbeat_ms
        )
        if due:
            self._last_broadcast_ms = now
        return PartitionMark(self.partition, self.max_ts, self.active_ms, closed), due


def wall_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(datetime.now(UTC).timestamp() * 1000)
