"""What a store reports about itself: :class:`StoreStats` and RocksDB properties.

Read at scrape time by the metrics collector, never on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import rocksdict

from joins.events import Side
from state.snapshot import wal_bytes

#: Numeric RocksDB properties exported for metrics (sizes in bytes).
PROPERTIES = (
    "rocksdb.estimate-live-data-size",
    "rocksdb.live-sst-files-size",
    "rocksdb.estimate-num-keys",
    "rocksdb.block-cache-usage",
    "rocksdb.block-cache-capacity",
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.estimate-pending-compaction-bytes",
    "rocksdb.actual-delayed-write-rate",
    "rocksdb.is-write-stopped",
    "rocksdb.num-running-compactions",
)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A store's size.

    ``oldest_ts_ms`` is the event time of the side's oldest retained entry (None
    when empty): the first key of the side's expiry index, since a side's bound
    is its ``ts`` plus a constant, so expiry order is time order.
    """

    entries: Mapping[Side, int]
    oldest_ts_ms: Mapping[Side, int | None]
    #: Live SST files plus write-ahead log.
    disk_bytes: int
    memtable_bytes: int


def read_properties(db: rocksdict.Rdict) -> dict[str, int]:
    """The :data:`PROPERTIES` RocksDB can report, by name."""
    out: dict[str, int] = {}
    for name in PROPERTIES:
        value = db.property_int_value(name)
        if value is not None:
            out[name] = int(value)
    return out


def read_stats(
    db: rocksdict.Rdict,
    path: Path,
    entries: Mapping[Side, int],
    oldest: Mapping[Side, int | None],
) -> StoreStats:
    """Assemble :class:`StoreStats` from counts the store keeps and RocksDB."""
    sst = db.property_int_value("rocksdb.live-sst-files-size") or 0
    mem = db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
    return StoreStats(dict(entries), dict(oldest), int(sst) + wal_bytes(path), int(mem))
