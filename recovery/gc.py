"""Clean-up: delete every checkpoint no retained recovery snapshot references.

Bytewax deletes superseded rows of its recovery partitions (on commit,
``backup_interval`` after an epoch closed) but never tells the shard logic, so
checkpoints are collected here, from the outside, by comparing the checkpoint
root with the rows.

The rule, per shard ``s`` (see ``docs/recovery.md`` for why it is safe):

- *referenced*: every checkpoint named by any ``ShardSnapshotV1`` row of ``s``
  in any partition, at any epoch (older rows kept for ``backup_interval``, rows
  newer than the resume epoch) is kept;
- *horizon*: ``h(s)`` = the highest checkpoint sequence among those references;
- an unreferenced checkpoint with ``seq > h(s)`` (or any, while ``s`` has no
  row yet) is *pending*: ``snapshot()`` returned it but Bytewax has not written
  its row yet. It is kept;
- an unreferenced checkpoint with ``seq <= h(s)`` is garbage: rows of a shard
  are written in epoch order and its sequence grows with the epoch, so no row
  can name it any more (superseded, or orphaned by a crashed execution).

With ``quiescent=True`` (no process of a run is using the directory, e.g. after
a run ended or crashed and before the next starts) nothing can be pending and
every unreferenced checkpoint goes. It takes the directory's lock exclusively
(:meth:`~recovery.layout.RecoveryLayout.quiescent_lock`), so it refuses while a
process on this host holds :meth:`~recovery.layout.RecoveryLayout.run_lock`.

Rows are read *before* the directories are listed: a checkpoint taken after the
read has a sequence above every horizon read, so it is pending, never garbage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from recovery.errors import RecoveryError, SnapshotDecodeError
from recovery.layout import RecoveryLayout
from recovery.partitions import PartitionsView, SnapRow, read_partitions
from recovery.snapshot import ShardSnapshotV1, decode_snapshot, parse_ref


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one clean-up saw and did."""

    #: Shard snapshot rows read.
    rows: int
    #: Checkpoints referenced by those rows (kept).
    referenced: frozenset[str]
    #: Unreferenced checkpoints newer than their shard's horizon (kept).
    pending: tuple[str, ...]
    #: Checkpoints (and leftover partial or deleting directories) removed.
    deleted: tuple[str, ...]
    freed_bytes: int


def shard_snapshots(view: PartitionsView) -> list[tuple[SnapRow, ShardSnapshotV1]]:
    """Every shard snapshot row in ``view`` with its decoded snapshot.

    Rows of other steps are skipped without being unpickled; a row that is a
    shard snapshot but cannot be decoded stops everything (better keep every
    checkpoint than delete one a resume needs).
    """
    out: list[tuple[SnapRow, ShardSnapshotV1]] = []
    for row in view.snaps:
        try:
            snap = decode_snapshot(row.data)
        except SnapshotDecodeError as exc:
            msg = (
                f"recovery row {row.step_id}/{row.state_key} at epoch {row.epoch} "
                f"(partition {row.partition}): {exc}"
            )
            raise SnapshotDecodeError(msg) from exc
        if snap is None:
            continue
        if snap.shard != row.state_key:
            msg = (
                f"recovery row for key {row.state_key!r} at epoch {row.epoch} holds the "
                f"snapshot of shard {snap.shard!r}"
            )
            raise SnapshotDecodeError(msg)
        out.append((row, snap))
    return out


def referenced_checkpoints(view: PartitionsView) -> dict[str, set[str]]:
    """Per shard, the checkpoint references of all its retained rows."""
    refs: dict[str, set[str]] = {}
    for _row, snap in shard_snapshots(view):
        refs.setdefault(snap.shard, set()).add(snap.checkpoint)
    return refs


def collect_garbage(
    layout: RecoveryLayout,
    *,
    quiescent: bool = False,
    shards: Collection[str] | None = None,
) -> GcReport:
    """Delete the checkpoints of ``layout`` that no retained snapshot references.

    ``shards`` limits the work to those shards (a shard logic cleaning up after
    itself reads only its own rows). ``quiescent`` must only be set when no
    process of a run uses the directory (checked on this host through the lock).
    """
    if quiescent:
        with layout.quiescent_lock():
            return _collect(layout, True, shards)
    return _collect(layout, False, shards)


def _collect(layout: RecoveryLayout, quiescent: bool, shards: Collection[str] | None) -> GcReport:
    if layout.needs_partitions:
        msg = (
            f"no recovery partitions in {layout.dir}: refusing to delete checkpoints "
            "without the rows that reference them"
        )
        raise RecoveryError(msg)
    # Rows first, then directories: see the module docstring.
    view = read_partitions(layout.dir, state_keys=shards)
    _ = view.part_count  # refuse incomplete or inconsistent partition sets
    snaps = shard_snapshots(view)
    refs: dict[str, set[str]] = {}
    for _row, snap in snaps:
        refs.setdefault(snap.shard, set()).add(snap.checkpoint)
    store = layout.checkpoints
    pending: list[str] = []
    deleted: list[str] = []
    freed = 0
    for shard in store.shards() if shards is None else sorted(set(shards)):
        mine = refs.get(shard, set())
        horizon = max((parse_ref(r)[1] for r in mine), default=None)
        for entry in store.dirs(shard):
            if entry.state == "complete" and entry.ref in mine:
                continue
            if entry.state != "deleting" and not quiescent and (
                horizon is None or entry.seq > horizon
            ):
                pending.append(entry.ref)
                continue
            freed += store.remove_dir(entry)
            deleted.append(entry.path.name if entry.state != "complete" else entry.ref)
    referenced = frozenset(r for rs in refs.values() for r in rs)
    return GcReport(len(snaps), referenced, tuple(pending), tuple(deleted), freed)


class PeriodicCleanup:
    """Runs :func:`collect_garbage` every ``interval_s`` on a daemon thread (for
    the parent process of a run); :meth:`stop` ends it and, with
    ``quiescent=True``, runs a last quiescent clean-up once the workers are gone.

    Errors do not kill the thread: the last one is kept in :attr:`error` and
    handed to ``on_error`` (default: ignore), and the next round tries again.
    """

    def __init__(
        self,
        layout: RecoveryLayout,
        interval_s: float,
        on_error: Callable[[RecoveryError], None] | None = None,
    ) -> None:
        self.layout = layout
        self.interval_s = interval_s
        self.on_error = on_error
        self.error: RecoveryError | None = None
        self.rounds = 0
        self.freed_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="checkpoint-gc", daemon=True)

    def start(self) -> PeriodicCleanup:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def run_once(self, *, quiescent: bool = False) -> GcReport | None:
        try:
            report = collect_garbage(self.layout, quiescent=quiescent)
        except RecoveryError as exc:
            self.error = exc
            if self.on_error is not None:
                self.on_error(exc)
            return None
        self.rounds += 1
        self.freed_bytes += report.freed_bytes
        return report

    def stop(self, *, quiescent: bool = False) -> GcReport | None:
        """Stop the thread; then, if asked, one quiescent round (workers exited)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.run_once(quiescent=True) if quiescent else None
