"""Is a recovery store complete and consistent, and at which epoch (``recovery.integrity``)?

Real SQLite partitions made by ``python -m bytewax.recovery``, filled with the
rows a run would write (shard snapshots naming checkpoint directories, sink
positions, execution, frontier and commit rows), then checked. The end-to-end
damage of real runs is in ``tests/dataflows/recovering/test_recovering_damage.py``;
this covers each rule, including the automatic fallbacks a kill rarely hits.
"""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from joins import JoinSpec
from recovery.errors import RecoveryError
from recovery.identity import JoinIdentity
from recovery.integrity import DamagedRecoveryError, EpochOutOfRangeError, plan_resume
from recovery.layout import RecoveryLayout, init_recovery_dir, update_manifest
from recovery.partitions import read_partitions
from recovery.prune import rewind
from recovery.snapshot import ShardSnapshotV1, checkpoint_ref

IDENTITY = JoinIdentity(JoinSpec(upper_ms=1_000, how="left"), 2)
JOIN = "flow.interval_join.join"
SINK = "flow.joined_files"
SHARDS = ("s0", "s1")
SNAP_SQL = "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)"


def _is_join(step: str) -> bool:
    return step == JOIN


class Store:
    """A two-partition store; shard s0's rows live in part-0, s1's in part-1."""

    def __init__(self, tmp_path: Path, delay: int | None = None) -> None:
        self.layout: RecoveryLayout = init_recovery_dir(tmp_path / "rec", IDENTITY, partitions=2)
        subprocess.run([sys.executable, *self.layout.bytewax_init_command()], check=True)
        if delay is not None:
            self.layout = update_manifest(self.layout, commit_delay_epochs=delay)
        self.seq = 0

    def part(self, index: int) -> Path:
        return self.layout.dir / f"part-{index}.sqlite3"

    def sql(self, index: int, statement: str, *args: object) -> None:
        with sqlite3.connect(self.part(index)) as conn:
            conn.execute(statement, args)
        conn.close()

    def snapshot(self, shard: str, epoch: int, *, checkpoint: bool = True) -> str:
        self.seq += 1
        ref = checkpoint_ref(shard, self.seq, "0000abcd")
        if checkpoint:
            path = self.layout.checkpoints.path_of(ref)
            path.mkdir(parents=True)
            (path / "CURRENT").write_text("MANIFEST-000001\n")
        joiner = {"counters": {"left": {"retained": 0}, "right": {"retained": 0}},
                  "watermark": {"watermark": epoch}}
        snap = ShardSnapshotV1.create(shard, self.seq, ref, joiner, IDENTITY.fingerprint)
        self.sql(SHARDS.index(shard), SNAP_SQL, JOIN, shard, epoch, pickle.dumps(snap))
        return ref

    def sink(self, index: int, shard: str, epoch: int, position: int) -> None:
        self.sql(index, SNAP_SQL, SINK, shard, epoch, pickle.dumps(position))

    def execution(self, ex: int, resume: int, fronts: dict[int, int],
                  index: int | None = None) -> None:
        """An execution row in part-0 and its workers' fronts: worker w's in
        part-w (as Bytewax's hash might spread them), or all in ``index``."""
        self.sql(0, "INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)",
                 ex, 2, resume)
        for worker, front in fronts.items():
            self.sql(worker if index is None else index, "INSERT INTO fronts (ex_num, "
                     "worker_index, worker_frontier) VALUES (?, ?, ?)", ex, worker, front)

    def commit(self, index: int, epoch: int) -> None:
        self.sql(index, "INSERT INTO commits (part_index, commit_epoch) VALUES (?, ?)",
                 index, epoch)

    def plan(self, requested: int | None = None):  # type: ignore[no-untyped-def]
        return plan_resume(self.layout, shards=SHARDS, is_join_step=_is_join,
                           requested=requested)


def _healthy(store: Store, epochs: range) -> dict[tuple[str, int], str]:
    refs = {}
    for epoch in epochs:
        for shard in SHARDS:
            refs[(shard, epoch)] = store.snapshot(shard, epoch)
    return refs


def test_a_complete_store_resumes_at_its_resume_epoch(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _healthy(store, range(1, 6))
    store.execution(0, 1, {0: 6, 1: 6})
    plan = store.plan()
    assert (plan.problems, plan.epoch, plan.resume_epoch) == ((), 6, 6)
    assert [p.complete_below for p in plan.partitions] == [6, 6]


def test_a_partition_behind_after_commits_is_refused_with_the_newest_complete_epoch(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, delay=0)
    _healthy(store, range(1, 9))
    store.execution(0, 1, {0: 12, 1: 12}, index=1)
    for index in (0, 1):
        store.commit(index, 5)
    # part-0 lost its newest records: its rows end at epoch 8 though the run
    # reached 12; part-1 keeps going.
    for epoch in range(9, 12):
        store.snapshot("s1", epoch)
    plan = store.plan()
    assert plan.problems == (
        "recovery partition part-0.sqlite3 holds complete snapshots only below epoch 8 "
        "(its write-ahead log part-0.sqlite3-wal was lost, or an older copy of it restored)",
    )
    assert plan.offer == 8
    assert "--resume-epoch 8 to resume from there" in plan.refusal("REC")
    assert not store.plan(requested=8).problems


def test_within_two_epochs_the_store_falls_back_by_itself(tmp_path: Path) -> None:
    store = Store(tmp_path, delay=2)
    _healthy(store, range(1, 9))
    store.sql(1, "DELETE FROM snaps WHERE snap_epoch >= 7")  # s1 had nothing new
    store.execution(0, 1, {0: 9, 1: 9}, index=0)
    store.commit(0, 6)
    store.commit(1, 5)  # killed between the fronts of epoch 8 and part-1's commit
    plan = store.plan()
    assert plan.problems == ()
    assert plan.epoch == 8
    assert plan.notes == ("resuming at epoch 8, not 9: the newest epoch every recovery "
                          "partition proves it holds completely (part-1.sqlite3 behind)",)


def test_before_any_commit_a_quiet_partition_is_no_damage(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _healthy(store, range(1, 4))
    for epoch in range(4, 10):
        store.snapshot("s0", epoch)  # s1 (part-1) had nothing to snapshot
    store.execution(0, 1, {0: 10, 1: 10}, index=0)
    plan = store.plan()
    assert (plan.problems, plan.epoch) == ((), 3)
    # With commits flowing, the same lag is damage.
    store.commit(0, 8)
    store.commit(1, 2)
    assert store.plan().problems


def test_lost_execution_records_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _healthy(store, range(1, 4))
    store.execution(0, 1, {0: 4, 1: 4}, index=1)
    for epoch in range(4, 12):  # a later execution whose records were lost
        store.snapshot("s0", epoch)
    plan = store.plan()
    assert plan.problems[0].startswith(
        "the recovery partitions disagree: part-0.sqlite3 holds snapshots of epoch 11, "
        "part-1.sqlite3 only below epoch 4, and the execution records say resume at epoch 4"
    )
    assert plan.offer == 4


def test_a_missing_checkpoint_offers_the_epoch_of_the_one_before(tmp_path: Path) -> None:
    store = Store(tmp_path)
    refs = _healthy(store, range(1, 6))
    store.execution(0, 1, {0: 6, 1: 6})
    path = store.layout.checkpoints.path_of(refs[("s1", 5)])
    (path / "CURRENT").unlink()
    plan = store.plan()
    assert plan.problems == (
        f"checkpoint {refs[('s1', 5)]} of shard s1 (its snapshot at epoch 5) is missing from "
        f"{store.layout.checkpoint_root}",
    )
    assert plan.offer == 5


def test_a_missing_shard_and_an_unknown_shard(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for epoch in range(1, 4):
        store.snapshot("s0", epoch)
    store.execution(0, 1, {0: 4, 1: 4})
    plan = store.plan()
    assert "no snapshot of 1 of 2 shards below epoch 4 (s1): their rows are missing" in (
        plan.problems
    )
    assert plan.offer == 1  # before any row: start over (everything is retained)
    # Before any shard row there is nothing to miss, unless outputs were written.
    store = Store(tmp_path / "b")
    store.sink(1, "s1", 1, 0)
    store.execution(0, 1, {0: 2, 1: 2})
    assert store.plan().problems == ()
    store.sink(1, "s1", 2, 120)
    store.execution(1, 2, {0: 3, 1: 3})
    assert "no snapshot of 2 of 2 shards below epoch 3" in store.plan().problems[-1]


def test_a_requested_epoch_must_be_resumable(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _healthy(store, range(1, 6))
    store.execution(0, 1, {0: 6, 1: 6})
    with pytest.raises(EpochOutOfRangeError, match=r"--resume-epoch 9: .* at epochs 1\.\.6"):
        store.plan(requested=9)
    assert store.plan(requested=3).epoch == 3
    store.commit(0, 3)
    store.commit(1, 3)
    plan = store.plan(requested=3)
    assert "epoch 3 is no longer retained (the partitions were cleaned up to epoch 3" in (
        plan.problems[0]
    )
    assert plan.offer == 6


def test_missing_partition_files_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.part(1).unlink()
    with pytest.raises(DamagedRecoveryError, match=r"part-1\.sqlite3 of 2 are missing"):
        store.plan()


def test_rewind_to_an_older_epoch(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _healthy(store, range(1, 8))
    store.execution(0, 1, {0: 8, 1: 9}, index=1)
    assert rewind(store.layout, 5) == (5, 6)  # rows of epochs 5, 6, 7 of both shards
    view = read_partitions(store.layout.dir)
    assert view.resume_epoch() == 5
    assert max(r.epoch for r in view.snaps) == 4
    assert set(view.fronts.values()) == {5}  # no row claims progress past the new start
    for index in (0, 1):  # the write-ahead logs are in the database files
        wal = Path(f"{store.part(index)}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    with pytest.raises(RecoveryError, match=r"choose 1\.\.5"):
        rewind(store.layout, 6)
