"""Drop the recovery rows a resume can never load (rows at or above its epoch).

A crashed execution may have written rows at epochs at or above the resume
epoch ``R`` (some workers ran ahead of the slowest one's frontier). Bytewax
never loads them on this resume, but it only overwrites a key's stale row when
the new execution snapshots that key in the same epoch: a key that is quiet in
that epoch keeps the stale row, and a *later* resume could load it as if it
were newer state (see ``docs/recovery.md``, "Stale rows after a crash").

:func:`prune_unloadable_rows` deletes them before an execution starts. It must
only run while no process of the run uses the directory (the caller holds
:meth:`~recovery.layout.RecoveryLayout.quiescent_lock`). Rows below ``R`` and
the progress tables are never touched, so the resume itself is unchanged.
"""

from __future__ import annotations

import sqlite3

from recovery.errors import RecoveryError
from recovery.layout import RecoveryLayout
from recovery.partitions import BUSY_TIMEOUT_S, read_partitions


def prune_unloadable_rows(layout: RecoveryLayout) -> tuple[int, int]:
    """Delete every ``snaps`` row with ``snap_epoch >= R``; return ``(R, rows deleted)``."""
    view = read_partitions(layout.dir, with_snaps=False)
    _ = view.part_count  # refuse incomplete or inconsistent partition sets
    resume = view.resume_epoch()
    deleted = 0
    for path in view.files:
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            msg = f"cannot open recovery partition {path}: {exc}"
            raise RecoveryError(msg) from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (resume,))
            deleted += max(cur.rowcount, 0)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            msg = f"cannot prune recovery partition {path}: {exc}"
            raise RecoveryError(msg) from exc
        finally:
            conn.close()
    return resume, deleted
