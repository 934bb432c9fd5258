"""The RocksDB :class:`~joins.store.JoinStore`: one DB per shard.

Layout in :mod:`state.layout`, values in :mod:`state.codec`. A batch's writes go
to an in-memory overlay (read-your-writes) and reach RocksDB in ONE
``WriteBatch`` at :meth:`RocksStore.commit`, together with the exact per-side
counts. Reads merge the overlay over the DB:

- ``contains_many``: overlay, then one multi-get (whole-key bloom filters);
- ``scan``: one range seek per probe on an iterator reused for the whole batch;
  a hit's record stays JSON text (parsed only if read);
- ``evict``: a walk of the expiry index from where the last sweep stopped, so
  the tombstones of earlier sweeps are not stepped over again. The index value
  says whether the entry matched, so a matched entry's value is not read at
  all, and the others' are decoded only when their event is read
  (:class:`EvictedEntry`): the join reads only those of the outer side that
  never matched.

Durability: no WAL. A live DB is never reopened after a crash: a fresh run
starts empty, and a resumed one opens a clone of its last checkpoint
(:meth:`RocksStore.checkpoint` flushes the memtables first, as does
:meth:`RocksStore.close`). The WAL added about a fifth to each commit (200k
inserts in batches of 1,000: 0.51 s of commits against 0.43 s without).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rocksdict

from joins.events import SIDES, Event, Side
from joins.store import Entry
from state import layout
from state.codec import StateCodec, is_matched, with_matched
from state.errors import StateError
from state.options import MemoryBudget, open_db
from state.snapshot import clone_files, create_checkpoint
from state.stats import StoreStats, read_properties, read_stats

_NO_ITER: Any = None
_SIDE_BYTE = layout.SIDE_BYTE
_EXPIRY_HEAD = layout.EXPIRY_HEAD_BYTES
#: Value of an expiry index key whose entry has matched (``b""``: not known to).
_MATCHED_FLAG = b"\x01"
#: Not in the overlay (the overlay's None means deleted).
_ABSENT: Any = object()


def _total_order() -> rocksdict.ReadOptions:
    opts = rocksdict.ReadOptions()
    opts.set_total_order_seek(True)
    return opts


class StoredEntry(Entry):
    """An :class:`~joins.store.Entry` that knows its RocksDB key, for
    :meth:`RocksStore.mark_matched`."""

    __slots__ = ("db_key",)

    def __init__(self, event: Event, matched: bool, db_key: bytes) -> None:
        self.event = event
        self.matched = matched
        self.db_key = db_key


class EvictedEntry(Entry):
    """An evicted :class:`~joins.store.Entry` whose event is decoded on first read
    (and whose value is read then, if the expiry index alone said it matched)."""

    __slots__ = ("_decoded", "_key", "_store", "_value")

    def __init__(self, store: RocksStore, k: bytes, value: bytes | None) -> None:
        # Entry's own ``event`` slot is shadowed by the property below.
        self.matched = value is None or is_matched(value)
        self._store = store
        self._key = k
        self._value = value
        self._decoded: Event | None = None

    @property
    def event(self) -> Event:
        if self._decoded is None:
            value = self._value
            if value is None:
                value = self._value = self._store._evicted_value(self._key)
            self._decoded = self._store._decode_entry(self._key, value).event
        return self._decoded

    @event.setter
    def event(self, event: Event) -> None:
        self._decoded = event


class RocksStore:
    """Retained events of both sides of one shard, in one RocksDB.

    ``budget`` is the process's shared :class:`~state.options.MemoryBudget`
    (default: :meth:`MemoryBudget.shared`);
    ``codec`` the value codec (its schema is the reader and writer schema; the
    writer schemas of older state are read from the DB).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        budget: MemoryBudget | None = None,
        codec: StateCodec | None = None,
    ) -> None:
        self.path = Path(path)
        self.budget = budget or MemoryBudget.shared()
        self.codec = codec or StateCodec()
        self._db = open_db(self.path, self.budget)
        self._closed = False
        self._write_options = rocksdict.WriteOptions()
        # (rocksdict's stubs declare the property a method)
        self._write_options.disable_wal = True  # type: ignore[method-assign, assignment]
        self._iter: Any = _NO_ITER
        self._xiter: Any = _NO_ITER
        self._pending: dict[bytes, bytes | None] = {}
        self._pending_events: dict[bytes, Event] = {}
        self._pending_by_prefix: dict[bytes, list[bytes]] = {}
        self._pending_expiry: dict[Side, list[bytes]] = {s: [] for s in SIDES}
        self._bodies: dict[str, bytes] = {}
        self._evict_from = {s: layout.expiry_prefix(s) for s in SIDES}
        self._count = {s: self._load_count(s) for s in SIDES}
        self._load_writer_schemas()

    # -- opening ----------------------------------------------------------------

    def _load_count(self, side: Side) -> int:
        raw = self._db.get(layout.count_key(side))
        return 0 if raw is None else layout.decode_count(raw)

    def _load_writer_schemas(self) -> None:
        prefix = layout.schema_key(b"")
        it = self._db.iter(_total_order())
        it.seek(prefix)
        while it.valid():
            key: bytes = it.key()
            if not key.startswith(prefix):
                break
            self.codec.register_writer(key[len(prefix) :], it.value().decode())
            it.next()
        del it
        own = layout.schema_key(self.codec.fingerprint)
        if self._db.get(own) is None:
            self._db.put(own, self.codec.schema_json.encode())

    @classmethod
    def open_clone(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        new_path: str | os.PathLike[str],
        budget: MemoryBudget | None = None,
        codec: StateCodec | None = None,
    ) -> RocksStore:
        """Open a new store at ``new_path`` holding a copy of a checkpoint.

        The checkpoint is never opened in place (a later crash may resume from it
        again): its SST files are hard-linked into ``new_path``, the rest copied.
        """
        return cls(clone_files(checkpoint_dir, new_path), budget, codec)

    # -- JoinStore --------------------------------------------------------------

    def contains_many(self, events: Sequence[Event]) -> list[bool]:
        """For each event, whether an entry of the same side and identity exists."""
        prefix, encode_time = self._prefix, layout.encode_time
        keys = [prefix(e.side, e.key) + encode_time(e.ts) + e.eid for e in events]
        pending = self._pending
        found: list[bool] = [False] * len(keys)
        ask: list[bytes] = []
        ask_at: list[int] = []
        for i, k in enumerate(keys):
            if k in pending:
                found[i] = pending[k] is not None
            else:
                ask.append(k)
                ask_at.append(i)
        if ask:
            for i, value in zip(ask_at, self._multi_get(ask), strict=True):
                found[i] = value is not None
        return found

    def _multi_get(self, keys: list[bytes]) -> list[bytes | None]:
        values: list[bytes | None] = self._db.get(keys)  # type: ignore[arg-type, assignment]
        return values

    def _iterator(self) -> Any:
        # One iterator per batch: it sees the DB as of its creation, which is the
        # committed state; the overlay holds everything newer. It seeks in prefix
        # mode (prefix bloom filters): fine, since a scan stays within one prefix.
        if self._iter is _NO_ITER:
            self._iter = self._db.iter()
        return self._iter

    def _expiry_iterator(self) -> Any:
        # The expiry walk crosses prefixes: it needs a total-order iterator.
        if self._xiter is _NO_ITER:
            self._xiter = self._db.iter(_total_order())
        return self._xiter

    def _drop_iterators(self) -> None:
        self._iter = self._xiter = _NO_ITER

    def _prefix(self, side: Side, key: str) -> bytes:
        """:func:`layout.key_prefix`, its side-free part cached until the commit."""
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = layout.key_body(key)
        return _SIDE_BYTE[side] + body

    def scan(self, side: Side, key: str, lo_ts: int, hi_ts: int) -> list[Entry]:
        """Entries of ``side`` and ``key`` with ``lo_ts <= ts <= hi_ts``, by time."""
        if lo_ts > hi_ts:
            return []
        prefix = self._prefix(side, key)
        plen = len(prefix)
        lower, upper = layout.scan_bounds(prefix, lo_ts, hi_ts)
        pending = self._pending
        rows: list[StoredEntry] = []
        it = self._iterator()
        it.seek(lower)
        decode = self.codec.decode_parts
        unpack = layout.decode_time
        while it.valid():
            k: bytes = it.key()
            if k >= upper:
                break
            # the overlay wins; a None there is a deletion
            value: bytes | None = pending.get(k, _ABSENT)
            if value is _ABSENT:
                value = it.value()
            if value is not None:
                partition, offset, record, text = decode(value)
                event = Event(side, key, unpack(k, plen), k[plen + 8 :], record, partition,
                              offset, text)  # fmt: skip
                rows.append(StoredEntry(event, value[0] & 1 == 1, k))
            it.next()
        mine = self._pending_by_prefix.get(prefix)
        if not mine:
            return rows  # type: ignore[return-value]  # (list is invariant)
        merged = {e.db_key: e for e in rows}
        for k in mine:
            if lower <= k < upper and k not in merged:
                value = pending[k]
                if value is not None:
                    merged[k] = StoredEntry(self._pending_events[k], is_matched(value), k)
        return [merged[k] for k in sorted(merged)]

    def _decode_event(self, side: Side, key: str, k: bytes, plen: int, value: bytes) -> Event:
        partition, offset, record, text = self.codec.decode_parts(value)
        return Event(side, key, layout.decode_time(k, plen), k[plen + 8 :], record, partition,
                     offset, text)  # fmt: skip

    def insert(self, event: Event, matched: bool, bound: int) -> None:
        """Retain ``event`` (not present yet) until ``W - A > bound``."""
        side = event.side
        prefix = self._prefix(side, event.key)
        k = prefix + layout.encode_time(event.ts) + event.eid
        text = event.record_json
        value = None
        if text is not None:
            value = self.codec.encode_text(event.partition, event.offset, text, matched)
        if value is None:
            value, text = self.codec.encode_with_json(
                event.partition, event.offset, event.record, matched
            )
            if text is not None and event.record_json is None:
                # the retained copy carries its JSON text: outputs need not encode it again
                event.record_json = text
        pending = self._pending
        pending[k] = value
        self._pending_events[k] = event
        mine = self._pending_by_prefix.get(prefix)
        if mine is None:
            self._pending_by_prefix[prefix] = [k]
        else:
            mine.append(k)
        x = layout.expiry_key(side, bound, k)
        pending[x] = _MATCHED_FLAG if matched else b""
        self._pending_expiry[side].append(x)
        if x < self._evict_from[side]:
            self._evict_from[side] = x
        self._count[side] += 1

    def mark_matched(self, entry: Entry, bound: int) -> None:
        """Record that the retained entry (as :meth:`scan` returned it, inserted
        with ``bound``) has matched: its value's flags byte and its expiry index
        value; sets ``entry.matched``."""
        e = entry.event
        k = entry.db_key if isinstance(entry, StoredEntry) else None
        if k is None:
            k = self._prefix(e.side, e.key) + layout.encode_time(e.ts) + e.eid
        pending = self._pending
        value = pending.get(k, _ABSENT)
        if value is _ABSENT:
            value = self._db.get(k)
        if value is None:
            msg = f"mark_matched: no retained {e.side} event {e.key!r} at {e.ts} ms"
            raise StateError(msg)
        if not value[0] & 1:
            pending[k] = with_matched(value)
        x = layout.expiry_key(e.side, bound, k)
        pending[x] = _MATCHED_FLAG
        entry.matched = True

    def evict(self, side: Side, below: int, limit: int) -> list[Entry]:
        """Remove and return at most ``limit`` entries of ``side`` with bound
        ``< below``, lowest bound first, walking the expiry index.

        An entry the expiry index marks as matched is returned without reading
        its value; its event is read on first access (before the next commit).
        """
        chosen = self._expiry_head(side, below, limit)
        if not chosen:
            return []
        pending = self._pending
        pending_events = self._pending_events
        entries: list[Entry | None] = []
        ask: list[bytes] = []
        ask_at: list[int] = []
        for x, flag in chosen:
            k = x[_EXPIRY_HEAD:]
            event = pending_events.get(k)
            if event is not None:
                value = pending[k]
                entries.append(Entry(event, value is not None and is_matched(value)))
            elif flag:
                entries.append(EvictedEntry(self, k, None))
            else:  # unmatched, or state written before the index held the flag
                value = pending.get(k)
                if value is None:
                    ask.append(k)
                    ask_at.append(len(entries))
                    entries.append(None)
                else:
                    entries.append(EvictedEntry(self, k, value))
        if ask:
            for i, k, value in zip(ask_at, ask, self._multi_get(ask), strict=True):
                if value is None:
                    msg = f"expiry index points at a missing entry {k[:40]!r} in {self.path}"
                    raise StateError(msg)
                entries[i] = EvictedEntry(self, k, value)
        for x, _flag in chosen:
            pending[x] = None
            pending[x[_EXPIRY_HEAD:]] = None
        self._evict_from[side] = chosen[-1][0] + b"\x00"
        self._count[side] -= len(chosen)
        return [e for e in entries if e is not None]

    def _evicted_value(self, k: bytes) -> bytes:
        """The value of an entry evicted in this batch (still in the DB until commit)."""
        value = self._db.get(k)
        if value is None:
            msg = f"evicted entry {k[:40]!r} read after the commit that deleted it"
            raise StateError(msg)
        return value  # type: ignore[no-any-return]

    def _decode_entry(self, k: bytes, value: bytes) -> Entry:
        side, key, _ts, _eid = layout.decode_entry_key(k)
        event = self._decode_event(side, key, k, layout.prefix_length(key), value)
        return Entry(event, is_matched(value))

    def _expiry_head(self, side: Side, below: int, limit: int) -> list[tuple[bytes, bool]]:
        """The first ``limit`` live expiry keys of ``side`` with bound ``< below``,
        each with its matched flag (the index value ``b"\\x01"``)."""
        if limit <= 0:
            return []
        upper = layout.expiry_upper(side, below)
        pending = self._pending
        from_db: list[tuple[bytes, bool]] = []
        it = self._expiry_iterator()
        it.seek(self._evict_from[side])
        while it.valid() and len(from_db) < limit:
            x: bytes = it.key()
            if x >= upper:
                break
            flag: bytes | None = pending.get(x, _ABSENT)
            if flag is _ABSENT:
                from_db.append((x, it.value() == _MATCHED_FLAG))
            elif flag is not None:
                from_db.append((x, flag == _MATCHED_FLAG))  # marked in this batch
            it.next()
        mine = self._pending_expiry[side]
        if mine:
            fresh = sorted(
                (x, pending[x] == _MATCHED_FLAG)
                for x in mine
                if x < upper and pending.get(x) is not None
            )
            return list(heapq.merge(from_db, fresh))[:limit]
        return from_db

    def count(self, side: Side) -> int:
        """How many entries of ``side`` are retained (exact, persisted)."""
        return self._count[side]

    def commit(self) -> None:
        """Write the batch's overlay and the counts in one ``WriteBatch``."""
        if len(self._bodies) > 100_000:
            self._bodies.clear()
        if not self._pending:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for k, v in self._pending.items():
            if v is None:
                batch.delete(k)
            else:
                batch.put(k, v)
        for side in SIDES:
            batch.put(layout.count_key(side), layout.encode_count(self._count[side]))
        self._drop_iterators()
        try:
            self._db.write(batch, self._write_options)
        except Exception as exc:  # rocksdict raises plain Exception for RocksDB errors
            msg = f"RocksDB write of {len(self._pending)} keys to {self.path} failed: {exc}"
            raise StateError(msg) from exc
        self._pending.clear()
        self._pending_events.clear()
        self._pending_by_prefix.clear()
        for side in SIDES:
            self._pending_expiry[side].clear()

    # -- operations -------------------------------------------------------------

    def stats(self) -> StoreStats:
        """Entries and oldest retained event time per side, bytes on disk."""
        oldest: dict[Side, int | None] = {}
        for side in SIDES:
            head = self._expiry_head(side, 2**63, 1)
            oldest[side] = layout.decode_entry_key(head[0][0][_EXPIRY_HEAD:])[2] if head else None
        return read_stats(self._db, self.path, dict(self._count), oldest)

    def rocksdb_properties(self) -> dict[str, int]:
        """A few numeric RocksDB properties (sizes in bytes), for metrics."""
        return read_properties(self._db)

    def checkpoint(self, dest_dir: str | os.PathLike[str]) -> Path:
        """Commit the overlay, then write a RocksDB checkpoint to ``dest_dir``."""
        self.commit()
        self._drop_iterators()
        return create_checkpoint(self._db, dest_dir)

    def close(self) -> None:
        """Commit the overlay and close the DB (idempotent)."""
        if self._closed:
            return
        self.commit()
        self._drop_iterators()
        self._db.close()
        self._closed = True

    def __enter__(self) -> RocksStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
