"""The storage the join needs (:class:`JoinStore`), declared by its consumer.

``state/`` satisfies it with RocksDB; :mod:`joins.memory` is the in-memory
reference implementation and the executable specification. One contract test
class runs against both.

An entry is identified by ``(side, event.identity)``. Each entry carries its
eviction ``bound``: the join evicts it once ``W - A > bound``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from joins.events import Event, Side


@dataclass(slots=True)
class Entry:
    """A retained event and whether it has matched at least once."""

    event: Event
    matched: bool


class JoinStore(Protocol):
    """What the interval joiner needs from its state.

    Writes must be visible to later reads at once (read-your-writes), also
    before :meth:`commit`; :meth:`commit` marks the end of a batch, after which a
    store may make the batch durable in one write.
    """

    def contains_many(self, events: Sequence[Event]) -> list[bool]:
        """For each event, whether an entry of the same side and identity exists."""
        ...

    def scan(self, side: Side, key: str, lo_ts: int, hi_ts: int) -> list[Entry]:
        """Entries of ``side`` and ``key`` with ``lo_ts <= ts <= hi_ts``, by time.

        Cost must depend on the entries in the range, not on all of the key's.
        """
        ...

    def insert(self, event: Event, matched: bool, bound: int) -> None:
        """Retain ``event`` (not present yet) until ``W - A > bound``."""
        ...

    def mark_matched(self, entry: Entry, bound: int) -> None:
        """Record that a retained entry, as :meth:`scan` returned it, has matched;
        sets ``entry.matched``. ``bound`` is the one the entry was inserted with
        (a store may keep the flag in its expiry index too)."""
        ...

    def evict(self, side: Side, below: int, limit: int) -> list[Entry]:
        """Remove and return at most ``limit`` entries of ``side`` whose bound is
        ``< below``, lowest bound first (an expiry index, never a full scan)."""
        ...

    def count(self, side: Side) -> int:
        """How many entries of ``side`` are retained."""
        ...

    def commit(self) -> None:
        """End of a batch: make the writes so far durable."""
        ...
