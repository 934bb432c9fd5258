"""Copy a retained snapshot into a new recovery directory, for ``streamjoin replay``.

The copy is a complete recovery directory of its own: the manifest, every
recovery partition (through SQLite's online backup, so a live run may keep
writing the source) and a hard-link clone of each checkpoint the copied rows
reference. A run started on the copy resumes from the chosen epoch and never
touches the source: its writes go to the copy's partitions and checkpoints, and
hard-linked SST files are immutable.

In the copy, rows at or above the replay epoch ``E`` are removed (a resume from
``E`` never loads them, and left in place they could later be taken for newer
state), and so are the rows of steps ``drop_step`` selects (for example the
file sinks' positions, when the replay writes to a new output directory). When
``E`` is older than the source's resume epoch, an execution row with
``resume_epoch = E`` is added so that Bytewax resumes at ``E``. ``E`` must
still be retained: no partition may have committed (garbage-collected) an epoch
``>= E``, which with ``backup_interval = 0`` leaves only the latest.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import CheckpointMissingError, RecoveryError
from recovery.gc import shard_snapshots
from recovery.layout import (
    DEFAULT_CHECKPOINT_ROOT,
    MANIFEST_NAME,
    RecoveryLayout,
    RunManifest,
    open_recovery_dir,
    write_manifest,
)
from recovery.partitions import connect_ro, read_partitions
from recovery.prune import add_execution
from recovery.trust import make_private_dir, make_private_file
from state.errors import StateError
from state.snapshot import clone_files

#: How often a copy is retried when the source's clean-up removed a checkpoint
#: between reading the rows and cloning it (the source run is live).
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class ReplayCopy:
    """What :func:`copy_for_replay` made."""

    recovery_dir: Path
    #: The epoch a run on the copy resumes at.
    resume_epoch: int
    shards: int
    checkpoints: int
    dropped_rows: int


def copy_for_replay(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    epoch: int | None = None,
    drop_step: Callable[[str], bool] | None = None,
) -> ReplayCopy:
    """Copy the snapshot of ``source`` resumable at ``epoch`` (default: the
    latest) into the new recovery directory ``dest`` (must not exist)."""
    layout = open_recovery_dir(source)
    target = Path(dest)
    if target.exists():
        msg = f"replay target {target} already exists: give a new recovery directory"
        raise RecoveryError(msg)
    work = target.with_name(target.name + ".partial")
    attempt = 1
    while True:
        shutil.rmtree(work, ignore_errors=True)
        try:
            result = _copy(layout, work, epoch, drop_step)
            break
        except CheckpointMissingError:
            shutil.rmtree(work, ignore_errors=True)
            if attempt >= ATTEMPTS:
                raise
            attempt += 1
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    os.rename(work, target)
    return ReplayCopy(target, *result)


def _copy(
    layout: RecoveryLayout,
    work: Path,
    epoch: int | None,
    drop_step: Callable[[str], bool] | None,
) -> tuple[int, int, int, int]:
    view = read_partitions(layout.dir, with_snaps=False)
    _ = view.part_count  # refuses incomplete or inconsistent partition sets
    latest = view.resume_epoch()
    target_epoch = latest if epoch is None else epoch
    if not 1 <= target_epoch <= latest:
        msg = f"replay epoch {target_epoch} is not retained: choose 1..{latest} (the latest)"
        raise RecoveryError(msg)
    committed = max(view.commits.values(), default=0)
    if committed >= target_epoch:
        msg = (
            f"replay epoch {target_epoch} is no longer retained: the recovery partitions "
            f"were cleaned up to epoch {committed} (epochs {committed + 1}..{latest} are; "
            "a longer --backup-interval keeps more)"
        )
        raise RecoveryError(msg)
    make_private_dir(work)  # 0700, like every recovery directory (recovery.trust)
    manifest = RunManifest(
        layout.identity, layout.manifest.partitions, DEFAULT_CHECKPOINT_ROOT,
        layout.manifest.inputs,  # the replay reads the same files: checked on its start
        layout.manifest.settings,
        True,  # every partition is copied below, before the copy is renamed into place
        layout.manifest.commit_delay_epochs,
    )
    write_manifest(work / MANIFEST_NAME, manifest)
    dropped = 0
    for path in layout.partition_files():
        dropped += _copy_partition(path, work / path.name, target_epoch, drop_step)
        make_private_file(work / path.name)
    if target_epoch < latest:
        add_execution(work / layout.partition_files()[0].name, view.execution, target_epoch)
    copied = read_partitions(work)
    snaps = shard_snapshots(copied)
    refs = sorted({snap.checkpoint for _row, snap in snaps})
    src_root, dst_root = layout.checkpoint_root, work / DEFAULT_CHECKPOINT_ROOT
    make_private_dir(dst_root)
    for ref in refs:
        src = src_root / ref
        if not (src / "CURRENT").is_file():
            msg = f"checkpoint {ref} vanished from {src_root} while copying"
            raise CheckpointMissingError(msg)
        try:
            clone_files(src, dst_root / ref)
        except StateError as exc:
            if not (src / "CURRENT").is_file():
                msg = f"checkpoint {ref} vanished from {src_root} while copying"
                raise CheckpointMissingError(msg) from exc
            msg = f"cannot clone checkpoint {ref} for replay: {exc}"
            raise RecoveryError(msg) from exc
    shards = len({snap.shard for _row, snap in snaps})
    return target_epoch, shards, len(refs), dropped


def _copy_partition(
    src: Path, dst: Path, epoch: int, drop_step: Callable[[str], bool] | None
) -> int:
    source = connect_ro(src)
    target = sqlite3.connect(dst, isolation_level=None)
    try:
        source.backup(target)
        target.execute("BEGIN IMMEDIATE")
        dropped = target.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (epoch,)).rowcount
        if drop_step is not None:
            steps = [r[0] for r in target.execute("SELECT DISTINCT step_id FROM snaps")]
            for step in steps:
                if drop_step(step):
                    cur = target.execute("DELETE FROM snaps WHERE step_id = ?", (step,))
                    dropped += cur.rowcount
        target.execute("COMMIT")
    except sqlite3.Error as exc:
        msg = f"cannot copy recovery partition {src} to {dst}: {exc}"
        raise RecoveryError(msg) from exc
    finally:
        source.close()
        target.close()
    return int(dropped)
