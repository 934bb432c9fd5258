"""Errors of the recovery package.

Everything ``recovery/`` raises on purpose derives from :class:`RecoveryError`,
itself a :class:`joins.errors.StreamJoinError`. I/O and SQLite errors are wrapped
at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from joins.errors import StreamJoinError


class RecoveryError(StreamJoinError):
    """The recovery store cannot do what was asked (layout, I/O, SQLite)."""


class IncompatibleRecoveryError(RecoveryError):
    """A recovery directory was initialised for another join configuration or
    shard count than the one asked for: resuming would give wrong results."""


class InputsChangedError(IncompatibleRecoveryError):
    """The input files of a resume are not the ones the recovery directory read:
    one is missing, shorter, different at the start, or the list differs. The
    snapshotted read positions would point into other bytes."""


class SnapshotDecodeError(RecoveryError, ValueError):
    """A recovery row that claims to be a shard snapshot cannot be decoded
    (unknown class, wrong version, malformed fields)."""


class CheckpointMissingError(RecoveryError, FileNotFoundError):
    """A snapshot references a checkpoint that is not on disk (deleted, or the
    checkpoint root is not reachable from this process)."""


class UntrustedRecoveryError(RecoveryError):
    """A recovery directory (or a file in it, or a directory above it) can be
    written by another user; a resume unpickles its rows, so it is refused."""


class FilesystemMismatchError(RecoveryError):
    """The checkpoint root and the shards' state directory are on different
    filesystems: checkpoints and clones are hard links, which cannot cross."""
