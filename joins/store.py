"""The storage the join needs (:class:`JoinStore`), declared by its consumer.

``state/`` satisfies it with RocksDB; :mod:`joins.memory` is the in-memory
reference implementation and the executable specification. One contract test
class runs against both.

An entry is identified by ``(side, event.identity)``. Entries are grouped by
**event-time bucket**: an event with time ``ts`` lies in bucket
``ts // bucket_ms`` (floor division), which covers the times
``[b * bucket_ms, (b + 1) * bucket_ms)``. Eviction removes whole buckets (in
bounded chunks); the join asks for the buckets whose every entry is past its
retention bound (:meth:`JoinStore.evict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from joins.events import Event, Side

#: The bucket width of a store made without one: the default spec's
#: (:attr:`joins.spec.JoinSpec.bucket_ms` of a 30-minute interval).
DEFAULT_BUCKET_MS = 10 * 60 * 1000


@dataclass(slots=True)
class Entry:
    """A retained event and whether it has matched at least once."""

    event: Event
    matched: bool


@dataclass(slots=True)
class Eviction:
    """What one :meth:`JoinStore.evict` call removed."""

    #: Entries removed that had matched at least once.
    matched: int = 0
    #: Entries removed that never matched.
    unmatched: int = 0
    #: The events of the never-matched entries, when asked for (else empty).
    events: list[Event] = field(default_factory=list)
    #: Whether entries of due buckets remain (the limit stopped the call).
    more: bool = False

    @property
    def removed(self) -> int:
        return self.matched + self.unmatched


class JoinStore(Protocol):
    """What the interval joiner needs from its state.

    Writes must be visible to later reads at once (read-your-writes), also
    before :meth:`commit`; :meth:`commit` marks the end of a batch, after which a
    store may make the batch durable in one write (it may write earlier, e.g.
    when it evicts).
    """

    #: Width of the event-time buckets, in milliseconds (fixed for the store's life).
    bucket_ms: int

    def contains_many(self, events: Sequence[Event]) -> list[bool]:
        """For each event, whether an entry of the same side and identity exists."""
        ...

    def scan(self, side: Side, key: str, lo_ts: int, hi_ts: int) -> list[Entry]:
        """Entries of ``side`` and ``key`` with ``lo_ts <= ts <= hi_ts``, by time.

        Cost must depend on the entries in the range, not on all of the key's:
        at most one range seek per bucket that overlaps ``[lo_ts, hi_ts]`` and
        holds entries of ``side``.
        """
        ...

    def insert(self, event: Event, matched: bool) -> None:
        """Retain ``event`` (not present yet) in its bucket."""
        ...

    def mark_matched(self, entry: Entry) -> None:
        """Record that a retained entry, as :meth:`scan` returned it, has matched;
        sets ``entry.matched``."""
        ...

    def evict(self, side: Side, below_ts: int, limit: int, events: bool) -> Eviction:
        """Remove at most ``limit`` entries of ``side`` from the buckets that end
        at or before ``below_ts`` (bucket ``b`` with ``(b + 1) * bucket_ms <=
        below_ts``), oldest bucket first, and say how many had matched. With
        ``events``, the never-matched entries' events are returned too.

        Never a scan of the whole state: the store knows its buckets.
        """
        ...

    def count(self, side: Side) -> int:
        """How many entries of ``side`` are retained."""
        ...

    def commit(self) -> None:
        """End of a batch: make the writes so far durable."""
        ...


def bucket_of(ts: int, bucket_ms: int) -> int:
    """The bucket of event time ``ts``: ``ts // bucket_ms`` (floor, also below 0)."""
    return ts // bucket_ms


def due_below(bucket: int, bucket_ms: int) -> int:
    """The smallest ``below_ts`` at which :meth:`JoinStore.evict` takes ``bucket``."""
    return (bucket + 1) * bucket_ms
