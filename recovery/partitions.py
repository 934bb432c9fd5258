"""Reading Bytewax 0.21.1's SQLite recovery partitions (never writing them).

``python -m bytewax.recovery DIR N`` creates ``DIR/part-0.sqlite3`` ..
``part-{N-1}.sqlite3`` (the count is fixed then). Each is a WAL-mode SQLite DB
with these tables (Bytewax ``src/recovery.rs``):

- ``parts(part_index, part_count)``: one row, the partition's identity;
- ``exs(ex_num, worker_count, resume_epoch)``: one row per execution (sharded);
- ``fronts(ex_num, worker_index, worker_frontier)``: per execution and worker,
  the epoch below which all of its snapshots are written (sharded);
- ``commits(part_index, commit_epoch)``: the epoch up to which the partition
  has been garbage-collected;
- ``snaps(step_id, state_key, snap_epoch, ser_change)``: the state of one key
  of one step at the close of ``snap_epoch``, ``pickle.dumps`` of what
  ``snapshot()`` returned, or NULL when the logic was discarded. A key's rows
  always live in the same partition and are written in epoch order.

Resume (Bytewax's ``resume_from``): in the latest execution, each worker's
frontier is the larger of its ``fronts`` row and the execution's
``resume_epoch``; the resume epoch ``R`` is the smallest of those. Each key is
loaded from its newest row with ``snap_epoch < R``. On commit of epoch ``c``
(``backup_interval`` after the frontier passed it) Bytewax deletes, per key,
every row older than the newest row with ``snap_epoch <= c``.

Readers open each file read-only (``mode=ro``) with a busy timeout, in one read
transaction per file, so a live run writing the same files is tolerated.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from recovery.errors import RecoveryError

PART_FILE = re.compile(r"part-(?P<index>[0-9]+)\.sqlite3")
#: How long a reader waits for a writer's lock (seconds).
BUSY_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class SnapRow:
    """One row of ``snaps``; ``data`` is the pickle, ``None`` for a discard."""

    step_id: str
    state_key: str
    epoch: int
    data: bytes | None
    partition: int


@dataclass(slots=True)
class PartitionsView:
    """What the recovery partitions of a directory hold (read at one moment per file)."""

    files: list[Path] = field(default_factory=list)
    part_counts: set[int] = field(default_factory=set)
    part_indexes: set[int] = field(default_factory=set)
    #: ``ex_num -> (worker_count, resume_epoch)``
    executions: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: ``(ex_num, worker_index) -> worker_frontier``
    fronts: dict[tuple[int, int], int] = field(default_factory=dict)
    #: ``part_index -> commit_epoch``
    commits: dict[int, int] = field(default_factory=dict)
    #: ``part_index -> file`` of every partition read.
    part_files: dict[int, Path] = field(default_factory=dict)
    #: ``part_index -> largest worker_frontier`` of the ``fronts`` rows that
    #: partition holds (any execution); absent when it holds none.
    part_fronts: dict[int, int] = field(default_factory=dict)
    snaps: list[SnapRow] = field(default_factory=list)

    @property
    def part_count(self) -> int:
        """The recovery partition count (checked to be complete and consistent)."""
        if not self.part_counts:
            msg = f"no recovery partitions found among {len(self.files)} file(s)"
            raise RecoveryError(msg)
        if len(self.part_counts) > 1:
            msg = f"recovery partitions disagree on their count: {sorted(self.part_counts)}"
            raise RecoveryError(msg)
        count = next(iter(self.part_counts))
        missing = sorted(set(range(count)) - self.part_indexes)
        if missing:
            msg = f"recovery partitions {missing} of {count} are missing"
            raise RecoveryError(msg)
        return count

    @property
    def execution(self) -> int | None:
        """The latest execution number, ``None`` before the first run."""
        return max(self.executions, default=None)

    def resume_epoch(self) -> int:
        """The epoch the next execution resumes at (1 before any run): state is
        loaded from each key's newest row below it."""
        ex = self.execution
        if ex is None:
            return 1
        workers, resume = self.executions[ex]
        return min(max(self.fronts.get((ex, w), resume), resume) for w in range(workers))

    def resumable_rows(self, before: int | None = None) -> dict[tuple[str, str], SnapRow]:
        """Per ``(step_id, state_key)``, its newest row below ``before`` (default:
        :meth:`resume_epoch`): what a resume loads (discard rows included)."""
        limit = self.resume_epoch() if before is None else before
        out: dict[tuple[str, str], SnapRow] = {}
        for row in self.snaps:
            if row.epoch < limit:
                key = (row.step_id, row.state_key)
                best = out.get(key)
                if best is None or row.epoch > best.epoch:
                    out[key] = row
        return out


def partition_files(recovery_dir: str | Path) -> list[Path]:
    """``part-*.sqlite3`` files of a directory, by partition index."""
    root = Path(recovery_dir)
    if not root.is_dir():
        return []
    found = [(int(m["index"]), p) for p in root.iterdir() if (m := PART_FILE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def connect_ro(path: Path, timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``) that waits ``timeout_s`` for locks."""
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        msg = f"cannot open recovery partition {path} read-only: {exc}"
        raise RecoveryError(msg) from exc
    return conn


def read_partitions(
    recovery_dir: str | Path,
    *,
    state_keys: Collection[str] | None = None,
    with_snaps: bool = True,
) -> PartitionsView:
    """Read the recovery partitions of ``recovery_dir``.

    ``state_keys`` limits the ``snaps`` rows read to those keys (shard names);
    ``with_snaps=False`` reads the progress tables only.
    """
    view = PartitionsView(files=partition_files(recovery_dir))
    keys = None if state_keys is None else sorted(set(state_keys))
    for path in view.files:
        conn = connect_ro(path)
        try:
            conn.execute("BEGIN")
            _read_one(conn, path, view, keys, with_snaps)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            msg = f"cannot read recovery partition {path}: {exc}"
            raise RecoveryError(msg) from exc
        finally:
            conn.close()
    return view


def _read_one(
    conn: sqlite3.Connection,
    path: Path,
    view: PartitionsView,
    keys: list[str] | None,
    with_snaps: bool,
) -> None:
    parts = conn.execute("SELECT part_index, part_count FROM parts").fetchall()
    if not parts:
        msg = f"{path} is not an initialised recovery partition (no parts row)"
        raise RecoveryError(msg)
    index = int(parts[0][0])
    view.part_files[index] = path
    for part_index, part_count in parts:
        view.part_indexes.add(int(part_index))
        view.part_counts.add(int(part_count))
    for ex, workers, resume in conn.execute("SELECT ex_num, worker_count, resume_epoch FROM exs"):
        view.executions[int(ex)] = (int(workers), int(resume))
    for ex, worker, frontier in conn.execute(
        "SELECT ex_num, worker_index, worker_frontier FROM fronts"
    ):
        key = (int(ex), int(worker))
        view.fronts[key] = max(view.fronts.get(key, frontier), int(frontier))
        view.part_fronts[index] = max(view.part_fronts.get(index, 0), int(frontier))
    for part_index, epoch in conn.execute("SELECT part_index, commit_epoch FROM commits"):
        view.commits[int(part_index)] = int(epoch)
    if not with_snaps:
        return
    sql = "SELECT step_id, state_key, snap_epoch, ser_change FROM snaps"
    if keys is None:
        rows = conn.execute(sql)
    else:
        marks = ",".join("?" * len(keys))
        rows = conn.execute(f"{sql} WHERE state_key IN ({marks})", keys)
    for step_id, state_key, epoch, data in rows:
        view.snaps.append(SnapRow(str(step_id), str(state_key), int(epoch), data, index))
