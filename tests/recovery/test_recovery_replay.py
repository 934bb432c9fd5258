"""copy_for_replay against real recovery partitions with hand-written progress
rows: which epochs are retained, what the copy holds, and that the source is
never touched."""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from joins import JoinSpec
from recovery.errors import RecoveryError
from recovery.gc import referenced_checkpoints
from recovery.identity import JoinIdentity
from recovery.inspect import ShardStatus, resumable_snapshot
from recovery.layout import RecoveryLayout, init_recovery_dir, open_recovery_dir
from recovery.partitions import read_partitions
from recovery.replay import copy_for_replay
from recovery.snapshot import ShardSnapshotV1, encode_snapshot
from state.store import RocksStore
from tests.budgets import small_budget

IDENTITY = JoinIdentity(JoinSpec(upper_ms=1_000, how="left"), 1)
STEP = "flow.interval_join.join"


def state(wm: int, retained: int) -> dict[str, object]:
    side = {"retained": retained}
    return {"watermark": {"watermark": wm, "partitions": {}},
            "counters": {"pairs": 0, "left": side, "right": {"retained": 0}}}


def sql(layout: RecoveryLayout, statement: str, *args: object) -> None:
    conn = sqlite3.connect(layout.dir / "part-0.sqlite3")
    with conn:
        conn.execute(statement, args)
    conn.close()


def digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file() and not p.name.endswith(("-shm", "-wal")):
            h.update(str(p.relative_to(directory)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> tuple[RecoveryLayout, dict[int, str]]:
    """Shard s1 snapshotted at epochs 3, 6, 8, 9 and 12 (checkpoint per epoch);
    one worker whose frontier is 10; epochs up to 5 committed."""
    layout = init_recovery_dir(tmp_path / "rec", IDENTITY, partitions=1)
    subprocess.run([sys.executable, *layout.bytewax_init_command()], check=True)
    budget = small_budget()
    refs: dict[int, str] = {}
    with RocksStore(tmp_path / "db", budget) as store:
        for seq, epoch in enumerate((3, 6, 8, 9, 12), start=1):
            refs[epoch] = layout.checkpoints.take("s1", store, seq)
            snap = ShardSnapshotV1.create("s1", seq, refs[epoch], state(epoch * 100, seq),
                                          IDENTITY.fingerprint)
            sql(layout, "INSERT INTO snaps VALUES (CURRENT_TIMESTAMP, ?, 's1', ?, ?)",
                STEP, epoch, encode_snapshot(snap))
            sql(layout, "INSERT INTO snaps VALUES (CURRENT_TIMESTAMP, 'flow.out', 's1', ?, ?)",
                epoch, pickle.dumps(epoch * 1000))
    sql(layout, "INSERT INTO exs VALUES (CURRENT_TIMESTAMP, 0, 1, 1)")
    sql(layout, "INSERT INTO fronts VALUES (CURRENT_TIMESTAMP, 0, 0, 10)")
    sql(layout, "INSERT INTO commits VALUES (CURRENT_TIMESTAMP, 0, 5)")
    return layout, refs


def test_latest_snapshot_is_copied_with_only_its_checkpoints(
    source: tuple[RecoveryLayout, dict[int, str]], tmp_path: Path
) -> None:
    layout, refs = source
    snap = resumable_snapshot(layout)
    assert snap.resume_epoch == 10
    assert [(s.shard, s.epoch, s.watermark_ms, s.entries["left"]) for s in snap.shards] == [
        ("s1", 9, 900, 4)
    ]
    before = digest(layout.dir)
    copy = copy_for_replay(layout.dir, tmp_path / "replay")
    assert digest(layout.dir) == before
    assert (copy.resume_epoch, copy.shards, copy.dropped_rows) == (10, 1, 2)  # epoch 12 rows
    replay = open_recovery_dir(copy.recovery_dir)
    assert replay.identity == IDENTITY
    view = read_partitions(replay.dir)
    assert view.resume_epoch() == 10
    # Every row below the resume epoch stays, and so do the checkpoints they name.
    assert referenced_checkpoints(view) == {"s1": {refs[3], refs[6], refs[8], refs[9]}}
    assert {c.ref for c in replay.checkpoints.dirs()} == {refs[3], refs[6], refs[8], refs[9]}
    sst = next(layout.checkpoints.path_of(refs[9]).glob("*.sst"), None)
    if sst is not None:  # hard-linked, not copied
        assert sst.stat().st_ino == (replay.checkpoints.path_of(refs[9]) / sst.name).stat().st_ino
    def summary(shards: tuple[ShardStatus, ...]) -> list[tuple[object, ...]]:
        return [(s.shard, s.epoch, s.seq, s.watermark_ms, s.entries, s.checkpoint,
                 s.checkpoint_bytes) for s in shards]

    assert summary(resumable_snapshot(replay).shards) == summary(snap.shards)


def test_an_older_retained_epoch_and_dropped_steps(
    source: tuple[RecoveryLayout, dict[int, str]], tmp_path: Path
) -> None:
    layout, refs = source
    copy = copy_for_replay(layout.dir, tmp_path / "replay", epoch=7,
                           drop_step=lambda step: step == "flow.out")
    assert copy.resume_epoch == 7
    replay = open_recovery_dir(copy.recovery_dir)
    view = read_partitions(replay.dir)
    assert view.resume_epoch() == 7  # what Bytewax computes from the copy's progress rows
    assert {(r.step_id, r.epoch) for r in view.snaps} == {(STEP, 3), (STEP, 6)}
    assert {c.ref for c in replay.checkpoints.dirs()} == {refs[3], refs[6]}
    shards = resumable_snapshot(replay).shards
    assert [(s.epoch, s.watermark_ms) for s in shards] == [(6, 600)]


def test_refuses_epochs_that_are_not_retained_and_existing_targets(
    source: tuple[RecoveryLayout, dict[int, str]], tmp_path: Path
) -> None:
    layout, _refs = source
    with pytest.raises(RecoveryError, match=r"cleaned up to epoch 5 \(epochs 6\.\.10 are"):
        copy_for_replay(layout.dir, tmp_path / "a", epoch=5)
    with pytest.raises(RecoveryError, match=r"choose 1\.\.10"):
        copy_for_replay(layout.dir, tmp_path / "b", epoch=11)
    (tmp_path / "c").mkdir()
    with pytest.raises(RecoveryError, match="already exists"):
        copy_for_replay(layout.dir, tmp_path / "c")
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "a.partial").exists()
