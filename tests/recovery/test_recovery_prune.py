"""Dropping the rows a resume can never load (``recovery.prune``)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from joins import JoinSpec
from recovery.identity import JoinIdentity
from recovery.layout import RecoveryLayout, init_recovery_dir
from recovery.partitions import read_partitions
from recovery.prune import prune_unloadable_rows

IDENTITY = JoinIdentity(JoinSpec(upper_ms=1_000, how="left"), 2)
STEP = "flow.interval_join.join"


def bytewax_init(layout: RecoveryLayout) -> None:
    subprocess.run([sys.executable, *layout.bytewax_init_command()], check=True)


def write_row(layout: RecoveryLayout, part: int, step: str, key: str, epoch: int,
              data: bytes) -> None:
    with sqlite3.connect(layout.dir / f"part-{part}.sqlite3") as conn:
        conn.execute(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)",
            (step, key, epoch, data),
        )
    conn.close()


def _execution(path: Path, ex: int, workers: int, resume: int, fronts: list[int]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)",
                     (ex, workers, resume))
        for worker, front in enumerate(fronts):
            conn.execute(
                "INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (?, ?, ?)",
                (ex, worker, front),
            )
    conn.close()


def test_rows_at_or_above_the_resume_epoch_are_dropped(tmp_path: Path) -> None:
    layout = init_recovery_dir(tmp_path / "rec", IDENTITY, partitions=2)
    bytewax_init(layout)
    # A crashed execution: worker 0 reached epoch 7, worker 1 only epoch 5.
    _execution(layout.dir / "part-0.sqlite3", 0, 2, 1, [7, 5])
    for epoch in (2, 4, 5, 6):
        write_row(layout, 0, STEP, "s1", epoch, b"x")
    write_row(layout, 1, STEP, "s2", 3, b"y")
    write_row(layout, 1, "flow.inputs", "left:0", 6, b"z")
    assert read_partitions(layout.dir).resume_epoch() == 5
    assert prune_unloadable_rows(layout) == (5, 3)
    view = read_partitions(layout.dir)
    assert sorted((r.state_key, r.epoch) for r in view.snaps) == [("s1", 2), ("s1", 4),
                                                                   ("s2", 3)]
    assert view.resume_epoch() == 5  # progress untouched
    assert prune_unloadable_rows(layout) == (5, 0)
