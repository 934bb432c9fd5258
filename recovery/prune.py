"""Set the epoch the next execution starts at: drop what it can never load.

A crashed execution may have written rows at epochs at or above the resume
epoch ``R`` (some workers ran ahead of the slowest one's frontier). Bytewax
never loads them on this resume, but it only overwrites a key's stale row when
the new execution snapshots that key in the same epoch: a key that is quiet in
that epoch keeps the stale row, and a *later* resume could load it as if it
were newer state (see ``docs/recovery.md``, "Stale rows after a crash").

:func:`rewind` makes epoch ``E <= R`` the start of the next execution:

- it deletes every ``snaps`` row at or above ``E``;
- it lowers every ``fronts`` row above ``E`` to ``E``: nothing in the store
  then claims progress the rows no longer hold (``recovery.integrity`` reads
  the fronts as evidence of what a partition holds);
- if ``E < R``, it adds an execution row whose resume epoch is ``E`` (as
  ``streamjoin replay --epoch`` does), so that Bytewax resumes there;
- it checkpoints each partition's SQLite write-ahead log into its main file
  (``wal_checkpoint(TRUNCATE)``), so losing a ``-wal`` file later can never
  bring back the rows deleted here.

:func:`prune_unloadable_rows` is ``rewind`` at ``R``. Both must only run while
no process of the run uses the directory (the caller holds
:meth:`~recovery.layout.RecoveryLayout.quiescent_lock`). Rows below the chosen
epoch are never touched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from recovery.errors import RecoveryError
from recovery.layout import RecoveryLayout
from recovery.partitions import BUSY_TIMEOUT_S, read_partitions


def prune_unloadable_rows(layout: RecoveryLayout) -> tuple[int, int]:
    """Delete every ``snaps`` row with ``snap_epoch >= R``; return ``(R, rows deleted)``."""
    return rewind(layout, None)


def rewind(layout: RecoveryLayout, epoch: int | None) -> tuple[int, int]:
    """Make ``epoch`` (default: the resume epoch ``R``; at most ``R``) the epoch
    the next execution starts at; return ``(epoch, rows deleted)``."""
    view = read_partitions(layout.dir, with_snaps=False)
    _ = view.part_count  # refuse incomplete or inconsistent partition sets
    resume = view.resume_epoch()
    target = resume if epoch is None else epoch
    if not 1 <= target <= resume:
        msg = f"cannot resume at epoch {target}: choose 1..{resume} (the latest)"
        raise RecoveryError(msg)
    deleted = 0
    for path in view.files:
        conn = _connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (target,))
            deleted += max(cur.rowcount, 0)
            conn.execute(
                "UPDATE fronts SET worker_frontier = ? WHERE worker_frontier > ?",
                (target, target),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            msg = f"cannot prune recovery partition {path}: {exc}"
            raise RecoveryError(msg) from exc
        finally:
            conn.close()
    if target < resume:
        add_execution(layout.partition_files()[0], view.execution, target)
    for path in view.files:
        checkpoint_wal(path)
    return target, deleted


def add_execution(path: Path, latest: int | None, epoch: int) -> None:
    """Make Bytewax resume at ``epoch``: a new execution row whose resume epoch
    it is (with no frontiers, the resume epoch is its own), in partition ``path``."""
    conn = _connect(path)
    try:
        conn.execute(
            "INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, 1, ?)",
            (0 if latest is None else latest + 1, epoch),
        )
    except sqlite3.Error as exc:
        msg = f"cannot set the resume epoch of {path}: {exc}"
        raise RecoveryError(msg) from exc
    finally:
        conn.close()


def checkpoint_wal(path: Path) -> None:
    """Move everything in ``path``'s write-ahead log into the database file and
    empty the log (no other connection may be open)."""
    conn = _connect(path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        msg = f"cannot checkpoint the write-ahead log of {path}: {exc}"
        raise RecoveryError(msg) from exc
    finally:
        conn.close()
    if busy:
        msg = f"cannot checkpoint the write-ahead log of {path}: the database is in use"
        raise RecoveryError(msg)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        msg = f"cannot open recovery partition {path}: {exc}"
        raise RecoveryError(msg) from exc
