"""The interval joiner: plain Python over plain data.

:meth:`IntervalJoiner.process` takes a batch of events (and partition marks) and
returns a :class:`JoinOutput`; :meth:`IntervalJoiner.advance` takes watermark
heartbeats; :meth:`IntervalJoiner.close` ends the input. The rules are those of
``shared/design/semantics.md``:

- the batch is classified against the watermark ``W`` as it stands when the
  batch starts: an event is late iff ``ts < W - A``;
- an on-time event that is a copy of a retained event (same side and identity)
  is a duplicate: counted, not joined again;
- every other on-time event joins every retained event of the other side with
  its key inside the interval (the second of a pair to arrive emits it), then
  is retained;
- after the batch the watermark advances and state is evicted by whole
  event-time buckets: a side's bucket goes once every entry in it is past its
  retention bound (``ts + retention < W - A`` for its latest possible ``ts``),
  outer-side entries that never matched are emitted as unmatched rows. So an
  entry is evicted less than one bucket after its bound; matching is exact
  all the same, since no on-time event can pair with (or copy) an entry past
  its bound.

Eviction runs in chunks of at most ``eviction_chunk`` entries, each committed:
the ``*_chunks`` methods yield one :class:`JoinOutput` per chunk, so a caller can
pass each on (and let it go) before the next is read; :meth:`process`,
:meth:`advance` and :meth:`close` return them merged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from joins.counters import JoinCounters
from joins.events import SIDES, Event, Late, Matched, Unmatched
from joins.spec import JoinSpec
from joins.store import JoinStore
from joins.watermark import WM_MAX, PartitionMark, WatermarkTracker


@dataclass(slots=True)
class JoinOutput:
    """What one call of the joiner produced."""

    matched: list[Matched] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    #: The watermark after the call.
    watermark_ms: int = 0
    #: How many entries the call evicted, per side.
    evicted: dict[str, int] = field(default_factory=lambda: {"left": 0, "right": 0})

    def extend(self, other: JoinOutput) -> None:
        self.matched.extend(other.matched)
        self.unmatched.extend(other.unmatched)
        self.late.extend(other.late)
        self.watermark_ms = other.watermark_ms
        for side, n in other.evicted.items():
            self.evicted[side] += n


class IntervalJoiner:
    """An event-time interval join over a :class:`~joins.store.JoinStore`.

    ``partitions`` are all source partitions of both streams: until each has
    spoken, gone idle or closed, it holds the watermark at minus infinity.
    ``clock`` returns processing time in milliseconds; it judges idleness only.
    """

    def __init__(
        self,
        spec: JoinSpec,
        store: JoinStore,
        partitions: Iterable[str],
        clock: Callable[[], int],
        *,
        eviction_chunk: int = 10_000,
        state: dict[str, Any] | None = None,
    ) -> None:
        if eviction_chunk <= 0:
            msg = f"eviction_chunk must be > 0 entries, got {eviction_chunk}"
            raise ValueError(msg)
        self.spec = spec
        self.store = store
        self._clock = clock
        self._chunk = eviction_chunk
        if state is None:
            self.tracker = WatermarkTracker(
                list(partitions),
                max_out_of_orderness_ms=spec.max_out_of_orderness_ms,
                idle_timeout_ms=spec.idle_timeout_ms,
                start_ms=clock(),
            )
            self.counters = JoinCounters()
        else:
            self.tracker = WatermarkTracker.from_state(
                state["watermark"],
                max_out_of_orderness_ms=spec.max_out_of_orderness_ms,
                idle_timeout_ms=spec.idle_timeout_ms,
                now_ms=clock(),
            )
            for p in partitions:
                if p not in self.tracker.partitions:
                    self.tracker.observe(PartitionMark(p, None, clock()))
            self.counters = JoinCounters.from_dict(state["counters"])

    @property
    def watermark(self) -> int:
        """The join's watermark ``W``."""
        return self.tracker.watermark

    def to_state(self) -> dict[str, Any]:
        """The joiner's own state besides the store: watermarks and counters."""
        return {"watermark": self.tracker.to_state(), "counters": self.counters.to_dict()}

    def process(self, events: Sequence[Event], marks: Iterable[PartitionMark] = ()) -> JoinOutput:
        """Join a batch of events; ``marks`` are partition reports stamped on them."""
        return _merged(self.process_chunks(events, marks))

    def process_chunks(
        self, events: Sequence[Event], marks: Iterable[PartitionMark] = ()
    ) -> Iterator[JoinOutput]:
        """:meth:`process`, one output per eviction chunk (and one for the join
        itself), each committed before it is yielded. Exhaust it before the next
        call."""
        now = self._clock()
        yield from self._evict_chunks(now)
        counters = self.counters
        wm = self.tracker.watermark
        cutoff = wm - self.spec.allowed_lateness_ms
        observe = self.tracker.observe_event
        out = JoinOutput(watermark_ms=wm)
        on_time: list[Event] = []
        for event in events:
            # Observing moves no watermark until ``_evict_chunks`` below: the batch
            # is classified against ``W`` as it stood when the batch started.
            observe(event.partition, event.ts, now)
            side = counters.side(event.side)
            side.events_in += 1
            if event.ts < cutoff:
                side.late += 1
                out.late.append(Late(event, wm, cutoff - event.ts))
            else:
                on_time.append(event)
        if on_time:
            self._join(on_time, out)
        for mark in marks:
            self.tracker.observe(mark)
        out.watermark_ms = self.tracker.advance(now)
        self.store.commit()
        yield out
        yield from self._evict_chunks(now)

    def _join(self, events: list[Event], out: JoinOutput) -> None:
        spec, store, counters = self.spec, self.store, self.counters
        lower, upper = spec.lower_ms, spec.upper_ms
        sides = {"left": counters.left, "right": counters.right}
        scan, insert, mark = store.scan, store.insert, store.mark_matched
        matched = out.matched
        seen: set[tuple[str, bytes]] = set()
        pairs = 0
        for event, known in zip(events, store.contains_many(events), strict=True):
            side = sides[event.side]
            ident = (event.side, event.identity)
            if known or ident in seen:
                side.duplicates += 1
                continue
            seen.add(ident)
            ts = event.ts
            if event.side == "left":
                partners = scan("right", event.key, ts + lower, ts + upper)
                for entry in partners:
                    matched.append(Matched(event, entry.event))
                    if not entry.matched:
                        mark(entry)
            else:
                partners = scan("left", event.key, ts - upper, ts - lower)
                for entry in partners:
                    matched.append(Matched(entry.event, event))
                    if not entry.matched:
                        mark(entry)
            pairs += len(partners)
            insert(event, bool(partners))
            side.stored += 1
        counters.pairs += pairs

    def advance(self, marks: Iterable[PartitionMark] = ()) -> JoinOutput:
        """Take watermark heartbeats (and idleness) into account and evict."""
        return _merged(self.advance_chunks(marks))

    def advance_chunks(self, marks: Iterable[PartitionMark] = ()) -> Iterator[JoinOutput]:
        """:meth:`advance`, one committed output per eviction chunk (at least one)."""
        for mark in marks:
            self.tracker.observe(mark)
        yield JoinOutput(watermark_ms=self.tracker.advance(self._clock()))
        yield from self._evict_chunks(self._clock())

    def close(self) -> JoinOutput:
        """End of all input: ``W`` becomes plus infinity and everything is evicted."""
        return _merged(self.close_chunks())

    def close_chunks(self) -> Iterator[JoinOutput]:
        """:meth:`close`, one committed output per eviction chunk (at least one)."""
        now = self._clock()
        for p in self.tracker.partitions:
            self.tracker.observe(PartitionMark(p, None, now, closed=True))
        yield JoinOutput(watermark_ms=self.tracker.advance(now))
        yield from self._evict_chunks(now)

    def _evict_chunks(self, now: int) -> Iterator[JoinOutput]:
        """Advance the watermark to ``now``'s and evict every bucket that is due,
        at most ``eviction_chunk`` entries per output, each committed."""
        wm = self.tracker.advance(now)
        below = wm - self.spec.allowed_lateness_ms if wm < WM_MAX else WM_MAX
        store, chunk = self.store, self._chunk
        for side in SIDES:
            outer = self.spec.outer_left if side == "left" else self.spec.outer_right
            counters = self.counters.side(side)
            # bucket b of this side is due once its latest time's bound is past:
            # (b + 1) * width - 1 + retention < W - A
            below_ts = below - self.spec.retention_ms(side) if wm < WM_MAX else WM_MAX
            more = True
            while more:
                ev = store.evict(side, below_ts, chunk, outer)
                more = ev.more
                if not ev.removed:
                    break
                counters.evicted_matched += ev.matched
                if outer:
                    counters.unmatched_emitted += ev.unmatched
                else:
                    counters.unmatched_dropped += ev.unmatched
                out = JoinOutput(watermark_ms=wm)
                out.unmatched = [Unmatched(e) for e in ev.events]
                out.evicted[side] = ev.removed
                store.commit()
                yield out


def _merged(chunks: Iterable[JoinOutput]) -> JoinOutput:
    out = JoinOutput()
    for chunk in chunks:
        out.extend(chunk)
    return out
