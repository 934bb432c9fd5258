"""Where checkpoints live: :class:`CheckpointStore`.

Layout under the checkpoint root (``<recovery-dir>/checkpoints`` by default; any
directory every process of the cluster can reach, on the same filesystem as the
shards' state so that hard links work)::

    <root>/<shard>/<seq 12 digits>-<tag 8 hex>/            a complete checkpoint
    <root>/<shard>/.<seq>-<tag>.partial[.tmp]/             being written (or a crash's leftover)
    <root>/<shard>/.<seq>-<tag>.deleting/                  being deleted (or a crash's leftover)

A checkpoint is written under its ``.partial`` name and renamed when complete,
and renamed to ``.deleting`` before it is removed, so a complete name always
means a complete checkpoint. ``seq`` increases per shard across executions (see
:meth:`CheckpointStore.next_seq`); ``tag`` is random, so two executions never
write the same directory. References (``<shard>/<seq>-<tag>``) are relative to
the root, so a root can be moved or copied.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recovery.errors import CheckpointMissingError, FilesystemMismatchError, RecoveryError
from recovery.snapshot import check_shard_name, checkpoint_ref, parse_ref
from state.errors import StateError
from state.snapshot import clone_files

_COMPLETE = re.compile(r"(?P<seq>[0-9]{12})-(?P<tag>[0-9a-f]{8})")
_PARTIAL = re.compile(r"\.(?P<seq>[0-9]{12})-(?P<tag>[0-9a-f]{8})\.partial(?:\.tmp)?")
_DELETING = re.compile(r"\.(?P<seq>[0-9]{12})-(?P<tag>[0-9a-f]{8})\.deleting")


class Checkpointable(Protocol):
    """What a store must offer to be checkpointed (``state.store.RocksStore``)."""

    def checkpoint(self, dest_dir: str | os.PathLike[str]) -> Path: ...


@dataclass(frozen=True, slots=True)
class CheckpointDir:
    """One directory under a shard's folder of the root.

    ``state`` is ``complete``, ``partial`` (being written, or left by a crash)
    or ``deleting`` (being removed, or left by a crash); ``ref`` is the
    reference a complete checkpoint is known by (and the one a partial one will
    get).
    """

    shard: str
    seq: int
    ref: str
    path: Path
    state: str


class CheckpointStore:
    """The checkpoints of every shard of one recovery store, under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_of(self, ref: str) -> Path:
        """The directory of a checkpoint reference (validated: never outside root)."""
        parse_ref(ref)
        return self.root / ref

    # -- writing ------------------------------------------------------------------

    def take(self, shard: str, store: Checkpointable, seq: int) -> str:
        """Checkpoint ``store`` as ``shard``'s checkpoint number ``seq``; return its
        reference. Costs a memtable flush plus hard links, whatever the state size."""
        check_shard_name(shard)
        tag = secrets.token_hex(4)
        ref = checkpoint_ref(shard, seq, tag)
        final = self.root / ref
        partial = final.with_name(f".{final.name}.partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.checkpoint(partial)
            os.rename(partial, final)
        except (OSError, StateError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            msg = f"checkpoint of shard {shard!r} to {final} failed: {exc}"
            raise RecoveryError(msg) from exc
        return ref

    def restore(self, ref: str, work_dir: str | os.PathLike[str]) -> Path:
        """Make ``work_dir`` a private clone of checkpoint ``ref`` and return it.

        The checkpoint itself is never opened (a later crash may resume from it
        again): immutable files are hard-linked, the rest copied. ``work_dir``
        belongs to the shard: whatever a crashed execution left there is removed.
        """
        src = self.path_of(ref)
        if not (src / "CURRENT").is_file():
            msg = (
                f"checkpoint {ref} is missing under {self.root} (deleted, or the "
                "checkpoint root is not reachable from this process)"
            )
            raise CheckpointMissingError(msg)
        dest = Path(work_dir)
        if dest.exists():
            shutil.rmtree(dest)
        try:
            return clone_files(src, dest)
        except StateError as exc:
            cause = exc.__cause__
            hint = ""
            if isinstance(cause, OSError) and cause.errno == errno.EXDEV:
                hint = (
                    "; the checkpoint root and the state directory must be on the same "
                    "filesystem (hard links)"
                )
            msg = f"restoring checkpoint {ref} into {dest} failed: {exc}{hint}"
            raise RecoveryError(msg) from exc

    def delete(self, ref: str) -> int:
        """Delete checkpoint ``ref`` (atomically disappears first); return the bytes
        its files held. A missing checkpoint is not an error (0 bytes)."""
        path = self.path_of(ref)
        return self._remove(path, path.with_name(f".{path.name}.deleting"))

    def _remove(self, path: Path, doomed: Path) -> int:
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            msg = f"cannot delete checkpoint {path}: {exc}"
            raise RecoveryError(msg) from exc
        size = _dir_bytes(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return size

    def remove_dir(self, entry: CheckpointDir) -> int:
        """Remove any listed directory (partial and deleting leftovers too)."""
        if entry.state == "complete":
            return self.delete(entry.ref)
        if entry.state == "deleting":
            size = _dir_bytes(entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)
            return size
        doomed = entry.path.with_name(f".{entry.seq:012d}-{secrets.token_hex(4)}.deleting")
        return self._remove(entry.path, doomed)

    # -- reading ------------------------------------------------------------------

    def shards(self) -> list[str]:
        """Shards that have a folder under the root."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def dirs(self, shard: str | None = None) -> list[CheckpointDir]:
        """Every checkpoint directory (complete, partial, deleting), by shard and seq."""
        out: list[CheckpointDir] = []
        for name in [shard] if shard is not None else self.shards():
            out.extend(self._list_shard(name))
        return out

    def _list_shard(self, shard: str) -> Iterator[CheckpointDir]:
        folder = self.root / shard
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        found: list[CheckpointDir] = []
        for name in names:
            for state, pattern in (("complete", _COMPLETE), ("partial", _PARTIAL),
                                   ("deleting", _DELETING)):
                m = pattern.fullmatch(name)
                if m is not None:
                    ref = f"{shard}/{m['seq']}-{m['tag']}"
                    found.append(CheckpointDir(shard, int(m["seq"]), ref, folder / name, state))
                    break
        found.sort(key=lambda c: (c.seq, c.ref, c.state))
        yield from found

    def next_seq(self, shard: str, after: int = 0) -> int:
        """The next sequence number for ``shard``: above ``after`` (the seq of the
        snapshot it resumed from) and above every checkpoint of it on disk, so a
        new checkpoint always sorts after everything an earlier execution wrote."""
        highest = max((c.seq for c in self._list_shard(shard)), default=0)
        return max(after, highest) + 1

    def sizes(self) -> dict[str, int]:
        """Bytes of each complete checkpoint's files (hard-linked files count in
        every checkpoint that links them; see :meth:`disk_bytes` for the total)."""
        return {c.ref: _dir_bytes(c.path) for c in self.dirs() if c.state == "complete"}

    def size_of(self, ref: str) -> int | None:
        """Bytes of one checkpoint's files, ``None`` if it is not on disk."""
        path = self.path_of(ref)
        return _dir_bytes(path) if path.is_dir() else None

    def disk_bytes(self) -> int:
        """Bytes the whole root holds on disk, each hard-linked file counted once."""
        seen: set[tuple[int, int]] = set()
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        return total


def _dir_bytes(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat().st_size
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return 0
    return total


def device_of(path: str | os.PathLike[str]) -> tuple[int, Path]:
    """``st_dev`` of ``path``, or of its nearest existing ancestor when it does not
    exist yet (a directory created there lands on that filesystem); and the path
    that was looked at."""
    probe = Path(os.path.abspath(path))
    while True:
        try:
            return os.stat(probe).st_dev, probe
        except FileNotFoundError:
            if probe.parent == probe:
                raise
            probe = probe.parent


def check_same_filesystem(checkpoint_root: str | os.PathLike[str],
                          state_dir: str | os.PathLike[str]) -> None:
    """Refuse a checkpoint root and a state directory on different filesystems.

    Checkpoints are hard links of the live DB's files, and a resumed shard is a
    hard-link clone of its checkpoint. Across filesystems RocksDB silently
    copies every file at each checkpoint (the whole state, every epoch) and the
    restore fails with EXDEV, so the first run works and its resume does not.
    Checked before anything is created; refused rather than copied, since a copy
    per snapshot makes each snapshot cost the whole state.
    """
    try:
        root_dev, root_seen = device_of(checkpoint_root)
        state_dev, state_seen = device_of(state_dir)
    except OSError as exc:
        msg = f"cannot inspect {checkpoint_root} or {state_dir}: {exc}"
        raise RecoveryError(msg) from exc
    if root_dev == state_dev:
        return
    msg = (
        f"the state directory {state_dir} (on the filesystem of {state_seen}, device "
        f"{state_dev}) and the checkpoint root {checkpoint_root} (on the filesystem of "
        f"{root_seen}, device {root_dev}) are on different filesystems: checkpoints and "
        "resumed shards are hard links of the state's files, which cannot cross "
        "filesystems (the resume would fail with EXDEV, and every snapshot would copy the "
        "whole state). Put --state-dir on the recovery directory's filesystem, e.g. next "
        "to it."
    )
    raise FilesystemMismatchError(msg)
