"""The join's event-time watermark over the source partitions of both streams.

For each partition ``p``: ``wm_p = max(ts seen in p) - D`` (minus infinity before
its first event). The join's watermark is ``W = min(wm_p)`` over the partitions
that are not idle; it never goes backwards. A partition silent for
``idle_timeout_ms`` of processing time (judged by the injected clock) stops
holding ``W`` back until it speaks again; a partition that is closed (its input is
exhausted) counts as plus infinity. When every partition is closed, ``W`` is
:data:`WM_MAX`. When every open partition is idle, ``W`` stays where it is.

A partition declared up front counts as active from the tracker's start until
its first report, whose ``active_ms`` is taken as is: a source may report a
partition idle from the start (an empty Kafka partition reports
``active_ms = start - idle timeout``), which must not wait out a timeout here.
Later reports only move ``active_ms`` forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Watermark before anything is known ("minus infinity") and after every input
#: has ended ("plus infinity"). Both stay far outside any valid event time.
WM_MIN = -(2**62)
WM_MAX = 2**62


@dataclass(frozen=True, slots=True)
class PartitionMark:
    """What a source partition reports about itself.

    ``max_ts`` is the largest event time it has read so far (``None`` before its
    first event), ``active_ms`` the processing time at which it last produced an
    event (or started), ``closed`` whether its input is exhausted.
    """

    partition: str
    max_ts: int | None
    active_ms: int
    closed: bool = False

    def __reduce__(self) -> tuple[type[PartitionMark], tuple[str, int | None, int, bool]]:
        # Marks cross process boundaries (Bytewax pickles exchanged items); a
        # class compiled by mypyc has no default pickling, so say how.
        return (PartitionMark, (self.partition, self.max_ts, self.active_ms, self.closed))


class _PartitionState:
    __slots__ = ("active_ms", "closed", "max_ts", "reported")

    def __init__(
        self, max_ts: int | None, active_ms: int, closed: bool, reported: bool = True
    ) -> None:
        self.max_ts = max_ts
        self.active_ms = active_ms
        self.closed = closed
        #: False for a partition declared (or restored) before its first report.
        self.reported = reported


class WatermarkTracker:
    """Per-partition watermarks and their minimum, the join's watermark ``W``."""

    def __init__(
        self,
        partitions: list[str] | tuple[str, ...],
        *,
        max_out_of_orderness_ms: int,
        idle_timeout_ms: int,
        start_ms: int,
    ) -> None:
        self._d = max_out_of_orderness_ms
        self._idle = idle_timeout_ms
        self._parts: dict[str, _PartitionState] = {
            p: _PartitionState(None, start_ms, False, reported=False) for p in partitions
        }
        self._wm = WM_MIN

    @property
    def watermark(self) -> int:
        """The current ``W`` as of the last :meth:`advance`."""
        return self._wm

    @property
    def partitions(self) -> tuple[str, ...]:
        return tuple(self._parts)

    def observe(self, mark: PartitionMark) -> None:
        """Take in a partition's report; an unknown partition is added."""
        state = self._parts.get(mark.partition)
        if state is None:
            self._parts[mark.partition] = _PartitionState(mark.max_ts, mark.active_ms, mark.closed)
            return
        if mark.max_ts is not None and (state.max_ts is None or mark.max_ts > state.max_ts):
            state.max_ts = mark.max_ts
        if state.reported:
            state.active_ms = max(state.active_ms, mark.active_ms)
        else:  # the first report: the source knows best (see the module docstring)
            state.active_ms = mark.active_ms
            state.reported = True
        state.closed = state.closed or mark.closed

    def observe_event(self, partition: str, ts: int, now_ms: int) -> None:
        """Shorthand for an event of ``partition`` read at ``now_ms``."""
        state = self._parts.get(partition)
        if state is None:
            self._parts[partition] = _PartitionState(ts, now_ms, False)
            return
        if state.max_ts is None or ts > state.max_ts:
            state.max_ts = ts
        state.reported = True
        if now_ms > state.active_ms:
            state.active_ms = now_ms

    def advance(self, now_ms: int) -> int:
        """Recompute ``W`` at processing time ``now_ms`` and return it."""
        lowest: int | None = None
        open_seen = False
        for state in self._parts.values():
            if state.closed:
                continue
            open_seen = True
            if now_ms - state.active_ms >= self._idle:
                continue
            wm = WM_MIN if state.max_ts is None else state.max_ts - self._d
            if lowest is None or wm < lowest:
                lowest = wm
        if not open_seen and self._parts:
            lowest = WM_MAX
        if lowest is not None and lowest > self._wm:
            self._wm = lowest
        return self._wm

    def to_state(self) -> dict[str, Any]:
        """A JSON-able copy of the tracker (for snapshots)."""
        return {
            "watermark": self._wm,
            "partitions": {
                p: [s.max_ts, s.active_ms, s.closed] for p, s in sorted(self._parts.items())
            },
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        *,
        max_out_of_orderness_ms: int,
        idle_timeout_ms: int,
        now_ms: int,
    ) -> WatermarkTracker:
        """Rebuild a tracker from :meth:`to_state`.

        Idleness restarts at ``now_ms``: a partition is given a fresh idle timeout
        after a resume instead of being judged by a clock from before the crash.
        """
        tracker = cls(
            [],
            max_out_of_orderness_ms=max_out_of_orderness_ms,
            idle_timeout_ms=idle_timeout_ms,
            start_ms=now_ms,
        )
        for p, (max_ts, _active, closed) in state["partitions"].items():
            tracker._parts[p] = _PartitionState(max_ts, now_ms, bool(closed), reported=False)
        tracker._wm = int(state["watermark"])
        return tracker
