"""Checkpoints and clones of a shard's RocksDB directory.

A checkpoint (RocksDB ``Checkpoint``: memtable flush plus hard links of the
immutable SST files) costs the same whatever the state size. A checkpoint is
never opened in place: a later crash may resume from it again, so a resumed
shard opens a *clone*, a new directory whose immutable files are hard links to
the checkpoint's and whose few mutable files (``CURRENT``, ``MANIFEST-*``,
``OPTIONS-*``, WAL ``*.log``) are copies.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import rocksdict

from state.errors import StateError

#: Files RocksDB never modifies after writing them: safe to share by hard link.
_IMMUTABLE_SUFFIXES = (".sst", ".blob")


def create_checkpoint(db: rocksdict.Rdict, dest_dir: str | os.PathLike[str]) -> Path:
    """Write a checkpoint of ``db`` to ``dest_dir`` (which must not exist yet)."""
    dest = Path(dest_dir)
    if dest.exists():
        msg = f"checkpoint directory {dest} already exists"
        raise StateError(msg)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        rocksdict.Checkpoint(db).create_checkpoint(str(dest))
    except Exception as exc:  # rocksdict raises plain Exception for RocksDB errors
        msg = f"RocksDB checkpoint to {dest} failed: {exc}"
        raise StateError(msg) from exc
    return dest


def clone_files(checkpoint_dir: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> Path:
    """Make ``new_path`` an independent copy of ``checkpoint_dir``: hard links for
    immutable files, copies for the rest. ``new_path`` must not exist yet."""
    src, dest = Path(checkpoint_dir), Path(new_path)
    if not (src / "CURRENT").is_file():
        msg = f"{src} is not a RocksDB checkpoint (no CURRENT file)"
        raise StateError(msg)
    if dest.exists():
        msg = f"clone directory {dest} already exists"
        raise StateError(msg)
    tmp = dest.with_name(dest.name + ".cloning")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for item in src.iterdir():
            if item.is_dir():
                msg = f"unexpected directory {item} in checkpoint"
                raise StateError(msg)
            if item.name.endswith(_IMMUTABLE_SUFFIXES):
                os.link(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
        # Appear complete or not at all: a crash mid-clone leaves only `.cloning`.
        tmp.rename(dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        msg = f"cloning checkpoint {src} to {dest} failed: {exc}"
        raise StateError(msg) from exc
    return dest


def wal_bytes(db_path: str | os.PathLike[str]) -> int:
    """Bytes of the write-ahead log files in a DB directory."""
    total = 0
    with os.scandir(db_path) as it:
        for entry in it:
            if entry.name.endswith(".log") and entry.is_file():
                total += entry.stat().st_size
    return total
