"""How far one process's shards and inputs have got, as its metrics saw it.

:class:`ProcessProgress` keeps, per shard, the joiner's latest cumulative
:class:`~joins.JoinCounters` and watermark, and per input partition the newest
event time read and how far it has read (:meth:`ProcessProgress.status`, for
the run's progress line). :class:`~dataflows.metrics.JoinMetrics` records into it on the
worker threads (so that it can export counter *deltas*) and
:class:`~dataflows.metrics.collector.RuntimeCollector` reads it on the HTTP
server's thread at scrape time (watermarks, input watermarks, retained events):
one lock guards both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from joins import JoinCounters
from joins.counters import SideCounters
from joins.watermark import WM_MAX, WM_MIN


@dataclass(slots=True)
class _Shard:
    counters: JoinCounters
    watermark_ms: int | None = None


@dataclass(slots=True)
class _Partition:
    stream: str
    max_ts_ms: int | None = None
    closed: bool = False
    position: int = 0
    events: int = 0
    invalid: int = 0
    backlog: int | None = None


class ProcessProgress:
    """The latest counters and watermarks of the shards of one process, and the
    newest event times of its input partitions.

    ``max_out_of_orderness_ms`` turns a partition's newest event time into its
    watermark (:meth:`input_watermarks_ms`).
    """

    def __init__(self, max_out_of_orderness_ms: int) -> None:
        self.max_out_of_orderness_ms = max_out_of_orderness_ms
        self._lock = threading.Lock()
        self._shards: dict[str, _Shard] = {}
        #: (stream, partition) -> newest event time read (ms), or None once closed.
        self._inputs: dict[tuple[str, str], int | None] = {}
        #: partition -> how far it has read (the progress line's figures).
        self._reads: dict[str, _Partition] = {}

    def record_input(
        self,
        stream: str,
        partition: str,
        max_ts_ms: int | None,
        *,
        closed: bool = False,
        position: int | None = None,
        events: int | None = None,
        invalid: int | None = None,
        backlog: int | None = None,
    ) -> None:
        """``partition`` of ``stream`` has read up to ``max_ts_ms`` (None: no
        event yet); once ``closed``, it no longer holds its stream's watermark.
        ``position``, ``events``, ``invalid`` and ``backlog``, when the source
        says them, are how far it has read (:class:`~dataflows.sources.PartitionRead`)."""
        with self._lock:
            if closed:
                self._inputs[(stream, partition)] = None
            elif max_ts_ms is not None:
                self._inputs[(stream, partition)] = max_ts_ms
            read = self._reads.get(partition)
            if read is None:
                read = self._reads[partition] = _Partition(stream)
            if max_ts_ms is not None:
                read.max_ts_ms = max_ts_ms
            read.closed = read.closed or closed
            if position is not None:
                read.position = position
            if events is not None:
                read.events = events
            if invalid is not None:
                read.invalid = invalid
            read.backlog = backlog

    def record_batch(self, shard: str, counters: JoinCounters, watermark_ms: int) -> JoinCounters:
        """``shard``'s joiner now holds ``counters`` (cumulative) and
        ``watermark_ms``; returns the counters recorded before (zeros the first
        time, so that totals restored from a snapshot count once)."""
        with self._lock:
            state = self._shards.get(shard)
            if state is None:
                state = self._shards[shard] = _Shard(JoinCounters())
            previous = state.counters
            state.counters = _copy(counters)
            # The extremes mean "no event yet" and "end of input": not a time.
            if WM_MIN < watermark_ms < WM_MAX:
                state.watermark_ms = watermark_ms
        return previous

    def end_shard(self, shard: str) -> None:
        """``shard`` reached its end here: its watermark stops counting; its
        counters stay (they are cumulative)."""
        with self._lock:
            state = self._shards.get(shard)
            if state is not None:
                state.watermark_ms = None

    def watermarks_ms(self) -> dict[str, int]:
        """The current watermark of every shard that has one."""
        with self._lock:
            return {
                name: s.watermark_ms
                for name, s in self._shards.items()
                if s.watermark_ms is not None
            }

    def input_watermarks_ms(self) -> dict[str, int]:
        """Per stream, the minimum over its open partitions of newest ts - D."""
        d = self.max_out_of_orderness_ms
        out: dict[str, int] = {}
        with self._lock:
            items = list(self._inputs.items())
        for (stream, _partition), max_ts in items:
            if max_ts is None:
                continue
            wm = max_ts - d
            if stream not in out or wm < out[stream]:
                out[stream] = wm
        return out

    def counters(self) -> JoinCounters:
        """The sum of the latest counters of every shard recorded."""
        total = JoinCounters()
        with self._lock:
            for state in self._shards.values():
                total.add(state.counters)
        return total


    def status(self) -> dict[str, Any]:
        """What this process has got to, as JSON-able values: per input partition
        how far it has read; over its shards the late counts (cumulative) and
        the lowest watermark of those that have not ended (``None``: none has
        one yet), and how many shards it runs and how many have ended."""
        with self._lock:
            partitions = {
                name: {
                    "side": p.stream,
                    "position": p.position,
                    "events": p.events,
                    "invalid": p.invalid,
                    "max_ts_ms": p.max_ts_ms,
                    "closed": p.closed,
                    "backlog": p.backlog,
                }
                for name, p in self._reads.items()
            }
            total = JoinCounters()
            watermarks = []
            for state in self._shards.values():
                total.add(state.counters)
                if state.watermark_ms is not None:
                    watermarks.append(state.watermark_ms)
            shards = len(self._shards)
        return {
            "partitions": partitions,
            "late": {"left": total.left.late, "right": total.right.late},
            "watermark_ms": min(watermarks) if watermarks else None,
            "shards": shards,
        }


def _copy(counters: JoinCounters) -> JoinCounters:
    # The joiner keeps mutating its own counters: keep a snapshot of them.
    def side(s: SideCounters) -> SideCounters:
        return SideCounters(**{f.name: getattr(s, f.name) for f in fields(SideCounters)})

    return JoinCounters(side(counters.left), side(counters.right), counters.pairs)
