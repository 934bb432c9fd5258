"""Clean-up against real recovery partitions (``python -m bytewax.recovery``)
and real RocksDB checkpoints: exactly the unreferenced, durable-superseded ones go."""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from joins import JoinSpec
from recovery.errors import RecoveryError, SnapshotDecodeError
from recovery.gc import PeriodicCleanup, collect_garbage
from recovery.identity import JoinIdentity
from recovery.layout import RecoveryLayout, init_recovery_dir
from recovery.snapshot import ShardSnapshotV1, encode_snapshot
from state.store import RocksStore
from tests.budgets import small_budget

IDENTITY = JoinIdentity(JoinSpec(upper_ms=1_000, how="left"), 2)
STEP = "flow.interval_join.join"
STATE = {"watermark": {"watermark": 0, "partitions": {}},
         "counters": {"pairs": 0, "left": {"retained": 0}, "right": {"retained": 0}}}


def bytewax_init(layout: RecoveryLayout) -> None:
    subprocess.run([sys.executable, *layout.bytewax_init_command()], check=True)


def write_row(layout: RecoveryLayout, part: int, step: str, key: str, epoch: int,
              data: bytes | None) -> None:
    """What Bytewax's snapshot writer does (INSERT ... ON CONFLICT DO UPDATE)."""
    with sqlite3.connect(layout.dir / f"part-{part}.sqlite3") as conn:
        conn.execute(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (step_id, state_key, snap_epoch) DO UPDATE "
            "SET ser_change = EXCLUDED.ser_change",
            (step, key, epoch, data),
        )
    conn.close()


def commit(layout: RecoveryLayout, part: int, epoch: int) -> None:
    """What Bytewax's committer does: drop rows older than each key's newest <= epoch."""
    with sqlite3.connect(layout.dir / f"part-{part}.sqlite3") as conn:
        conn.execute(
            "DELETE FROM snaps WHERE (step_id, state_key, snap_epoch) IN ("
            " SELECT s.step_id, s.state_key, s.snap_epoch FROM snaps s JOIN ("
            "  SELECT step_id, state_key, MAX(snap_epoch) AS m FROM snaps"
            "  WHERE snap_epoch <= ? GROUP BY step_id, state_key) USING (step_id, state_key)"
            " WHERE s.snap_epoch < m)",
            (epoch,),
        )
    conn.close()


def row(shard: str, seq: int, ref: str) -> bytes:
    return encode_snapshot(ShardSnapshotV1.create(shard, seq, ref, STATE, IDENTITY.fingerprint))


@pytest.fixture
def layout(tmp_path: Path) -> RecoveryLayout:
    lay = init_recovery_dir(tmp_path / "rec", IDENTITY, partitions=2)
    bytewax_init(lay)
    return lay


@pytest.fixture
def refs(layout: RecoveryLayout, tmp_path: Path) -> dict[str, list[str]]:
    """Real checkpoints: s1 seq 1..5, s2 seq 1..2."""
    budget = small_budget()
    out: dict[str, list[str]] = {}
    with RocksStore(tmp_path / "db", budget) as store:
        for shard, n in (("s1", 5), ("s2", 2)):
            out[shard] = [layout.checkpoints.take(shard, store, seq) for seq in range(1, n + 1)]
    return out


def on_disk(layout: RecoveryLayout) -> set[str]:
    return {c.path.name if c.state != "complete" else c.ref for c in layout.checkpoints.dirs()}


def test_deletes_exactly_the_superseded_and_keeps_referenced_and_pending(
    layout: RecoveryLayout, refs: dict[str, list[str]]
) -> None:
    s1, s2 = refs["s1"], refs["s2"]
    for epoch, seq in ((1, 1), (2, 2), (3, 3), (4, 4)):
        write_row(layout, 0, STEP, "s1", epoch, row("s1", seq, s1[seq - 1]))
    commit(layout, 0, 3)  # rows of epochs 1, 2 are superseded by epoch 3's
    # s2 took two checkpoints, then finished: only its discard row is left.
    write_row(layout, 1, STEP, "s2", 4, None)
    # Other steps' rows (a source offset) are skipped, never unpickled as ours.
    write_row(layout, 1, "flow.inputs", "left:0", 4, pickle.dumps(12_345))
    root = layout.checkpoint_root / "s1"
    (root / ".000000000006-00000001.partial.tmp").mkdir()  # being written now
    (root / ".000000000002-00000002.partial").mkdir()  # a crash's leftover
    (root / ".000000000001-00000003.deleting").mkdir()  # a crash's leftover

    report = collect_garbage(layout)

    assert set(report.deleted) == {s1[0], s1[1], ".000000000002-00000002.partial",
                                   ".000000000001-00000003.deleting"}
    assert report.referenced == {s1[2], s1[3]}
    # s1's seq 5 was returned by snapshot() but its row is not written yet; s2
    # has no row naming a checkpoint: nothing of it is known to be superseded.
    assert set(report.pending) == {s1[4], "s1/000000000006-00000001", *s2}
    assert on_disk(layout) == {s1[2], s1[3], s1[4], ".000000000006-00000001.partial.tmp", *s2}
    assert report.freed_bytes > 0

    # Bytewax writes seq 5's row and commits epoch 5: 3 and 4 become garbage.
    write_row(layout, 0, STEP, "s1", 5, row("s1", 5, s1[4]))
    commit(layout, 0, 5)
    report = collect_garbage(layout)
    assert set(report.deleted) == {s1[2], s1[3]}
    assert on_disk(layout) == {s1[4], ".000000000006-00000001.partial.tmp", *s2}

    # Nothing runs any more: nothing can be pending.
    report = collect_garbage(layout, quiescent=True)
    assert set(report.deleted) == {".000000000006-00000001.partial.tmp", *s2}
    assert on_disk(layout) == {s1[4]}
    assert collect_garbage(layout, quiescent=True).deleted == ()


def test_rows_of_a_crashed_execution_keep_their_checkpoints(
    layout: RecoveryLayout, refs: dict[str, list[str]]
) -> None:
    """Rows above the resume epoch (written before a crash) still reference
    checkpoints: kept until overwritten or superseded, like the rows."""
    s1 = refs["s1"]
    write_row(layout, 0, STEP, "s1", 2, row("s1", 2, s1[1]))
    write_row(layout, 0, STEP, "s1", 3, row("s1", 4, s1[3]))  # seq 3 never got a row
    report = collect_garbage(layout)
    assert set(report.deleted) == {s1[0], s1[2]}
    assert set(report.pending) == {s1[4], *refs["s2"]}
    # The next execution overwrites epoch 3's row with a new snapshot (seq 6).
    write_row(layout, 0, STEP, "s1", 3, row("s1", 5, s1[4]))
    assert set(collect_garbage(layout).deleted) == {s1[3]}


def test_limited_to_some_shards(layout: RecoveryLayout, refs: dict[str, list[str]]) -> None:
    write_row(layout, 0, STEP, "s1", 1, row("s1", 5, refs["s1"][4]))
    write_row(layout, 1, STEP, "s2", 1, row("s2", 2, refs["s2"][1]))
    report = collect_garbage(layout, shards=["s2"])
    assert report.deleted == (refs["s2"][0],)
    assert report.rows == 1
    assert len(collect_garbage(layout).deleted) == 4


def test_an_undecodable_snapshot_row_stops_clean_up(
    layout: RecoveryLayout, refs: dict[str, list[str]]
) -> None:
    bad = row("s1", 5, refs["s1"][4]).replace(b"ShardSnapshotV1", b"ShardSnapshotV7")
    write_row(layout, 0, STEP, "s1", 1, bad)
    before = on_disk(layout)
    with pytest.raises(SnapshotDecodeError, match=r"flow\.interval_join\.join/s1 at epoch 1"):
        collect_garbage(layout)
    assert on_disk(layout) == before


def test_refuses_without_partitions(tmp_path: Path) -> None:
    lay = init_recovery_dir(tmp_path / "rec", IDENTITY, partitions=2)
    with pytest.raises(RecoveryError, match="no recovery partitions"):
        collect_garbage(lay, quiescent=True)
    bytewax_init(lay)
    (lay.dir / "part-1.sqlite3").unlink()
    with pytest.raises(RecoveryError, match=r"partitions \[1\] of 2 are missing"):
        collect_garbage(lay, quiescent=True)


def test_quiescent_clean_up_refuses_while_a_run_holds_the_directory(
    layout: RecoveryLayout, refs: dict[str, list[str]]
) -> None:
    write_row(layout, 0, STEP, "s1", 1, row("s1", 5, refs["s1"][4]))
    with layout.run_lock():
        with pytest.raises(RecoveryError, match="a run is using the recovery directory"):
            collect_garbage(layout, quiescent=True)
        # The ordinary clean-up is what a live run relies on: it still works.
        assert set(collect_garbage(layout).deleted) == set(refs["s1"][:4])
    assert set(collect_garbage(layout, quiescent=True).deleted) == set(refs["s2"])


def test_periodic_clean_up_in_the_parent_process(
    layout: RecoveryLayout, refs: dict[str, list[str]]
) -> None:
    errors: list[RecoveryError] = []
    cleanup = PeriodicCleanup(layout, interval_s=0.01, on_error=errors.append).start()
    write_row(layout, 0, STEP, "s1", 1, row("s1", 5, refs["s1"][4]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(on_disk(layout)) > 3:
        time.sleep(0.01)
    assert on_disk(layout) == {refs["s1"][4], *refs["s2"]}
    final = cleanup.stop(quiescent=True)
    assert final is not None
    assert set(final.deleted) == set(refs["s2"])
    assert cleanup.rounds >= 2
    assert cleanup.freed_bytes > 0
    assert errors == []
    # An error (here: partitions gone) is kept and reported, not raised on the thread.
    for part in layout.partition_files():
        part.unlink()
    assert cleanup.run_once() is None
    assert isinstance(cleanup.error, RecoveryError)
    assert errors == [cleanup.error]
