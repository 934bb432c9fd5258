"""The join core: an exact event-time interval join over plain data.

Nothing here imports the engine, the storage, metrics or Avro; ``state/``
provides a RocksDB store satisfying :class:`joins.store.JoinStore`.
"""

from joins.counters import JoinCounters, SideCounters
from joins.errors import EventError, JoinSpecError, StreamJoinError
from joins.events import (
    SIDES,
    Event,
    Late,
    Matched,
    Side,
    Unmatched,
    content_id,
    match_id,
    other_side,
    unmatched_id,
)
from joins.joiner import IntervalJoiner, JoinOutput
from joins.memory import MemoryStore
from joins.spec import HOWS, How, JoinSpec
from joins.store import Entry, Eviction, JoinStore
from joins.watermark import WM_MAX, WM_MIN, PartitionMark, WatermarkTracker

__all__ = [
    "HOWS",
    "SIDES",
    "WM_MAX",
    "WM_MIN",
    "Entry",
    "Event",
    "EventError",
    "Eviction",
    "How",
    "IntervalJoiner",
    "JoinCounters",
    "JoinOutput",
    "JoinSpec",
    "JoinSpecError",
    "JoinStore",
    "Late",
    "Matched",
    "MemoryStore",
    "PartitionMark",
    "Side",
    "SideCounters",
    "StreamJoinError",
    "Unmatched",
    "WatermarkTracker",
    "content_id",
    "match_id",
    "other_side",
    "unmatched_id",
]
