"""What the RocksDB store writes and reads per event, and how it evicts.

Each test fails with its feature removed: values are decoded at eviction only
for never-matched entries of an outer side; a match writes one small flag key
(the value is not rewritten); a stored event is one put and a bucket's eviction
one ``delete_range`` (no expiry index, no per-entry delete); commits skip the
WAL; state of another layout version or bucket width is refused by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rocksdict

from joins import Event, content_id
from state import layout
from state.errors import StateError
from state.store import RocksStore
from tests.budgets import small_budget


def ev(side: str, key: str, ts: int, tag: bytes) -> Event:
    return Event(side, key, ts, content_id(tag), {"tag": tag.decode()}, "p", ts)  # type: ignore[arg-type]


def test_eviction_decodes_only_never_matched_events_of_an_outer_side(tmp_path: Path) -> None:
    """The values eviction must not decode are replaced by bytes that do not
    decode (an unknown schema fingerprint): eviction only gets through if it
    leaves them alone."""
    arrived_matched, never, later = ev("left", "k", 5, b"a"), ev("left", "k", 6, b"b"), ev(
        "left", "j", 7, b"c"
    )
    undecodable = b"\xff" * 8 + b"\x02x"
    with RocksStore(tmp_path / "db", small_budget(), bucket_ms=100) as store:
        store.insert(arrived_matched, True)
        store.insert(never, False)
        store.insert(later, False)
        for side in ("left", "right"):
            store.insert(ev(side, "z", 150, side.encode()), False)  # bucket 1 of each side
        store.commit()
        store.mark_matched(store.scan("left", "j", 7, 7)[0])
        store.commit()
        with pytest.raises(StateError, match="unknown schema fingerprint"):
            store.codec.decode(b"\x00" + undecodable)
        for e, flags in ((arrived_matched, b"\x01"), (later, b"\x00")):
            store._db.put(layout.entry_key("left", 0, e.key, e.ts, e.eid), flags + undecodable)
        inner_key = layout.entry_key("right", 1, "z", 150, content_id(b"right"))
        store._db.put(inner_key, b"\x00" + undecodable)
        out = store.evict("left", 100, 10, True)
        assert (out.matched, out.unmatched, out.events) == (2, 1, [never])
        assert out.events[0].record_json == '{"tag":"b"}'
        inner = store.evict("right", 200, 10, False)  # an inner side: counted, not decoded
        assert (inner.matched, inner.unmatched, inner.events) == (0, 1, [])


def test_a_match_writes_a_flag_key_not_the_value(tmp_path: Path) -> None:
    a = ev("right", "k", 5, b"a")
    with RocksStore(tmp_path / "db", small_budget(), bucket_ms=100) as store:
        store.insert(a, False)
        store.commit()
        k = layout.entry_key("right", 0, "k", 5, a.eid)
        value = store._db.get(k)
        assert value is not None
        assert store._db.get(layout.flag_key(k)) is None
        store.mark_matched(store.scan("right", "k", 5, 5)[0])
        store.commit()
        assert store._db.get(k) == value  # not rewritten
        assert store._db.get(layout.flag_key(k)) == b""
        assert store.scan("right", "k", 0, 99)[0].matched


def test_writes_per_event_and_per_bucket(tmp_path: Path) -> None:
    """A stored event is one put; a first match of a stored entry one more;
    evicting a whole bucket is one ``delete_range`` and one meta delete,
    whatever its size."""
    with RocksStore(tmp_path / "db", small_budget(), bucket_ms=1_000) as store:
        written: list[tuple[int, int]] = []

        def wrote() -> None:  # (batches, operations) since the last call
            done = sum(b for b, _ in written), sum(o for _, o in written)
            written.append((store.batches_written - done[0], store.ops_written - done[1]))

        wrote()
        events = [ev("left", f"k{i % 50}", i, b"%d" % i) for i in range(500)]  # bucket 0
        for e in events:
            store.insert(e, False)
        store.commit()
        wrote()
        assert written[1] == (1, 500 + 1)  # one batch: the entries and the bucket's count
        for key in ("k1", "k2", "k3"):
            for entry in store.scan("left", key, 0, 999):
                store.mark_matched(entry)
        store.commit()
        wrote()
        assert written[2] == (1, 30)  # one flag per first match, nothing else
        out = store.evict("left", 1_000, 10_000, False)
        assert (out.matched, out.unmatched) == (30, 470)
        wrote()
        assert written[3] == (1, 2)
        assert store.count("left") == 0


def test_commits_write_no_wal(tmp_path: Path) -> None:
    """Recovery resumes from checkpoints, never from a live DB: commits skip the
    WAL (it would hold every value written)."""
    path = tmp_path / "db"
    with RocksStore(path, small_budget()) as store:
        for i in range(2_000):
            store.insert(Event("left", f"k{i}", i, content_id(b"%d" % i), {"pad": "x" * 100}),
                         False)  # fmt: skip
        store.commit()
        wal = sum(f.stat().st_size for f in path.glob("*.log"))
        assert wal < 4096, f"{wal} bytes of WAL after committing 2,000 entries"
        assert store.count("left") == 2_000
    with RocksStore(path, small_budget()) as reopened:  # a clean close flushed them
        assert len(reopened.scan("left", "k7", 0, 10)) == 1


def test_state_of_layout_1_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "old"
    db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))
    # what the layout before event-time buckets wrote: entries, expiry index, meta
    db.put(b"L\x00\x00\x00\x01\x00\x01k" + bytes(16), b"\x00" * 12)
    db.put(b"XL" + bytes(8) + b"L", b"")
    db.put(b"Mschema" + bytes(8), b"{}")
    db.close()
    with pytest.raises(StateError, match=r"state layout 1 .*reads state layout 2"):
        RocksStore(path, small_budget())


def test_other_layout_versions_and_bucket_widths_are_refused(tmp_path: Path) -> None:
    with RocksStore(tmp_path / "db", small_budget(), bucket_ms=250):
        pass
    with pytest.raises(StateError, match="buckets of 250 ms; asked to open it with 300 ms"):
        RocksStore(tmp_path / "db", small_budget(), bucket_ms=300)
    with RocksStore(tmp_path / "db", small_budget()) as store:  # None: the DB's own width
        assert store.bucket_ms == 250
        store._db.put(layout.version_key(), layout.encode_u64(3))
    with pytest.raises(StateError, match="layout 3; this version reads state layout 2"):
        RocksStore(tmp_path / "db", small_budget())
