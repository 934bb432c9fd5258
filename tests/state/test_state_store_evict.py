"""Eviction decodes a value only when the evicted entry's event is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from joins import Event, content_id
from state import layout
from state.codec import StateCodec
from state.store import RocksStore
from tests.budgets import small_budget


class CountingCodec(StateCodec):
    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def decode_parts(self, value: bytes) -> tuple[str, int, dict[str, Any] | None, str | None]:
        self.decoded += 1
        return super().decode_parts(value)


@pytest.mark.parametrize("committed", [True, False])
def test_evicted_entries_decode_lazily(tmp_path: Path, committed: bool) -> None:
    budget = small_budget()
    codec = CountingCodec()
    a = Event("left", "k", 5, content_id(b"a"), {"a": [1, 2.5]}, "p", 1)
    b = Event("left", "k", 6, content_id(b"b"), {"b": None}, "p", 2)
    with RocksStore(tmp_path / "db", budget, codec) as store:
        store.insert(a, False, 10)
        store.insert(b, False, 11)
        store.commit()
        store.mark_matched(store.scan("left", "k", 5, 5)[0], 10)
        codec.decoded = 0  # (the scan decoded ``a``)
        if committed:
            store.commit()
        evicted = store.evict("left", 100, 10)
        assert [e.matched for e in evicted] == [True, False]
        assert codec.decoded == 0  # the matched flag is byte 0: nothing decoded yet
        assert evicted[1].event == b
        assert evicted[1].event.record_json == '{"b":null}'
        assert codec.decoded == 1
        assert evicted[0].event == a
        assert evicted[0].event.record == {"a": [1, 2.5]}
        assert codec.decoded == 2
        assert store.count("left") == 0
        assert store.scan("left", "k", 0, 100) == []


def test_eviction_reads_the_entry_flag_when_the_index_lacks_it(tmp_path: Path) -> None:
    """State written before the expiry index held the matched flag (its values
    all empty) still evicts matched entries as matched."""
    a = Event("left", "k", 5, content_id(b"a"), {"a": 1}, "p", 1)
    b = Event("left", "k", 6, content_id(b"b"), {"b": 2}, "p", 2)
    with RocksStore(tmp_path / "db") as store:
        store.insert(a, True, 10)
        store.insert(b, False, 11)
        store.commit()
        for x in (layout.expiry_key("left", 10, layout.entry_key("left", "k", 5, a.eid)),
                  layout.expiry_key("left", 11, layout.entry_key("left", "k", 6, b.eid))):
            assert store._db.get(x) in (b"\x01", b"")
            store._db.put(x, b"")  # as the older layout wrote it
        evicted = store.evict("left", 100, 10)
        assert [(e.event, e.matched) for e in evicted] == [(a, True), (b, False)]


def test_matched_entries_are_evicted_without_reading_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The expiry index says an entry matched: eviction reads no value for it
    (only reading the evicted event does)."""
    a = Event("left", "k", 5, content_id(b"a"), {"a": 1}, "p", 1)
    b = Event("left", "k", 6, content_id(b"b"), {"b": 2}, "p", 2)
    with RocksStore(tmp_path / "db", small_budget()) as store:
        store.insert(a, True, 10)
        store.insert(b, False, 11)
        store.commit()
        store.mark_matched(store.scan("left", "k", 6, 6)[0], 11)
        store.commit()

        def no_reads(keys: list[bytes]) -> list[bytes | None]:
            msg = f"eviction read values of {len(keys)} matched entries"
            raise AssertionError(msg)

        monkeypatch.setattr(store, "_multi_get", no_reads)
        evicted = store.evict("left", 100, 10)
        assert [e.matched for e in evicted] == [True, True]
        assert [e.event for e in evicted] == [a, b]


def test_commits_write_no_wal(tmp_path: Path) -> None:
    """Recovery resumes from checkpoints, never from a live DB: commits skip the
    WAL (it would hold every value written)."""
    path = tmp_path / "db"
    with RocksStore(path, small_budget()) as store:
        for i in range(2_000):
            store.insert(Event("left", f"k{i}", i, content_id(b"%d" % i), {"pad": "x" * 100}),
                         False, i)  # fmt: skip
        store.commit()
        wal = sum(f.stat().st_size for f in path.glob("*.log"))
        assert wal < 4096, f"{wal} bytes of WAL after committing 2,000 entries"
        assert store.count("left") == 2_000
    with RocksStore(path, small_budget()) as reopened:  # a clean close flushed them
        assert len(reopened.scan("left", "k7", 0, 10)) == 1
