"""CheckpointStore and ShardCheckpointer on a real RocksDB (state's RocksStore)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from joins import Event, IntervalJoiner, JoinSpec, PartitionMark, content_id
from recovery.checkpoints import CheckpointStore
from recovery.errors import CheckpointMissingError, IncompatibleRecoveryError
from recovery.identity import JoinIdentity
from recovery.shard import ShardCheckpointer, restore_shard
from state.options import MemoryBudget
from state.store import RocksStore
from tests.budgets import quiet_budget, small_budget

SPEC = JoinSpec(lower_ms=0, upper_ms=1_000, how="left", max_out_of_orderness_ms=0)
IDENTITY = JoinIdentity(SPEC, 4)
PARTS = ["left:0", "right:0"]


@pytest.fixture(scope="module")
def budget() -> MemoryBudget:
    return small_budget(32)


def ev(side: str, key: str, ts: int) -> Event:
    eid = content_id(f"{side}{key}{ts}".encode())
    return Event(side, key, ts, eid, {"k": key}, f"{side}:0", ts)  # type: ignore[arg-type]


def fill(store: RocksStore, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.insert(ev("left", f"k{i % 97}", i), False)
        if i % 5000 == 4999:
            store.commit()
    store.commit()


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_take_and_restore_give_an_independent_clone(tmp_path: Path, budget: MemoryBudget) -> None:
    ckpts = CheckpointStore(tmp_path / "checkpoints")
    live = RocksStore(tmp_path / "live" / "s1", budget)
    fill(live, 3000)
    ref = ckpts.take("s1", live, 1)
    assert ref.startswith("s1/000000000001-")
    before = digest(ckpts.path_of(ref))
    # Later writes to the live store never reach the checkpoint.
    live.evict("left", 2**62, 100_000, False)
    live.commit()
    assert live.count("left") == 0
    # Restore: a clone, whatever a crashed execution left in the work dir.
    work = tmp_path / "work" / "s1"
    work.mkdir(parents=True)
    (work / "LOCK").write_text("left by a crash")
    path = ckpts.restore(ref, work)
    clone = RocksStore(path, budget)
    assert clone.count("left") == 3000
    fill(clone, 500, start=10_000)
    clone.evict("left", 2**62, 100, False)
    clone.close()
    assert digest(ckpts.path_of(ref)) == before
    sst = next(ckpts.path_of(ref).glob("*.sst"))
    assert sst.stat().st_ino == (path / sst.name).stat().st_ino  # hard link, not a copy
    again = RocksStore(ckpts.restore(ref, tmp_path / "work2"), budget)
    assert again.count("left") == 3000
    again.close()
    live.close()


def test_listing_sequences_sizes_and_delete(tmp_path: Path, budget: MemoryBudget) -> None:
    ckpts = CheckpointStore(tmp_path / "c")
    with RocksStore(tmp_path / "db", budget) as store:
        fill(store, 100)
        r1 = ckpts.take("s1", store, 1)
        r2 = ckpts.take("s1", store, 2)
        r3 = ckpts.take("s2", store, 9)
    # Leftovers of a crash mid-checkpoint and mid-delete are listed too.
    (ckpts.root / "s1" / ".000000000003-0000abcd.partial.tmp").mkdir()
    (ckpts.root / "s1" / ".000000000000-0000abcd.deleting").mkdir()
    listed = [(c.ref, c.state) for c in ckpts.dirs()]
    assert listed == [
        ("s1/000000000000-0000abcd", "deleting"),
        (r1, "complete"),
        (r2, "complete"),
        ("s1/000000000003-0000abcd", "partial"),
        (r3, "complete"),
    ]
    assert ckpts.next_seq("s1") == 4  # above the partial one too
    assert ckpts.next_seq("s1", after=10) == 11
    assert ckpts.next_seq("s3") == 1
    sizes = ckpts.sizes()
    assert set(sizes) == {r1, r2, r3}
    assert all(v > 0 for v in sizes.values())
    # Hard links: the three checkpoints of one DB share their SST files.
    assert ckpts.disk_bytes() < sum(sizes.values())
    assert ckpts.delete(r1) == sizes[r1]
    assert ckpts.delete(r1) == 0
    assert ckpts.size_of(r1) is None
    with pytest.raises(CheckpointMissingError, match="missing"):
        ckpts.restore(r1, tmp_path / "w")


def test_shard_checkpointer_reuses_unchanged_state_and_resumes_above_old_seqs(
    tmp_path: Path, budget: MemoryBudget
) -> None:
    ckpts = CheckpointStore(tmp_path / "c")
    clock = [0]
    store = RocksStore(tmp_path / "live", budget)
    joiner = IntervalJoiner(SPEC, store, PARTS, lambda: clock[0])
    cp = ShardCheckpointer(ckpts, "s1", IDENTITY.fingerprint)
    joiner.process([ev("left", "a", 100), ev("right", "a", 150)])
    s1 = cp.snapshot(store, joiner.to_state())
    # Only a heartbeat: the watermark moves, the store does not.
    joiner.advance([PartitionMark("left:0", 120, 0), PartitionMark("right:0", 200, 0)])
    s2 = cp.snapshot(store, joiner.to_state())
    assert (s1.seq, s2.seq) == (1, 2)
    assert s2.checkpoint == s1.checkpoint
    assert (s1.watermark_ms, s2.watermark_ms) == (100, 120)
    joiner.process([ev("left", "b", 300)])
    s3 = cp.snapshot(store, joiner.to_state())
    assert s3.checkpoint != s1.checkpoint
    assert (cp.taken, cp.reused) == (2, 1)
    store.close()

    # Resume from s2 while s3's checkpoint (a later one) is still on disk.
    work = restore_shard(ckpts, s2, tmp_path / "resumed", IDENTITY)
    resumed = RocksStore(work, budget)
    j2 = IntervalJoiner(SPEC, resumed, PARTS, lambda: 0, state=s2.joiner_state)
    assert j2.watermark == 120
    assert (resumed.count("left"), resumed.count("right")) == (1, 1)
    cp2 = ShardCheckpointer(ckpts, "s1", IDENTITY.fingerprint, resume=s2)
    s4 = cp2.snapshot(resumed, j2.to_state())  # unchanged since s2: reuses its checkpoint
    assert s4.checkpoint == s2.checkpoint
    assert s4.seq == 4  # above s3's seq 3, taken by the "crashed" execution
    j2.process([ev("right", "a", 900)])
    s5 = cp2.snapshot(resumed, j2.to_state())
    assert s5.checkpoint_seq == 5 > s3.checkpoint_seq
    resumed.close()
    other = JoinIdentity(SPEC, 8)
    with pytest.raises(IncompatibleRecoveryError, match="shards=8"):
        restore_shard(ckpts, s5, tmp_path / "x", other)


def test_a_checkpoint_owns_no_table_bytes_at_ten_times_the_state(tmp_path: Path) -> None:
    """A checkpoint costs a flush plus hard links, whatever the state size: at
    20k and at 200k entries, the bytes a new checkpoint holds that are not hard
    links to the live DB's files are only small metadata files."""
    ckpts = CheckpointStore(tmp_path / "c")
    # no background compaction: one between the checkpoint and the listing of the
    # live files replaced some of them, and the test failed now and then
    budget = quiet_budget(32)
    for n in (20_000, 200_000):
        store = RocksStore(tmp_path / f"db{n}", budget)
        fill(store, n)
        fill(store, 200, start=n)  # an epoch's new data
        ref = ckpts.take(f"n{n}", store, 1)
        live = {f.stat().st_ino for f in store.path.iterdir()}
        files = list(ckpts.path_of(ref).iterdir())
        own = sum(f.stat().st_size for f in files if f.stat().st_ino not in live)
        total = sum(f.stat().st_size for f in files)
        assert own < 1 << 20, (n, own)
        assert total > 10 * own
        store.close()
