"""An in-memory :class:`~joins.store.JoinStore`: the reference implementation.

Simple on purpose (sorted lists per key, a heap as the expiry index); tests run
every join property against it and against the RocksDB store alike.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Sequence

from joins.events import SIDES, Event, Side
from joins.store import Entry

_RowKey = tuple[str, int, bytes]


class MemoryStore:
    """Retained events of both sides, in Python dicts, lists and heaps."""

    def __init__(self) -> None:
        self._by_key: dict[Side, dict[str, list[tuple[int, bytes]]]] = {s: {} for s in SIDES}
        self._rows: dict[Side, dict[_RowKey, Entry]] = {s: {} for s in SIDES}
        self._expiry: dict[Side, list[tuple[int, str, int, bytes]]] = {s: [] for s in SIDES}

    def contains_many(self, events: Sequence[Event]) -> list[bool]:
        return [(e.key, e.ts, e.eid) in self._rows[e.side] for e in events]

    def scan(self, side: Side, key: str, lo_ts: int, hi_ts: int) -> list[Entry]:
        times = self._by_key[side].get(key)
        if not times:
            return []
        rows = self._rows[side]
        found: list[Entry] = []
        for i in range(bisect_left(times, (lo_ts, b"")), len(times)):
            ts, eid = times[i]
            if ts > hi_ts:
                break
            found.append(rows[(key, ts, eid)])
        return found

    def insert(self, event: Event, matched: bool, bound: int) -> None:
        side = event.side
        insort(self._by_key[side].setdefault(event.key, []), (event.ts, event.eid))
        self._rows[side][(event.key, event.ts, event.eid)] = Entry(event, matched)
        heapq.heappush(self._expiry[side], (bound, event.key, event.ts, event.eid))

    def mark_matched(self, entry: Entry, bound: int) -> None:
        event = entry.event
        self._rows[event.side][(event.key, event.ts, event.eid)].matched = True
        entry.matched = True

    def evict(self, side: Side, below: int, limit: int) -> list[Entry]:
        heap = self._expiry[side]
        evicted: list[Entry] = []
        while heap and heap[0][0] < below and len(evicted) < limit:
            _bound, key, ts, eid = heapq.heappop(heap)
            evicted.append(self._rows[side].pop((key, ts, eid)))
            times = self._by_key[side][key]
            times.pop(bisect_left(times, (ts, eid)))
            if not times:
                del self._by_key[side][key]
        return evicted

    def count(self, side: Side) -> int:
        return len(self._rows[side])

    def commit(self) -> None:
        """Nothing to do: memory is all there is."""
