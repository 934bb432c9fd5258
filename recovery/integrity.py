"""Before a resume: is the snapshot complete and consistent? If not, which epoch is.

A resume loads, for every key of every step, its newest row below the resume
epoch ``R`` (:mod:`recovery.partitions`). That state is only the state of one
epoch if every recovery partition still holds every row written below ``R``,
every shard has a row, and every checkpoint those rows name is on disk. Damage
breaks this silently: a partition whose ``-wal`` file was lost goes back to an
older state (its keys resume from older rows than the others, or not at all),
a shard whose rows are gone restarts empty, a missing partition file makes
Bytewax start afresh, a missing checkpoint fails inside a worker.
:func:`plan_resume` checks all of this and either names the epoch to resume
at, or names what is missing and offers the newest epoch that is complete.

**What a partition proves it holds.** Bytewax writes each partition in epoch
order (``partd_write``), a worker's ``fronts`` row ``f`` only after every
partition holds every row below ``f``, and a partition's ``commits`` row
``c`` only after the fronts of epoch ``c + delay`` are written everywhere
(``delay`` = the backup interval in epochs). So partition ``p`` provably
holds every row below

    ``E_p = max(1, newest snap epoch in p, largest front in p, c_p + delay + 1)``

and a revert of ``p`` (a lost ``-wal``: the database file alone is an older,
self-consistent state) lowers ``E_p``. (``recovery.prune.rewind`` checkpoints
the logs at every start, so a revert never brings back rows it deleted, and it
lowers the fronts to the epoch it starts at, so no front claims rows that were
deleted.) In a healthy store ``R - 2 <= E_p <= R + 2``: a source only starts
epoch ``e`` once everything of epoch ``e - 2`` is committed, and a kill can
fall between the fronts of an epoch and its commits.

**The epoch to resume at** is ``T = min(R, min_p E_p)`` (or the one asked for,
``--resume-epoch``). At ``T`` it must hold that every partition file is there,
``E_p >= T`` for every ``p``, ``T`` is retained (every commit is below ``T``,
so no row below ``T`` was garbage-collected), every expected shard has a row
below ``T`` (or none has, and no output was written yet), no row names an
unknown shard or another configuration, and every named checkpoint is on disk.
``T`` within two epochs of ``R`` is taken without asking: it is exact (the
same as ``streamjoin replay --epoch T``) and happens in a healthy store after
an unlucky kill. So is any ``T > 1`` while no partition has committed yet (a
young store, or a long ``--backup-interval``): every row is retained then,
and a partition that received no row for a while may just have been quiet.
Otherwise the store is refused as damaged; the refusal names what is missing
and offers the newest epoch that passes every check (``--resume-epoch``), if
one is retained.

What this cannot see: rows deleted from the middle of a partition's history
while newer rows of the same partition remain (only a suffix of a partition is
lost when its log is lost), and damage inside a checkpoint's files.
"""

from __future__ import annotations

import bisect
import io
import pickle
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from recovery.errors import RecoveryError, SnapshotDecodeError
from recovery.layout import RecoveryLayout
from recovery.partitions import PartitionsView, SnapRow, partition_files, read_partitions
from recovery.snapshot import ShardSnapshotV1, decode_snapshot

#: How far below the resume epoch a healthy store's partitions may prove.
HEALTHY_LAG_EPOCHS = 2


class DamagedRecoveryError(RecoveryError):
    """The recovery store cannot resume exactly at its resume epoch (or the one
    asked for); the message names what is missing and what can be done."""


class EpochOutOfRangeError(RecoveryError):
    """The epoch asked for is not one the store could resume at (above its
    latest, or below 1)."""


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """What one recovery partition proves it holds."""

    index: int
    file: str
    #: Every row below this epoch is in the partition.
    complete_below: int
    #: Its commit epoch (rows at or below it may have been garbage-collected).
    commit: int | None
    #: The epoch of its newest row (None: no row).
    newest_row: int | None = None


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """Where a resume starts, or why it cannot."""

    #: The epoch Bytewax would resume at by itself.
    resume_epoch: int
    #: The epoch this resume starts at (valid when :attr:`problems` is empty).
    epoch: int
    partitions: tuple[PartitionProgress, ...]
    #: What is missing or inconsistent (empty: resume at :attr:`epoch`).
    problems: tuple[str, ...] = ()
    #: The newest complete, retained epoch to offer when there are problems.
    offer: int | None = None
    #: Why :attr:`epoch` is below :attr:`resume_epoch`, when it is.
    notes: tuple[str, ...] = ()

    def refusal(self, where: str) -> str:
        """One line: what is wrong, and what the user can do."""
        head = (
            f"the recovery directory {where} cannot resume exactly at epoch {self.epoch}: "
            f"{'; '.join(self.problems)}."
        )
        if self.offer is not None:
            return (
                f"{head} The newest epoch it holds completely is {self.offer}: run the same "
                f"command with --resume-epoch {self.offer} to resume from there (everything "
                "after it is recomputed, exactly)."
            )
        return (
            f"{head} No retained epoch is complete: restore what is missing from a "
            "backup, or start over with a new --recovery-dir (a longer --backup-interval "
            "keeps older epochs to fall back on)."
        )


def missing_partitions(layout: RecoveryLayout) -> list[str]:
    """Partition files the manifest's count says should be there and are not."""
    present = {p.name for p in partition_files(layout.dir)}
    expected = [f"part-{i}.sqlite3" for i in range(layout.manifest.partitions)]
    return [name for name in expected if name not in present]


def missing_partitions_message(layout: RecoveryLayout, missing: Sequence[str]) -> str:
    """The refusal when partition files are gone (no epoch can do without them)."""
    files = ", ".join(missing)
    return (
        f"the recovery directory {layout.dir} cannot resume: recovery partition file(s) "
        f"{files} of {layout.manifest.partitions} are missing (deleted, or not copied "
        "with the others), and with them the snapshots of every key they held; no epoch "
        "can be resumed without them. Restore them from a backup, or start over with a "
        "new --recovery-dir."
    )


@dataclass(frozen=True, slots=True)
class _Key:
    """One key's rows, by epoch (for the newest row below any epoch)."""

    epochs: list[int]
    rows: list[SnapRow]

    def newest_below(self, epoch: int) -> SnapRow | None:
        i = bisect.bisect_left(self.epochs, epoch)
        return self.rows[i - 1] if i else None


def _index_rows(view: PartitionsView) -> dict[tuple[str, str], _Key]:
    by_key: dict[tuple[str, str], list[SnapRow]] = {}
    for row in view.snaps:
        by_key.setdefault((row.step_id, row.state_key), []).append(row)
    out = {}
    for key, rows in by_key.items():
        rows.sort(key=lambda r: r.epoch)
        out[key] = _Key([r.epoch for r in rows], rows)
    return out


def partition_progress(view: PartitionsView, commit_delay_epochs: int) -> list[PartitionProgress]:
    """:class:`PartitionProgress` of every partition read (see the module docstring)."""
    newest: dict[int, int] = {}
    for row in view.snaps:
        newest[row.partition] = max(newest.get(row.partition, 0), row.epoch)
    out = []
    for index, path in sorted(view.part_files.items()):
        commit = view.commits.get(index)
        bound = max(1, newest.get(index, 0), view.part_fronts.get(index, 0))
        if commit is not None:
            bound = max(bound, commit + commit_delay_epochs + 1)
        out.append(PartitionProgress(index, path.name, bound, commit, newest.get(index)))
    return out


class _Checker:
    """The checks of one epoch (see :func:`plan_resume`)."""

    def __init__(
        self,
        layout: RecoveryLayout,
        view: PartitionsView,
        progress: list[PartitionProgress],
        shards: Collection[str],
        is_join_step: Callable[[str], bool],
    ) -> None:
        self.layout = layout
        self.progress = progress
        self.shards = frozenset(shards)
        self.keys = _index_rows(view)
        self.is_join_step = is_join_step
        self.max_commit = max((p.commit for p in progress if p.commit is not None), default=0)
        self._decoded: dict[tuple[str, str, int], ShardSnapshotV1 | str] = {}
        self._present: dict[str, bool] = {}

    def _snapshot(self, row: SnapRow) -> ShardSnapshotV1 | str:
        """The row's snapshot, or why it cannot be used."""
        key = (row.step_id, row.state_key, row.epoch)
        found = self._decoded.get(key)
        if found is None:
            try:
                snap = decode_snapshot(row.data)
            except SnapshotDecodeError as exc:
                found = (f"the snapshot row of shard {row.state_key} at epoch {row.epoch} is "
                         f"unreadable ({exc})")
            else:
                if snap is None:
                    found = (f"the row of shard {row.state_key} at epoch {row.epoch} is not a "
                             "shard snapshot")
                elif snap.shard != row.state_key:
                    found = (f"the row of shard {row.state_key} at epoch {row.epoch} holds the "
                             f"snapshot of shard {snap.shard}")
                elif snap.fingerprint != self.layout.identity.fingerprint:
                    found = (f"shard {row.state_key} at epoch {row.epoch} was snapshotted under "
                             f"configuration {snap.fingerprint}, but the store records "
                             f"{self.layout.identity.fingerprint}")
                else:
                    found = snap
            self._decoded[key] = found
        return found

    def _checkpoint_present(self, ref: str) -> bool:
        present = self._present.get(ref)
        if present is None:
            try:
                present = (self.layout.checkpoints.path_of(ref) / "CURRENT").is_file()
            except SnapshotDecodeError:
                present = False
            self._present[ref] = present
        return present

    def problems_at(self, epoch: int) -> list[str]:
        """Everything that keeps a resume at ``epoch`` from being exact."""
        return self.behind(epoch) + self.inconsistent(epoch)

    def behind(self, epoch: int, skip: Collection[str] = ()) -> list[str]:
        """Partitions (but those in ``skip``) that do not prove they hold every
        row below ``epoch``."""
        return [
            f"recovery partition {p.file} holds complete snapshots only below epoch "
            f"{p.complete_below} (its write-ahead log {p.file}-wal was lost, or an older "
            "copy of it restored)"
            for p in self.progress
            if p.complete_below < epoch and p.file not in skip
        ]

    def inconsistent(self, epoch: int) -> list[str]:
        """What is wrong with the rows a resume at ``epoch`` would load."""
        problems: list[str] = []
        if self.max_commit >= epoch:
            problems.append(
                f"epoch {epoch} is no longer retained (the partitions were cleaned up to "
                f"epoch {self.max_commit}; a longer --backup-interval keeps more)"
            )
        have: set[str] = set()
        unknown: set[str] = set()
        wrote_output = False
        checkpoints: list[str] = []
        for (step, key), rows in sorted(self.keys.items()):
            row = rows.newest_below(epoch)
            if row is None:
                continue
            if not wrote_output and step.endswith("_files") and row.data is not None:
                wrote_output = _positive_int(row.data)
            if not self.is_join_step(step):
                continue
            if key not in self.shards:
                unknown.add(key)
                continue
            have.add(key)
            if row.data is None:
                continue  # the shard finished: a discard needs no checkpoint
            snap = self._snapshot(row)
            if isinstance(snap, str):
                problems.append(snap)
            elif not self._checkpoint_present(snap.checkpoint):
                checkpoints.append(
                    f"checkpoint {snap.checkpoint} of shard {key} (its snapshot at epoch "
                    f"{row.epoch}) is missing from {self.layout.checkpoint_root}"
                )
        problems.extend(checkpoints)
        if unknown:
            problems.append(f"rows of unknown shard(s) {', '.join(sorted(unknown))}")
        if have or wrote_output:
            lost = sorted(self.shards - have)
            if lost:
                shown = ", ".join(lost[:8]) + (", ..." if len(lost) > 8 else "")
                problems.append(
                    f"no snapshot of {len(lost)} of {len(self.shards)} shards below epoch "
                    f"{epoch} ({shown}): their rows are missing"
                )
        return problems

    def candidates(self, newest: int) -> list[int]:
        """Epochs up to ``newest`` at which the loaded rows differ, newest first,
        above the newest commit (only those can be retained)."""
        found = {e + 1 for key in self.keys.values() for e in key.epochs if e + 1 <= newest}
        found.update((newest, self.max_commit + 1))
        return sorted((e for e in found if self.max_commit < e <= newest), reverse=True)


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        msg = f"unexpected global {module}.{name}"
        raise pickle.UnpicklingError(msg)


def _positive_int(data: bytes) -> bool:
    """Whether a file sink's snapshot (a pickled int: its byte position) is above
    zero. No global is resolved, so nothing but plain values is ever built."""
    try:
        value = _NoGlobals(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError):
        return False
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def plan_resume(
    layout: RecoveryLayout,
    *,
    shards: Collection[str],
    is_join_step: Callable[[str], bool],
    requested: int | None = None,
) -> ResumePlan:
    """Where the next execution of ``layout`` should start (see the module
    docstring). ``shards``: every shard name of the store's shard count;
    ``is_join_step``: which step ids hold the shards' rows; ``requested``: the
    epoch asked for (``--resume-epoch``), checked like any other."""
    missing = missing_partitions(layout)
    if missing:
        raise DamagedRecoveryError(missing_partitions_message(layout, missing))
    view = read_partitions(layout.dir)
    _ = view.part_count
    resume = view.resume_epoch()
    delay = layout.manifest.commit_delay_epochs or 0
    progress = partition_progress(view, delay)
    checker = _Checker(layout, view, progress, shards, is_join_step)
    if requested is not None:
        if not 1 <= requested <= resume:
            msg = (
                f"--resume-epoch {requested}: the recovery directory {layout.dir} can resume "
                f"at epochs 1..{resume} (its latest)"
            )
            raise EpochOutOfRangeError(msg)
        problems = checker.problems_at(requested)
        if not problems:
            return ResumePlan(resume, requested, tuple(progress))
        return _refused(resume, requested, progress, problems, checker)
    problems = checker.problems_at(resume)
    newest = max(p.complete_below for p in progress)
    ahead = newest > resume + HEALTHY_LAG_EPOCHS
    if ahead:
        first = max(progress, key=lambda p: p.complete_below)
        lagging = [p for p in progress if p.complete_below < newest - HEALTHY_LAG_EPOCHS]
        problems = checker.behind(resume, skip={p.file for p in lagging})
        problems += checker.inconsistent(resume)
        behind = "".join(f", {p.file} only below epoch {p.complete_below}" for p in lagging)
        logs = " or ".join(f"{p.file}-wal" for p in lagging) or "a partition's -wal file"
        holds = (f"snapshots of epoch {first.newest_row}" if first.newest_row is not None
                 else f"every snapshot below epoch {first.complete_below}")
        problems.insert(0, (
            f"the recovery partitions disagree: {first.file} holds {holds}{behind}, and "
            f"the execution records say resume at epoch {resume} (the write-ahead log "
            f"{logs} was lost, or an older copy restored)"
        ))
    if not problems:
        return ResumePlan(resume, resume, tuple(progress))
    low = min(p.complete_below for p in progress)
    committed = any(p.commit is not None for p in progress)
    # Within two epochs: a healthy store killed between an epoch's fronts and
    # its commits (or a partition that lost at most that much). Before any
    # commit, a partition that received no row for a while proves little: it
    # may be quiet, not damaged; everything is retained then, so an older
    # epoch is exact too (but not epoch 1: a partition that proves nothing at
    # all is refused rather than silently started over).
    expected = low >= resume - HEALTHY_LAG_EPOCHS or (not committed and low > 1)
    if not ahead and expected and not checker.inconsistent(resume):
        if not checker.problems_at(low):
            behind = ", ".join(p.file for p in progress if p.complete_below < resume)
            note = (
                f"resuming at epoch {low}, not {resume}: the newest epoch every recovery "
                f"partition proves it holds completely ({behind} behind)"
            )
            return ResumePlan(resume, low, tuple(progress), notes=(note,))
    return _refused(resume, resume, progress, problems, checker)


def _refused(
    resume: int,
    target: int,
    progress: list[PartitionProgress],
    problems: list[str],
    checker: _Checker,
) -> ResumePlan:
    """A plan that refuses ``target``, offering the newest epoch that passes."""
    # The target itself qualifies when only the execution records were wrong.
    offer = next((e for e in checker.candidates(resume) if not checker.problems_at(e)), None)
    return ResumePlan(resume, target, tuple(progress), tuple(problems), offer)
