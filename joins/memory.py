"""An in-memory :class:`~joins.store.JoinStore`: the reference implementation.

Simple on purpose: sorted lists of times per key for scans, and per side a dict
of buckets (bucket number -> the identities in it) for eviction. Tests run every
join property against it and against the RocksDB store alike.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence

from joins.events import SIDES, Event, Side
from joins.store import DEFAULT_BUCKET_MS, Entry, Eviction

_RowKey = tuple[str, int, bytes]


class MemoryStore:
    """Retained events of both sides, in Python dicts and lists."""

    def __init__(self, bucket_ms: int = DEFAULT_BUCKET_MS) -> None:
        if isinstance(bucket_ms, bool) or not isinstance(bucket_ms, int) or bucket_ms <= 0:
            msg = f"bucket_ms must be a positive integer, got {bucket_ms!r}"
            raise ValueError(msg)
        self.bucket_ms = bucket_ms
        self._by_key: dict[Side, dict[str, list[tuple[int, bytes]]]] = {s: {} for s in SIDES}
        self._rows: dict[Side, dict[_RowKey, Entry]] = {s: {} for s in SIDES}
        #: side -> bucket -> its identities in insertion order; eviction takes them
        #: from the front (``_done`` counts those taken from a bucket so far).
        self._buckets: dict[Side, dict[int, list[_RowKey]]] = {s: {} for s in SIDES}
        self._done: dict[tuple[Side, int], int] = {}
        #: The buckets of each side that hold entries, ascending.
        self._live: dict[Side, list[int]] = {s: [] for s in SIDES}

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

    def insert(self, event: Event, matched: bool) -> None:
        side = event.side
        row = (event.key, event.ts, event.eid)
        insort(self._by_key[side].setdefault(event.key, []), (event.ts, event.eid))
        self._rows[side][row] = Entry(event, matched)
        bucket = event.ts // self.bucket_ms
        members = self._buckets[side].get(bucket)
        if members is None:
            members = self._buckets[side][bucket] = []
            insort(self._live[side], bucket)
        members.append(row)

    def mark_matched(self, entry: Entry) -> None:
        event = entry.event
        self._rows[event.side][(event.key, event.ts, event.eid)].matched = True
        entry.matched = True

    def evict(self, side: Side, below_ts: int, limit: int, events: bool) -> Eviction:
        out = Eviction()
        buckets, live = self._buckets[side], self._live[side]
        rows, by_key = self._rows[side], self._by_key[side]
        while live and (live[0] + 1) * self.bucket_ms <= below_ts:
            b = live[0]
            members = buckets[b]
            start = self._done.pop((side, b), 0)
            take = members[start : start + limit - out.removed]
            for row in take:
                entry = rows.pop(row)
                key, ts, eid = row
                times = by_key[key]
                times.pop(bisect_left(times, (ts, eid)))
                if not times:
                    del by_key[key]
                if entry.matched:
                    out.matched += 1
                else:
                    out.unmatched += 1
                    if events:
                        out.events.append(entry.event)
            if start + len(take) < len(members):
                self._done[(side, b)] = start + len(take)
                out.more = True
                return out
            del buckets[b]
            live.pop(0)
        return out

    def count(self, side: Side) -> int:
        return len(self._rows[side])

    def buckets(self, side: Side) -> list[int]:
        """The buckets of ``side`` that hold entries, oldest first (for tests)."""
        return list(self._live[side])

    def commit(self) -> None:
        """Nothing to do: memory is all there is."""
