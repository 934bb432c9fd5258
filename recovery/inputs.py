"""Which input files a recovery directory read: :class:`InputFiles` and the resume check.

Bytewax resumes every source partition (one per input file) from the position
it snapshotted: a byte offset (CSV, JSON Lines) or a record index (Avro). That
position only means something in the file the store was reading. In a replaced
file it points into other records; in a truncated one it skips whatever is
written there later. Either way the outputs are silently wrong.

So ``run_manifest.json`` records, per side and in partition order, each file's
path, its size and a BLAKE2b digest of its first ``min(size, HEAD_LIMIT_BYTES)``
bytes (one bounded read, whatever the file's size). :func:`input_changes`
compares a resume's files with that record:

- the same paths per side, in the same order (a partition's name is its side,
  index and file name);
- each file still there, at least as long as recorded (a file that only grew
  is an appended stream: fine);
- the same digest over the recorded head.

Only the head is hashed, so a file rewritten beyond its first MiB with a size
at least the recorded one is not detected; reading every byte at each start
would cost as much as the run. The caller re-records the files after a
successful check (:func:`observe_inputs`), so a later resume is held to the
size seen at this one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recovery.errors import InputsChangedError, RecoveryError

#: The most bytes of a file the head digest covers.
HEAD_LIMIT_BYTES = 1 << 20
_DIGEST_BYTES = 16


def head_digest(data: bytes) -> str:
    """32 hex digits of BLAKE2b (16-byte digest) over ``data``."""
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).hexdigest()


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input file as observed: ``head_blake2b`` covers its first
    ``head_bytes`` bytes, ``min(size_bytes, limit)`` for the limit it was read with."""

    side: str
    path: str
    size_bytes: int
    head_bytes: int
    head_blake2b: str

    def __post_init__(self) -> None:
        if not 0 <= self.head_bytes <= self.size_bytes:
            msg = (
                f"input {self.path}: head of {self.head_bytes} bytes does not fit "
                f"a file of {self.size_bytes} bytes"
            )
            raise RecoveryError(msg)

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "head_bytes": self.head_bytes,
            "head_blake2b": self.head_blake2b,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputFile:
        try:
            return cls(
                str(data["side"]),
                str(data["path"]),
                int(data["size_bytes"]),
                int(data["head_bytes"]),
                str(data["head_blake2b"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"not an input file record: {data!r} ({exc})"
            raise RecoveryError(msg) from exc


@dataclass(frozen=True, slots=True)
class InputFiles:
    """Every input file of a run: each side's files in partition order."""

    files: tuple[InputFile, ...]

    def sides(self) -> tuple[str, ...]:
        """The sides, in the order they first appear."""
        return tuple(dict.fromkeys(f.side for f in self.files))

    def paths(self, side: str) -> tuple[str, ...]:
        return tuple(f.path for f in self.files if f.side == side)

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.files]

    @classmethod
    def from_json(cls, data: object) -> InputFiles:
        if not isinstance(data, list):
            msg = f"input files: expected a list, got {type(data).__name__}"
            raise RecoveryError(msg)
        return cls(tuple(InputFile.from_json(item) for item in data))


def observe_file(side: str, path: str, head_limit: int = HEAD_LIMIT_BYTES) -> InputFile | None:
    """``path``'s size and head digest now (``None`` if it does not exist)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(min(size, head_limit))
    except FileNotFoundError:
        return None
    except OSError as exc:
        msg = f"cannot read {side} input {path}: {exc.strerror or exc}"
        raise RecoveryError(msg) from exc
    return InputFile(side, path, size, len(head), head_digest(head))


def observe_inputs(paths: Mapping[str, Sequence[str]]) -> InputFiles:
    """Every file of ``paths`` (side -> files in partition order), to record."""
    files: list[InputFile] = []
    for side, side_paths in paths.items():
        for path in side_paths:
            seen = observe_file(side, path)
            if seen is None:
                msg = f"{side} input {path} disappeared while the run was starting"
                raise RecoveryError(msg)
            files.append(seen)
    return InputFiles(tuple(files))


def file_change(recorded: InputFile, now: InputFile | None) -> str | None:
    """What is wrong with one file, ``None`` if it is unchanged or only grew.

    ``now`` is the file observed with ``head_limit=recorded.head_bytes``
    (``None``: missing), so both digests cover the same bytes.
    """
    where = f"{recorded.side} input {recorded.path}"
    if now is None:
        return f"{where} is missing"
    if now.size_bytes < recorded.size_bytes:
        return (
            f"{where} is shorter than recorded: {now.size_bytes} bytes now, "
            f"{recorded.size_bytes} bytes recorded (truncated or replaced)"
        )
    if (now.head_bytes, now.head_blake2b) != (recorded.head_bytes, recorded.head_blake2b):
        return (
            f"{where} differs from the recorded file in its first {recorded.head_bytes} "
            "bytes (replaced or rewritten)"
        )
    return None


def list_change(
    side: str, recorded: Sequence[str], current: Sequence[str], gone: frozenset[str]
) -> str | None:
    """How ``side``'s list of files differs from the recorded one, ``None`` if it
    does not. ``gone``: the recorded paths that no longer exist on disk."""
    if list(recorded) == list(current):
        return None
    removed = [p for p in recorded if p not in current]
    added = [p for p in current if p not in recorded]
    parts: list[str] = []
    if removed:
        parts.append("no longer given: " + ", ".join(
            f"{p} (missing)" if p in gone else p for p in removed
        ))
    if added:
        parts.append("not recorded: " + ", ".join(added))
    if not parts:
        parts.append("the same files in another order: " + ", ".join(current))
    return (
        f"the {side} input files are not the recorded list ({len(recorded)} file(s) "
        f"recorded, {len(current)} given; {'; '.join(parts)})"
    )


def input_changes(recorded: InputFiles, current: Mapping[str, Sequence[str]]) -> list[str]:
    """Every difference between the recorded files and ``current`` (side -> paths
    in partition order) that makes a resume wrong; empty if it may resume."""
    problems: list[str] = []
    sides = tuple(dict.fromkeys((*recorded.sides(), *current)))
    for side in sides:
        given = tuple(current.get(side, ()))
        recorded_paths = recorded.paths(side)
        gone = frozenset(p for p in recorded_paths if p not in given and not os.path.exists(p))
        change = list_change(side, recorded_paths, given, gone)
        if change is not None:
            problems.append(change)
        for rec in recorded.files:
            if rec.side != side or rec.path not in given:
                continue
            change = file_change(rec, observe_file(side, rec.path, rec.head_bytes))
            if change is not None:
                problems.append(change)
    return problems


def check_inputs(
    recorded: InputFiles, current: Mapping[str, Sequence[str]], where: str = ""
) -> None:
    """Raise :class:`~recovery.errors.InputsChangedError` (one line, every
    problem named) unless ``current`` may resume from ``recorded``."""
    problems = input_changes(recorded, current)
    if not problems:
        return
    place = f" {where}" if where else ""
    msg = (
        f"the input files changed since the recovery directory{place} recorded them: "
        f"{'; '.join(problems)}. Its snapshots hold read positions in the recorded "
        "files, so resuming would skip or misread records. Resume with the recorded "
        "files (appending to them is fine), or use a new recovery directory."
    )
    raise InputsChangedError(msg)


def grown_files(recorded: InputFiles, current: InputFiles) -> list[tuple[InputFile, InputFile]]:
    """``(recorded, now)`` for each recorded file that is larger now (an appended
    stream). Meaningful after :func:`check_inputs` passed."""
    now = {(f.side, f.path): f for f in current.files}
    out: list[tuple[InputFile, InputFile]] = []
    for rec in recorded.files:
        seen = now.get((rec.side, rec.path))
        if seen is not None and seen.size_bytes > rec.size_bytes:
            out.append((rec, seen))
    return out
