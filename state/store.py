"""The RocksDB :class:`~joins.store.JoinStore`: one DB per shard.

Layout in :mod:`state.layout` (entries keyed ``side | bucket | key | ts | eid``,
grouped by event-time bucket), values in :mod:`state.codec`. A batch's writes go
to an in-memory overlay (read-your-writes) and reach RocksDB in ONE
``WriteBatch`` at :meth:`RocksStore.commit`, with the counts of the buckets the
batch touched. Per stored event that is one put, plus one small put (a flag key)
when a retained entry first matches; eviction writes one ``delete_range`` per
bucket (or per chunk of a bucket). Reads merge the overlay over the DB:

- ``contains_many``: overlay, then one multi-get of the exact keys in live
  buckets (whole-key bloom filters answer most: duplicates are rare);
- ``scan``: one range seek per live bucket the time range overlaps, on an
  iterator reused for the whole batch; prefix bloom filters over (side, bucket,
  key hash) answer the buckets without the key. A hit's record stays JSON text
  (parsed only if read). A flag key follows its entry: the scan sees it next;
- ``evict``: the due buckets are known in memory (one meta key per live
  bucket); one scan of a bucket counts the entries that matched and decodes
  only the never-matched ones of an outer side, then ``delete_range`` removes
  what was scanned. No expiry index, no per-entry delete.

Durability: no WAL. A live DB is never reopened after a crash: a fresh run
starts empty, and a resumed one opens a clone of its last checkpoint
(:meth:`RocksStore.checkpoint` flushes the memtables first, as does
:meth:`RocksStore.close`). The WAL added about a fifth to each commit (200k
inserts in batches of 1,000: 0.51 s of commits against 0.43 s without).
"""

from __future__ import annotations

import os
from bisect import bisect_left, insort
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rocksdict

from joins.events import SIDES, Event, Side
from joins.store import DEFAULT_BUCKET_MS, Entry, Eviction
from state import layout
from state.codec import StateCodec, is_matched, with_matched
from state.errors import StateError
from state.key_filter import KeyFilter
from state.options import MemoryBudget, open_db
from state.snapshot import clone_files, create_checkpoint
from state.stats import StoreStats, read_properties, read_stats

_NO_ITER: Any = None
_SIDE_BYTE = layout.SIDE_BYTE
_U64_OFFSET = 2**63
_EID = layout.EID_BYTES
_FLAG = layout.FLAG_SUFFIX
#: Not in the overlay.
_ABSENT: Any = object()
#: Per-key caches are cleared at a commit once they hold this many keys.
_CACHE_KEYS = 100_000


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


def _db_key(entry: StoredEntry) -> bytes:
    return entry.db_key


class _Bucket:
    """A live bucket of one side: its entry count, the earliest event time ever
    stored in it (for stats), where a chunked eviction of it stopped, and the
    filter of its keys (``None`` for a bucket found in the DB at open: its keys
    are not known)."""

    __slots__ = ("count", "keys", "min_ts", "number", "resume", "side")

    def __init__(
        self, side: Side, number: int, count: int, min_ts: int, keys: KeyFilter | None = None
    ) -> None:
        self.side: Side = side
        self.number = number
        self.count = count
        self.min_ts = min_ts
        self.resume: bytes | None = None
        self.keys = keys

    @property
    def meta(self) -> tuple[bytes, bytes]:
        return (
            layout.bucket_meta_key(self.side, self.number),
            layout.encode_bucket_meta(self.count, self.min_ts),
        )


class RocksStore:
    """Retained events of both sides of one shard, in one RocksDB.

    ``budget`` is the process's shared :class:`~state.options.MemoryBudget`
    (default: :meth:`MemoryBudget.shared`);
    ``codec`` the value codec (its schema is the reader and writer schema; the
    writer schemas of older state are read from the DB);
    ``bucket_ms`` the eviction bucket width: recorded in a new DB; an existing
    DB keeps its own (``None`` accepts it, any other value must equal it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        budget: MemoryBudget | None = None,
        codec: StateCodec | None = None,
        *,
        bucket_ms: int | None = None,
    ) -> None:
        if bucket_ms is not None and (
            isinstance(bucket_ms, bool) or not isinstance(bucket_ms, int) or bucket_ms <= 0
        ):
            msg = f"bucket_ms must be a positive integer number of milliseconds, got {bucket_ms!r}"
            raise StateError(msg)
        self.path = Path(path)
        self.budget = budget or MemoryBudget.shared()
        self.codec = codec or StateCodec()
        self._db = open_db(self.path, self.budget)
        self._closed = False
        try:
            self.bucket_ms = self._check_layout(bucket_ms)
        except StateError:
            self._db.close()
            raise
        self._write_options = rocksdict.WriteOptions()
        # (rocksdict's stubs declare the property a method)
        self._write_options.disable_wal = True  # type: ignore[method-assign, assignment]
        self._iter: Any = _NO_ITER
        #: The batch's writes: entry key -> value, flag key -> b"".
        self._pending: dict[bytes, bytes] = {}
        self._pending_events: dict[bytes, Event] = {}
        self._pending_by_prefix: dict[bytes, list[bytes]] = {}
        #: Entry keys (in the DB) flagged as matched in this batch.
        self._flagged: set[bytes] = set()
        self._dirty: dict[tuple[Side, int], _Bucket] = {}
        self._bodies: dict[str, bytes] = {}
        #: ``WriteBatch`` writes and the operations in them (puts, deletes, range
        #: deletes) since the store was opened: what the layout costs in writes.
        self.batches_written = 0
        self.ops_written = 0
        #: Probes (scans), and the RocksDB seeks they made and skipped, since the
        #: store was opened (a bucket's key filter rules a seek out).
        self.probes = 0
        self.seeks = 0
        self.seeks_skipped = 0
        self._heads: dict[Side, dict[int, bytes]] = {s: {} for s in SIDES}
        self._buckets: dict[Side, dict[int, _Bucket]] = {s: {} for s in SIDES}
        #: Live bucket numbers per side, ascending.
        self._live: dict[Side, list[int]] = {s: [] for s in SIDES}
        self._count: dict[Side, int] = {s: 0 for s in SIDES}
        self._load_buckets()
        self._load_writer_schemas()

    # -- opening ----------------------------------------------------------------

    def _check_layout(self, bucket_ms: int | None) -> int:
        """The DB's bucket width; records version and width in a new DB. Refuses
        another layout version, or a width other than a given ``bucket_ms``."""
        version = self._db.get(layout.version_key())
        width = self._db.get(layout.bucket_width_key())
        if version is None:
            it = self._db.iter(_total_order())
            it.seek_to_first()
            empty = not it.valid()
            del it
            if not empty:
                msg = (
                    f"the state at {self.path} was written with state layout 1 (an expiry "
                    f"index per entry); this version reads state layout "
                    f"{layout.LAYOUT_VERSION} (event-time buckets) only. Start the run "
                    "afresh: state from before the upgrade cannot be resumed"
                )
                raise StateError(msg)
            chosen = DEFAULT_BUCKET_MS if bucket_ms is None else bucket_ms
            self._db.put(layout.version_key(), layout.encode_u64(layout.LAYOUT_VERSION))
            self._db.put(layout.bucket_width_key(), layout.encode_u64(chosen))
            return chosen
        found = layout.decode_u64(version)
        if found != layout.LAYOUT_VERSION:
            msg = (
                f"the state at {self.path} was written with state layout {found}; this "
                f"version reads state layout {layout.LAYOUT_VERSION} only"
            )
            raise StateError(msg)
        if width is None:
            msg = f"the state at {self.path} records no bucket width (corrupt meta)"
            raise StateError(msg)
        recorded = layout.decode_u64(width)
        if bucket_ms is not None and bucket_ms != recorded:
            msg = (
                f"the state at {self.path} was written with eviction buckets of "
                f"{recorded} ms; asked to open it with {bucket_ms} ms"
            )
            raise StateError(msg)
        return recorded

    def _load_buckets(self) -> None:
        prefix = layout.BUCKET_META_PREFIX
        it = self._db.iter(_total_order())
        it.seek(prefix)
        while it.valid():
            key: bytes = it.key()
            if not key.startswith(prefix):
                break
            side, number = layout.decode_bucket_meta_key(key)
            count, min_ts = layout.decode_bucket_meta(it.value())
            self._buckets[side][number] = _Bucket(side, number, count, min_ts)
            self._count[side] += count
            it.next()
        del it
        for side in SIDES:
            self._live[side] = sorted(self._buckets[side])

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
        *,
        bucket_ms: int | None = None,
    ) -> RocksStore:
        """Open a new store at ``new_path`` holding a copy of a checkpoint.

        The checkpoint is never opened in place (a later crash may resume from it
        again): its SST files are hard-linked into ``new_path``, the rest copied.
        """
        return cls(clone_files(checkpoint_dir, new_path), budget, codec, bucket_ms=bucket_ms)

    # -- keys -------------------------------------------------------------------

    def _head(self, side: Side, bucket: int) -> bytes:
        """:func:`layout.bucket_head`, cached per side."""
        heads = self._heads[side]
        head = heads.get(bucket)
        if head is None:
            if len(heads) > 4096:
                heads.clear()
            head = heads[bucket] = _SIDE_BYTE[side] + (bucket + _U64_OFFSET).to_bytes(8)
        return head

    def _body(self, key: str) -> bytes:
        """:func:`layout.key_body`, cached until a commit finds the cache large."""
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = layout.key_body(key)
        return body

    def _entry_key(self, e: Event) -> bytes:
        return (
            self._head(e.side, e.ts // self.bucket_ms)
            + self._body(e.key)
            + layout.encode_time(e.ts)
            + e.eid
        )

    # -- JoinStore --------------------------------------------------------------

    def contains_many(self, events: Sequence[Event]) -> list[bool]:
        """For each event, whether an entry of the same side and identity exists."""
        pending = self._pending
        buckets = self._buckets
        width = self.bucket_ms
        found: list[bool] = [False] * len(events)
        ask: list[bytes] = []
        ask_at: list[int] = []
        for i, e in enumerate(events):
            bucket = buckets[e.side].get(e.ts // width)
            if bucket is None:
                continue  # not a live bucket: nothing of it is stored
            keys = bucket.keys
            if keys is not None and not keys.may_hold(e.key):
                continue  # the bucket holds no entry of the key
            k = self._entry_key(e)
            if k in pending:
                found[i] = True
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

    def scan(self, side: Side, key: str, lo_ts: int, hi_ts: int) -> list[Entry]:
        """Entries of ``side`` and ``key`` with ``lo_ts <= ts <= hi_ts``, by time:
        one range seek per live bucket of ``side`` the range overlaps."""
        if lo_ts > hi_ts:
            return []
        live = self._live[side]
        width = self.bucket_ms
        i = bisect_left(live, lo_ts // width)
        n = len(live)
        last = hi_ts // width
        if i == n or live[i] > last:
            return []
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = layout.key_body(key)
        lo_b, hi_b = layout.scan_bounds(b"", lo_ts, hi_ts)
        heads = self._heads[side]
        buckets = self._buckets[side]
        pending = self._pending_by_prefix
        it = self._iterator()
        rows: list[StoredEntry] = []
        self.probes += 1
        while i < n:
            bucket = live[i]
            if bucket > last:
                break
            i += 1
            keys = buckets[bucket].keys
            if keys is not None and not keys.may_hold(key):
                self.seeks_skipped += 1
                continue  # no entry of the key in the bucket, in the DB or the overlay
            self.seeks += 1
            head = heads.get(bucket)
            if head is None:
                head = self._head(side, bucket)
            prefix = head + body
            lower = prefix + lo_b
            upper = prefix + hi_b
            it.seek(lower)
            # most buckets hold no entry of the key: the prefix bloom filter
            # answered, and the iterator is past the range (or invalid)
            if it.valid() and it.key() < upper:
                self._read_range(it, side, key, prefix, upper, rows)
            mine = pending.get(prefix) if pending else None
            if mine:
                self._merge_pending(mine, lower, upper, prefix, rows)
        return rows  # type: ignore[return-value]  # (list is invariant)

    def _read_range(
        self, it: Any, side: Side, key: str, prefix: bytes, upper: bytes, rows: list[StoredEntry]
    ) -> None:
        """Append the entries from the iterator's position up to ``upper``."""
        plen = len(prefix)
        flagged = self._flagged
        decode = self.codec.decode_parts
        unpack = layout.decode_time
        first = len(rows)
        while it.valid():
            k: bytes = it.key()
            if k >= upper:
                break
            value: bytes = it.value()
            if not value:  # the flag of the entry just read: it has matched
                if len(rows) > first:
                    rows[-1].matched = True
            else:
                partition, offset, record, text = decode(value)
                event = Event(side, key, unpack(k, plen), k[plen + 8 :], record, partition,
                              offset, text)  # fmt: skip
                matched = value[0] & 1 == 1 or (bool(flagged) and k in flagged)
                rows.append(StoredEntry(event, matched, k))
            it.next()

    def _merge_pending(
        self, mine: list[bytes], lower: bytes, upper: bytes, prefix: bytes, rows: list[StoredEntry]
    ) -> None:
        """Add the overlay's entries ``mine`` of ``prefix`` within ``[lower, upper)``
        to the rows of that bucket (the last ones of ``rows``), keeping key order."""
        pending = self._pending
        fresh = [
            StoredEntry(self._pending_events[k], is_matched(pending[k]), k)
            for k in mine
            if lower <= k < upper
        ]
        if not fresh:
            return
        start = len(rows)
        while start > 0 and rows[start - 1].db_key.startswith(prefix):
            start -= 1
        mixed = rows[start:] + fresh
        mixed.sort(key=_db_key)
        rows[start:] = mixed

    def insert(self, event: Event, matched: bool) -> None:
        """Retain ``event`` (not present yet) in its bucket."""
        side = event.side
        ts = event.ts
        if len(event.eid) != _EID:
            msg = f"an event id is {_EID} bytes in the state layout, got {len(event.eid)}"
            raise StateError(msg)
        number = ts // self.bucket_ms
        prefix = self._head(side, number) + self._body(event.key)
        k = prefix + layout.encode_time(ts) + event.eid
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
        self._pending[k] = value
        self._pending_events[k] = event
        mine = self._pending_by_prefix.get(prefix)
        if mine is None:
            self._pending_by_prefix[prefix] = [k]
        else:
            mine.append(k)
        bucket = self._buckets[side].get(number)
        if bucket is None:
            bucket = self._new_bucket(side, number, ts)
        elif ts < bucket.min_ts:
            bucket.min_ts = ts
        if bucket.keys is not None:
            bucket.keys.add(event.key)
        bucket.count += 1
        bucket.resume = None  # (only a store-level caller inserts into a due bucket)
        self._dirty[(side, number)] = bucket
        self._count[side] += 1

    def _new_bucket(self, side: Side, number: int, ts: int) -> _Bucket:
        """A bucket opened by this store: its key filter sized for as many keys
        as the side's newest bucket holds (the nearest guess)."""
        live = self._live[side]
        capacity = self._buckets[side][live[-1]].count if live else 0
        bucket = self._buckets[side][number] = _Bucket(side, number, 0, ts, KeyFilter(capacity))
        insort(live, number)
        return bucket

    def mark_matched(self, entry: Entry) -> None:
        """Record that the retained entry (as :meth:`scan` returned it) has
        matched: a flag key (one small put) if it is in the DB, its overlay value's
        flags byte if it was stored in this batch; sets ``entry.matched``."""
        k = entry.db_key if isinstance(entry, StoredEntry) else self._entry_key(entry.event)
        pending = self._pending
        value = pending.get(k)
        if value is not None:
            pending[k] = with_matched(value)
        else:
            pending[k + _FLAG] = b""
            self._flagged.add(k)
        entry.matched = True

    def evict(self, side: Side, below_ts: int, limit: int, events: bool) -> Eviction:
        """Remove at most ``limit`` entries of ``side`` from the buckets with
        ``(b + 1) * bucket_ms <= below_ts``, oldest first; see
        :meth:`joins.store.JoinStore.evict`.

        Commits the overlay first, then scans the DB: one pass over a bucket
        reads its entries and flags, decodes only the never-matched entries when
        ``events`` asks for them, and one ``delete_range`` (with the bucket's
        meta key) removes what was read, written at once.
        """
        out = Eviction()
        live = self._live[side]
        width = self.bucket_ms
        if not live or (live[0] + 1) * width > below_ts:
            return out
        self.commit()
        batch = rocksdict.WriteBatch(raw_mode=True)
        it = self._db.iter(_total_order())
        try:
            while live and (live[0] + 1) * width <= below_ts:
                bucket = self._buckets[side][live[0]]
                if not self._evict_bucket(it, bucket, limit, events, out, batch):
                    out.more = True
                    break
                del self._buckets[side][bucket.number]
                live.pop(0)
        finally:
            del it
        self._write(batch)
        self._count[side] -= out.removed
        return out

    def _evict_bucket(
        self,
        it: Any,
        bucket: _Bucket,
        limit: int,
        events: bool,
        out: Eviction,
        batch: rocksdict.WriteBatch,
    ) -> bool:
        """Scan ``bucket`` until ``out`` holds ``limit`` entries; True if it was
        scanned to its end (then it is deleted whole), False if the limit
        stopped it (then up to where it stopped)."""
        begin, end = layout.bucket_range(bucket.side, bucket.number)
        it.seek(bucket.resume or begin)
        matched = unmatched = 0
        held: bytes | None = None  # the value of an entry whose flag may follow
        held_key = b""
        stop: bytes | None = None
        decode = self._decode_evicted if events else None
        while it.valid():
            k: bytes = it.key()
            if k >= end:
                break
            value: bytes = it.value()
            if not value:  # the flag of the held entry
                matched += 1
                held = None
            else:
                if held is not None:
                    if held[0] & 1:
                        matched += 1
                    else:
                        unmatched += 1
                        if decode is not None:
                            out.events.append(decode(held_key, held))
                if out.removed + matched + unmatched >= limit:
                    held = None
                    stop = k
                    break
                held, held_key = value, k
            it.next()
        if held is not None:
            if held[0] & 1:
                matched += 1
            else:
                unmatched += 1
                if decode is not None:
                    out.events.append(decode(held_key, held))
        out.matched += matched
        out.unmatched += unmatched
        bucket.count -= matched + unmatched
        if stop is not None:
            batch.delete_range(begin, stop)
            bucket.resume = stop
            batch.put(*bucket.meta)
            return False
        if bucket.count != 0:
            msg = (
                f"bucket {bucket.number} of {bucket.side} in {self.path}: its meta "
                f"counted {bucket.count} more entries than its scan found"
            )
            raise StateError(msg)
        batch.delete_range(begin, end)
        batch.delete(layout.bucket_meta_key(bucket.side, bucket.number))
        return True

    def _decode_evicted(self, k: bytes, value: bytes) -> Event:
        side, _bucket, key, ts, eid = layout.decode_entry_key(k)
        partition, offset, record, text = self.codec.decode_parts(value)
        return Event(side, key, ts, eid, record, partition, offset, text)

    def count(self, side: Side) -> int:
        """How many entries of ``side`` are retained (exact, persisted per bucket)."""
        return self._count[side]

    def commit(self) -> None:
        """Write the batch's overlay and the touched buckets' counts in one
        ``WriteBatch``."""
        if len(self._bodies) > _CACHE_KEYS:
            self._bodies.clear()
        if not self._pending and not self._dirty:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for k, v in self._pending.items():
            batch.put(k, v)
        for bucket in self._dirty.values():
            batch.put(*bucket.meta)
        self._write(batch)
        self._pending.clear()
        self._pending_events.clear()
        self._pending_by_prefix.clear()
        self._flagged.clear()
        self._dirty.clear()

    def _write(self, batch: rocksdict.WriteBatch) -> None:
        if batch.is_empty():
            return
        self._drop_iterators()
        self.batches_written += 1
        self.ops_written += batch.len()
        try:
            self._db.write(batch, self._write_options)
        except Exception as exc:  # rocksdict raises plain Exception for RocksDB errors
            msg = f"RocksDB write of {batch.len()} operations to {self.path} failed: {exc}"
            raise StateError(msg) from exc

    def _drop_iterators(self) -> None:
        self._iter = _NO_ITER

    # -- operations -------------------------------------------------------------

    def buckets(self, side: Side) -> list[int]:
        """The live buckets of ``side``, oldest first."""
        return list(self._live[side])

    def stats(self) -> StoreStats:
        """Entries per side, the earliest event time stored in each side's oldest
        live bucket (within one bucket of the oldest retained), bytes on disk."""
        oldest: dict[Side, int | None] = {}
        for side in SIDES:
            live = self._live[side]
            oldest[side] = self._buckets[side][live[0]].min_ts if live else None
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
