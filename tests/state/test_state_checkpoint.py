"""Checkpoints, clones and stats of RocksStore on a real RocksDB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from joins import Event, content_id
from state.errors import StateError
from state.options import MemoryBudget
from state.store import RocksStore
from tests.budgets import quiet_budget, small_budget


@pytest.fixture(scope="module")
def budget() -> MemoryBudget:
    return small_budget(32)


def ev(side: str, key: str, ts: int) -> Event:
    eid = content_id(f"{side}{key}{ts}".encode())
    return Event(side, key, ts, eid, {"k": key, "ts": ts}, "p", ts)  # type: ignore[arg-type]


def fill(store: RocksStore, n: int, start: int = 0, side: str = "left") -> list[Event]:
    events = [ev(side, f"k{i % 50}", i) for i in range(start, start + n)]
    for i, e in enumerate(events):
        store.insert(e, False)
        if i % 1000 == 999:
            store.commit()
    return events


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_checkpoint_commits_pending_and_clone_is_independent(
    tmp_path: Path, budget: MemoryBudget
) -> None:
    src = RocksStore(tmp_path / "src", budget)
    events = fill(src, 2500)  # the last 500 are still in the overlay
    ckpt = src.checkpoint(tmp_path / "ckpt")
    before = digest(ckpt)

    clone = RocksStore.open_clone(ckpt, tmp_path / "clone", budget)
    assert clone.count("left") == 2500
    assert clone.contains_many(events[-3:]) == [True] * 3
    # writing to the clone leaves the checkpoint and the source untouched
    clone.evict("left", 2**62, 10_000, False)
    fill(clone, 100, start=10_000)
    clone.commit()
    clone.close()
    assert digest(ckpt) == before
    assert src.count("left") == 2500
    assert len(src.scan("left", "k0", 0, 10**6)) == 50
    # and the source's later writes do not reach the checkpoint
    src.evict("left", 2**62, 10_000, False)
    src.commit()
    src.close()
    assert digest(ckpt) == before
    again = RocksStore.open_clone(ckpt, tmp_path / "clone2", budget)
    assert again.count("left") == 2500
    assert [e.event for e in again.scan("left", "k7", 0, 10**6)] == [
        e for e in events if e.key == "k7"
    ]
    again.close()


def test_clone_refuses_existing_dirs_and_non_checkpoints(
    tmp_path: Path, budget: MemoryBudget
) -> None:
    with RocksStore(tmp_path / "src", budget) as src:
        fill(src, 10)
        ckpt = src.checkpoint(tmp_path / "ckpt")
        with pytest.raises(StateError, match="already exists"):
            src.checkpoint(ckpt)
    (tmp_path / "taken").mkdir()
    with pytest.raises(StateError, match="already exists"):
        RocksStore.open_clone(ckpt, tmp_path / "taken", budget)
    with pytest.raises(StateError, match="not a RocksDB checkpoint"):
        RocksStore.open_clone(tmp_path / "taken", tmp_path / "x", budget)


def test_sst_files_are_hard_linked_not_copied(tmp_path: Path, budget: MemoryBudget) -> None:
    with RocksStore(tmp_path / "src", budget) as src:
        fill(src, 3000)
        ckpt = src.checkpoint(tmp_path / "ckpt")
    clone = RocksStore.open_clone(ckpt, tmp_path / "clone", budget)
    ssts = list(ckpt.glob("*.sst"))
    assert ssts
    for sst in ssts:
        assert sst.stat().st_ino == (tmp_path / "clone" / sst.name).stat().st_ino
    clone.close()


def test_checkpoint_links_table_files_instead_of_copying(tmp_path: Path) -> None:
    """Why a checkpoint's cost does not grow with the state: every table file of
    the checkpoint is a hard link to the live DB's file (same inode), so only the
    memtable flush and a few small metadata files are written. (Timings are in
    ``bench/recovery_bench.py``, not in tests.) No background compaction, which
    could replace a live file between the checkpoint and the comparison."""
    store = RocksStore(tmp_path / "src", quiet_budget(32))
    for round_ in range(3):
        fill(store, 20_000, start=20_000 * round_)
        ckpt = store.checkpoint(tmp_path / f"ckpt{round_}")
        tables = sorted(ckpt.glob("*.sst"))
        assert tables, "a checkpoint of committed state holds table files"
        for table in tables:
            live = store.path / table.name
            assert live.stat().st_ino == table.stat().st_ino, table.name
        copied = sum(f.stat().st_size for f in ckpt.iterdir() if f.suffix != ".sst")
        linked = sum(t.stat().st_size for t in tables)
        assert copied < 1 << 18, copied
        assert copied < linked, (copied, linked)
    store.close()


def test_stats_and_properties(tmp_path: Path, budget: MemoryBudget) -> None:
    with RocksStore(tmp_path / "db", budget, bucket_ms=10) as store:
        empty = store.stats()
        assert dict(empty.entries) == {"left": 0, "right": 0}
        assert dict(empty.oldest_ts_ms) == {"left": None, "right": None}
        fill(store, 300, start=100)
        fill(store, 20, start=-50, side="right")
        st = store.stats()  # includes the uncommitted overlay
        assert dict(st.entries) == {"left": 300, "right": 20}
        assert dict(st.oldest_ts_ms) == {"left": 100, "right": -50}
        store.commit()
        store.evict("left", 115, 100, False)  # bucket 10 (times 100..109) goes
        assert store.stats().oldest_ts_ms["left"] == 110
        store.commit()
        assert store.stats().oldest_ts_ms["left"] == 110
        assert store.stats().entries["left"] == 290
        assert store.stats().disk_bytes > 0
        props = store.rocksdb_properties()
        for name in (
            "rocksdb.estimate-num-keys",
            "rocksdb.block-cache-usage",
            "rocksdb.cur-size-all-mem-tables",
            "rocksdb.is-write-stopped",
        ):
            assert isinstance(props[name], int)
    with RocksStore(tmp_path / "db", budget) as reopened:  # counts and oldest persisted
        assert reopened.bucket_ms == 10
        assert dict(reopened.stats().entries) == {"left": 290, "right": 20}
        assert dict(reopened.stats().oldest_ts_ms) == {"left": 110, "right": -50}
