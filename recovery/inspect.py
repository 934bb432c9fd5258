"""What ``streamjoin snapshots DIR`` shows: the snapshot a resume would start from.

The resumable snapshot is what Bytewax would load now: per shard, its newest
row below the resume epoch ``R`` (see :mod:`recovery.partitions`), i.e. the
state at the close of epoch ``R - 1``. Per shard: its watermark and retained
entries (from the snapshot's joiner state, so no RocksDB is opened) and the
size of its checkpoint on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from joins.watermark import WM_MAX, WM_MIN
from recovery.errors import SnapshotDecodeError
from recovery.gc import shard_snapshots
from recovery.layout import RecoveryLayout, open_recovery_dir
from recovery.partitions import PartitionsView, read_partitions


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """One shard in the resumable snapshot."""

    shard: str
    #: The epoch at whose close the snapshot was taken.
    epoch: int
    seq: int
    watermark_ms: int
    entries: dict[str, int]
    checkpoint: str
    #: Bytes of the checkpoint's files; ``None`` if it is missing from disk.
    checkpoint_bytes: int | None


@dataclass(frozen=True, slots=True)
class ResumableSnapshot:
    """The state a run resuming from this directory would start from."""

    recovery_dir: str
    configuration: str
    partitions: int
    #: Latest execution number (``None``: never run).
    execution: int | None
    #: The epoch the next execution starts at; shards resume from rows below it.
    resume_epoch: int
    shards: tuple[ShardStatus, ...]
    #: Keys whose newest resumable row is a discard (a logic that finished at end
    #: of input), as ``step/key``.
    discarded: tuple[str, ...]
    #: Rows of other steps (sources, sinks) that a resume loads too.
    other_rows: int
    #: Bytes of the whole checkpoint root, hard links counted once.
    checkpoint_disk_bytes: int

    @property
    def missing(self) -> tuple[str, ...]:
        """Shards whose checkpoint is not on disk (a resume would fail)."""
        return tuple(s.shard for s in self.shards if s.checkpoint_bytes is None)


def resumable_snapshot(
    source: str | os.PathLike[str] | RecoveryLayout, *, before_epoch: int | None = None
) -> ResumableSnapshot:
    """Read the resumable snapshot of a recovery directory (read-only)."""
    layout = source if isinstance(source, RecoveryLayout) else open_recovery_dir(source)
    view = read_partitions(layout.dir)
    return _summarise(layout, view, before_epoch)


def _summarise(
    layout: RecoveryLayout, view: PartitionsView, before_epoch: int | None
) -> ResumableSnapshot:
    parts = view.part_count
    resume = view.resume_epoch() if before_epoch is None else before_epoch
    chosen = view.resumable_rows(resume)
    ours = {(row.step_id, row.state_key, row.epoch): snap for row, snap in shard_snapshots(view)}
    store = layout.checkpoints
    shards: list[ShardStatus] = []
    discarded: list[str] = []
    other = 0
    for (step, key), row in sorted(chosen.items()):
        snap = ours.get((step, key, row.epoch))
        if snap is None:
            if row.data is None:
                discarded.append(f"{step}/{key}")
            else:
                other += 1
            continue
        if snap.fingerprint != layout.identity.fingerprint:
            msg = (
                f"shard {key} at epoch {row.epoch} was snapshotted under configuration "
                f"{snap.fingerprint}, but {layout.manifest_path} records "
                f"{layout.identity.fingerprint}"
            )
            raise SnapshotDecodeError(msg)
        shards.append(
            ShardStatus(
                shard=key,
                epoch=row.epoch,
                seq=snap.seq,
                watermark_ms=snap.watermark_ms,
                entries=snap.entries,
                checkpoint=snap.checkpoint,
                checkpoint_bytes=store.size_of(snap.checkpoint),
            )
        )
    return ResumableSnapshot(
        recovery_dir=str(layout.dir),
        configuration=layout.identity.describe(),
        partitions=parts,
        execution=view.execution,
        resume_epoch=resume,
        shards=tuple(shards),
        discarded=tuple(discarded),
        other_rows=other,
        checkpoint_disk_bytes=store.disk_bytes(),
    )


def _wm(ms: int) -> str:
    if ms <= WM_MIN:
        return "-inf"
    if ms >= WM_MAX:
        return "+inf"
    return str(ms)


def format_snapshot(snap: ResumableSnapshot) -> str:
    """The table ``streamjoin snapshots`` prints."""
    lines = [
        f"recovery dir   {snap.recovery_dir}",
        f"configuration  {snap.configuration}",
        f"partitions     {snap.partitions}; latest execution "
        f"{'none' if snap.execution is None else snap.execution}",
        f"resume epoch   {snap.resume_epoch} (state as of the close of epoch "
        f"{snap.resume_epoch - 1}); {len(snap.shards)} shard(s), "
        f"{len(snap.discarded)} finished, {snap.other_rows} other step row(s)",
        f"checkpoints    {snap.checkpoint_disk_bytes:,} bytes on disk",
        "",
        f"{'shard':<14} {'epoch':>7} {'watermark_ms':>16} {'left':>11} {'right':>11} "
        f"{'ckpt_bytes':>12}  checkpoint",
    ]
    for s in snap.shards:
        size = "MISSING" if s.checkpoint_bytes is None else f"{s.checkpoint_bytes:,}"
        lines.append(
            f"{s.shard:<14} {s.epoch:>7} {_wm(s.watermark_ms):>16} {s.entries['left']:>11,} "
            f"{s.entries['right']:>11,} {size:>12}  {s.checkpoint}"
        )
    return "\n".join(lines)
