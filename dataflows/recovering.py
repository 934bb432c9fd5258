"""Recovery wiring of ``streamjoin run --recovery-dir DIR`` (issue #4).

``recovery/`` holds the pieces (snapshot values, checkpoints, clean-up,
inspection); this module plugs them into the engine:

- **Parent** (:func:`begin`, called by :func:`dataflows.run.run`): creates and
  initialises the recovery directory on first use (``run_manifest.json`` plus
  ``python -m bytewax.recovery DIR N`` with ``N`` = the first run's worker
  count, at least 2), refuses a directory initialised for another join
  configuration or shard count, and a resume whose input files are not the
  ones the store read (:func:`recovery.inputs.check_inputs`: missing, shorter,
  another head, another list; grown is fine), both as
  :class:`~dataflows.errors.ConfigError` (exit 2, one line). Then, with no
  worker running (quiescent lock), it drops the recovery rows a crashed
  execution wrote at or above the resume epoch
  (:func:`recovery.prune.prune_unloadable_rows`), records the input files as
  they are now (a later resume is held to these sizes) and deletes every
  checkpoint no retained row references. A fresh store empties ``OUT`` as a
  run without recovery does; a resume keeps ``OUT`` (the file sinks truncate
  themselves to their snapshotted positions); a store whose join already
  finished (every shard's resumable row is a discard) runs no workers and only
  re-summarises.
  While the workers run, :class:`~recovery.gc.PeriodicCleanup` deletes
  unreferenced checkpoints; after they exit (cleanly or not) one quiescent
  round runs.
- **Workers** (:func:`worker_recovery`, :func:`recovering_runtime`): each
  process holds the directory's run lock (shared) for its lifetime and runs
  ``cluster_main`` with a ``RecoveryConfig``; the epoch interval is
  ``--snapshot-interval``. A shard resumed by Bytewax (``builder(snapshot)``,
  on whichever worker it now hashes to) is a private hard-link clone of its
  checkpoint (:func:`recovery.shard.restore_shard`), its joiner rebuilt from
  the snapshot's watermarks and counters; ``snapshot()`` returns a
  :class:`~recovery.snapshot.ShardSnapshotV1` from
  :class:`~recovery.shard.ShardCheckpointer`.
- **Counters across resumes**: each worker process writes its final counters
  to ``OUT/.stats/ex-<start ns>-w<worker>.jsonl`` (one file per execution and
  worker, :class:`ExecutionStatsSink`); :func:`run_stats` keeps, per shard and
  per source partition, the item of the newest execution (a shard or source
  that reached its end after the resume epoch re-emits its totals in the next
  execution; totals of those that finished before it are kept from the older
  file) and skips a line torn by a kill. Sources snapshot their totals with
  their read position, shards with their joiner state, so the kept items are
  the totals of the whole logical run.
- **Test throttle** (``--read-delay``): :class:`ThrottledSource` sleeps before
  each read of a source partition, so that a small input spans many kills in
  the crash harness. Not for production runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.config import RunConfig
from dataflows.errors import ConfigError, InputError, RunError
from recovery.errors import IncompatibleRecoveryError, InputsChangedError, RecoveryError
from recovery.gc import PeriodicCleanup, collect_garbage
from recovery.identity import JoinIdentity
from recovery.inputs import InputFiles, check_inputs, observe_inputs
from recovery.inspect import resumable_snapshot
from recovery.layout import (
    LOCK_NAME,
    RecoveryLayout,
    init_recovery_dir,
    open_recovery_dir,
    record_inputs,
)
from recovery.partitions import read_partitions
from recovery.prune import prune_unloadable_rows
from recovery.shard import ShardCheckpointer, restore_shard
from recovery.snapshot import ShardSnapshotV1

if TYPE_CHECKING:
    from dataflows.shard_logic import ShardLogic, ShardRuntime

#: The run configuration of the latest execution, kept in the recovery
#: directory (``streamjoin replay`` starts from it).
RUN_CONFIG_NAME = "run_config.json"
#: Stats files of recovering runs: ``ex-<20-digit start ns>-w<3-digit worker>.jsonl``.
STATS_PREFIX = "ex-"
#: Suffix of the join step's id (its rows are the shards').
JOIN_STEP_SUFFIX = "interval_join.join"


def identity_of(cfg: RunConfig) -> JoinIdentity:
    """What a recovery directory is valid for: the join spec and the shard count."""
    return JoinIdentity(cfg.spec, cfg.shards)


def input_paths(cfg: RunConfig) -> dict[str, tuple[str, ...]]:
    """Each side's input files in partition order (what the store records)."""
    return {cfg.left.side: cfg.left.paths, cfg.right.side: cfg.right.paths}


def default_partitions(cfg: RunConfig) -> int:
    """Recovery partitions for a new store: the first run's workers, at least 2."""
    return max(2, cfg.workers)


# -- parent ---------------------------------------------------------------------


@dataclass
class Session:
    """One execution's view of the recovery store (``mode``: ``off``, ``fresh``,
    ``resume`` or ``finished``)."""

    cfg: RunConfig
    mode: str
    layout: RecoveryLayout | None = None
    resume_epoch: int = 1
    pruned_rows: int = 0
    cleanup: PeriodicCleanup | None = None
    #: Lines for the user besides the mode (e.g. inputs that were not checked).
    notes: tuple[str, ...] = ()

    @property
    def needs_workers(self) -> bool:
        return self.mode != "finished"

    def end(self) -> None:
        """Stop the periodic clean-up; one quiescent round (workers are gone)."""
        if self.cleanup is not None:
            self.cleanup.stop(quiescent=True)
            self.cleanup = None

    def describe(self) -> str:
        return "\n".join(line for line in (self._describe_mode(), *self.notes) if line)

    def _describe_mode(self) -> str:
        if self.mode == "fresh":
            return f"recovery: new store {self.cfg.recovery_dir}"
        if self.mode == "resume":
            return (
                f"recovery: resuming {self.cfg.recovery_dir} at epoch {self.resume_epoch}"
                f" ({self.pruned_rows} unloadable row(s) dropped)"
            )
        if self.mode == "finished":
            return f"recovery: {self.cfg.recovery_dir} holds a finished run; summarising it"
        return ""

    def summary(self) -> dict[str, Any] | None:
        """The ``recovery`` block of ``run.json``."""
        if self.mode == "off":
            return None
        return {
            "recovery_dir": self.cfg.recovery_dir,
            "mode": self.mode,
            "resume_epoch": self.resume_epoch,
            "snapshot_interval_ms": self.cfg.epoch_interval_ms,
            "backup_interval_ms": self.cfg.backup_interval_ms,
        }


def open_store(cfg: RunConfig, inputs: InputFiles | None = None) -> RecoveryLayout:
    """Create (first use, recording ``inputs``) or check the recovery directory of
    ``cfg``; make sure Bytewax's partitions exist. An incompatible directory is a
    ConfigError."""
    try:
        layout = init_recovery_dir(
            cfg.recovery_dir, identity_of(cfg), default_partitions(cfg), inputs=inputs
        )
    except IncompatibleRecoveryError as exc:
        raise ConfigError(str(exc).replace("\n", " ")) from exc
    if layout.needs_partitions or not _partitions_complete(layout):
        _init_partitions(layout)
    return layout


def check_store_inputs(cfg: RunConfig, layout: RecoveryLayout, executed: bool) -> list[str]:
    """Refuse to resume ``layout`` from input files other than the ones it read
    (ConfigError, one line); return notes for the user. A store that never
    executed has read nothing: its files are simply recorded again."""
    if not executed:
        return []
    recorded = layout.manifest.inputs
    if recorded is None:
        return [
            f"recovery: {cfg.recovery_dir} has no record of its input files (created "
            "before they were recorded): not checked this time, recorded for later resumes"
        ]
    try:
        check_inputs(recorded, input_paths(cfg), cfg.recovery_dir)
    except InputsChangedError as exc:
        raise ConfigError(str(exc).replace("\n", " ")) from exc
    return []


def _partitions_complete(layout: RecoveryLayout) -> bool:
    try:
        view = read_partitions(layout.dir, with_snaps=False)
        _ = view.part_count
    except RecoveryError:
        # Incomplete: a kill during the first initialisation (nothing ran yet).
        if view_has_executions(layout):
            raise
        return False
    return True


def view_has_executions(layout: RecoveryLayout) -> bool:
    try:
        return bool(read_partitions(layout.dir, with_snaps=False).executions)
    except RecoveryError:
        return False


def _init_partitions(layout: RecoveryLayout) -> None:
    """``python -m bytewax.recovery`` into a scratch directory, then move the
    files in (so a kill never leaves a half-initialised set that looks used)."""
    for path in layout.partition_files():
        path.unlink()
    scratch = Path(tempfile.mkdtemp(prefix=".init-", dir=layout.dir))
    try:
        cmd = [sys.executable, "-m", "bytewax.recovery", str(scratch),
               str(layout.manifest.partitions)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            msg = f"cannot initialise recovery partitions in {layout.dir}: {done.stderr.strip()}"
            raise RunError(msg)
        for path in sorted(scratch.iterdir()):
            os.replace(path, layout.dir / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def begin(cfg: RunConfig, prepare_out_dir: Callable[[RunConfig], None]) -> Session:
    """Before starting the workers of an execution (see the module docstring)."""
    if not cfg.recovery_dir:
        prepare_out_dir(cfg)
        return Session(cfg, "off")
    try:
        inputs = observe_inputs(input_paths(cfg))
    except RecoveryError as exc:
        raise InputError(str(exc)) from exc
    layout = open_store(cfg, inputs)
    executed = view_has_executions(layout)
    notes = check_store_inputs(cfg, layout, executed)
    try:
        with layout.quiescent_lock():
            resume, pruned = prune_unloadable_rows(layout)
            layout = record_inputs(layout, inputs)
        collect_garbage(layout, quiescent=True)
        finished = False
        if executed:
            snap = resumable_snapshot(layout)
            finished = not snap.shards and any(
                d.split("/", 1)[0].endswith(JOIN_STEP_SUFFIX) for d in snap.discarded
            )
    except RecoveryError as exc:
        msg = f"--recovery-dir {cfg.recovery_dir}: {exc}"
        raise RunError(msg) from exc
    if not executed:
        prepare_out_dir(cfg)
        mode = "fresh"
    else:
        _write_out_config(cfg)
        mode = "finished" if finished else "resume"
    (layout.dir / RUN_CONFIG_NAME).write_text(json.dumps(cfg.to_json(), indent=2), "utf-8")
    session = Session(cfg, mode, layout, resume, pruned, notes=tuple(notes))
    if session.needs_workers:
        interval = min(max(2 * cfg.epoch_interval_ms / 1000.0, 1.0), 30.0)
        session.cleanup = PeriodicCleanup(layout, interval).start()
    return session


def _write_out_config(cfg: RunConfig) -> None:
    """On resume: keep the outputs, refresh ``OUT/.run/config.json``."""
    run_dir = os.path.join(cfg.out_dir, ".run")
    os.makedirs(run_dir, exist_ok=True)
    for kind in ("joined", "late", "invalid"):
        os.makedirs(os.path.join(cfg.out_dir, kind), exist_ok=True)
    path = os.path.join(run_dir, "config.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(cfg.to_json(), f, indent=2)
    os.replace(path + ".tmp", path)


# -- workers --------------------------------------------------------------------

_LOCK_FDS: list[int] = []


def worker_recovery(cfg: RunConfig) -> Any:
    """For ``cluster_main``: the ``RecoveryConfig`` (``None`` without recovery).
    Takes the directory's run lock (shared) for the rest of this process's life,
    so that no quiescent clean-up runs while it works."""
    if not cfg.recovery_dir:
        return None
    from bytewax.recovery import RecoveryConfig

    fd = os.open(os.path.join(cfg.recovery_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _LOCK_FDS.append(fd)  # released when the process exits
    return RecoveryConfig(  # type: ignore[no-untyped-call]
        cfg.recovery_dir, backup_interval=timedelta(milliseconds=cfg.backup_interval_ms)
    )


def recovering_runtime(cfg: RunConfig, base: ShardRuntime) -> ShardRuntime:
    """``base`` (the RocksDB runtime) with restore-on-resume and snapshots."""
    from state.options import MemoryBudget
    from state.store import RocksStore

    layout = open_recovery_dir(cfg.recovery_dir)
    identity = identity_of(cfg)
    try:
        from recovery.layout import check_compatible

        check_compatible(layout.manifest, identity, cfg.recovery_dir)
    except IncompatibleRecoveryError as exc:
        raise ConfigError(str(exc)) from exc
    checkpoints = layout.checkpoints
    budget = MemoryBudget.shared()
    checkpointers: dict[str, ShardCheckpointer] = {}
    resumed_s: dict[str, float] = {}
    lock = threading.Lock()

    def open_store_(shard: str, resume: Any) -> Any:
        path = os.path.join(cfg.state_dir, shard)
        t0 = time.perf_counter()
        if resume is None:
            if os.path.exists(path):
                shutil.rmtree(path)
            store = RocksStore(path, budget)
        else:
            if not isinstance(resume, ShardSnapshotV1):
                msg = f"shard {shard}: unexpected resume state {type(resume).__name__}"
                raise RecoveryError(msg)
            store = RocksStore(restore_shard(checkpoints, resume, path, identity), budget)
        checkpointer = ShardCheckpointer(checkpoints, shard, identity.fingerprint, resume=resume)
        with lock:
            checkpointers[shard] = checkpointer
            if resume is not None:
                resumed_s[shard] = time.perf_counter() - t0
        return store

    def snapshotter(logic: ShardLogic) -> ShardSnapshotV1 | None:
        if logic.store is None or logic.joiner is None:
            return None
        checkpointer = checkpointers[logic.shard]
        t0 = time.perf_counter()
        taken = checkpointer.taken
        snap = checkpointer.snapshot(logic.store, logic.joiner.to_state())  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        size = 0
        if checkpointer.taken != taken:
            size = checkpoints.size_of(snap.checkpoint) or 0
        logic.report_snapshot(seconds, size)
        with lock:
            resumed = resumed_s.pop(logic.shard, None)
        if resumed is not None:
            logic.report_resume(resumed)
        return snap

    def resume_shard(resume: Any) -> str:
        return str(resume.shard)

    def resume_joiner_state(resume: Any) -> dict[str, Any] | None:
        state: dict[str, Any] = resume.joiner_state
        return state

    return replace(
        base,
        open_store=open_store_,
        snapshotter=snapshotter,
        resume_shard=resume_shard,
        resume_joiner_state=resume_joiner_state,
    )


# -- final counters across executions ---------------------------------------------


class _StatsFile(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, path: str) -> None:
        self._path = path

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(item, sort_keys=True) + "\n" for item in items)
        with open(self._path, "a", encoding="utf-8") as f:
            f.write(text)


class ExecutionStatsSink(DynamicSink[dict[str, Any]]):
    """Final counters, one file per execution and worker (see :func:`run_stats`)."""

    def __init__(self, directory: str) -> None:
        self._dir = directory
        self._started_ns = time.time_ns()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StatsFile:
        os.makedirs(self._dir, exist_ok=True)
        name = f"{STATS_PREFIX}{self._started_ns:020d}-w{worker_index:03d}.jsonl"
        return _StatsFile(os.path.join(self._dir, name))


def _stats_key(item: dict[str, Any]) -> tuple[str, str] | None:
    kind = item.get("kind")
    if kind == "shard":
        return ("shard", str(item.get("shard")))
    if kind == "source":
        return ("source", str(item.get("partition")))
    return None


def run_stats(cfg: RunConfig) -> list[dict[str, Any]]:
    """The final counters of a run: per shard and source partition, the newest
    execution's item (recovering runs), or every item (runs without recovery)."""
    from dataflows.flow import stats_dir
    from dataflows.sinks import read_stats

    directory = stats_dir(cfg.out_dir)
    if not cfg.recovery_dir:
        return read_stats(directory)
    newest: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    others: list[dict[str, Any]] = []
    if not os.path.isdir(directory):
        return []
    for name in sorted(os.listdir(directory)):
        order = name.split("-w", 1)[0] if name.startswith(STATS_PREFIX) else ""
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            for line in f:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill (its execution re-emits it)
                key = _stats_key(item)
                if key is None:
                    others.append(item)
                    continue
                seen = newest.get(key)
                if seen is None or order >= seen[0]:
                    newest[key] = (order, item)
    return [item for _, item in newest.values()] + others


# -- test throttle ------------------------------------------------------------------


class _ThrottledPartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any], delay_s: float) -> None:
        self._inner = inner
        self._delay_s = delay_s

    def next_batch(self) -> Any:
        time.sleep(self._delay_s)
        return self._inner.next_batch()

    def next_awake(self) -> Any:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class ThrottledSource(FixedPartitionedSource[Any, Any]):
    """A source whose partitions sleep ``delay_ms`` before each read (``--read-delay``:
    makes a small input last long enough for the crash harness; not for production)."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any], delay_ms: int) -> None:
        self._inner = inner
        self._delay_s = delay_ms / 1000.0

    def list_parts(self) -> list[str]:
        return self._inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _ThrottledPartition:
        return _ThrottledPartition(
            self._inner.build_part(step_id, for_part, resume_state), self._delay_s
        )


def throttled(source: FixedPartitionedSource[Any, Any], delay_ms: int) -> Any:
    """``source`` itself, or a :class:`ThrottledSource` when ``delay_ms > 0``."""
    return ThrottledSource(source, delay_ms) if delay_ms > 0 else source


# -- replay: the file sinks' positions ---------------------------------------------


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        msg = f"unexpected global {module}.{name}"
        raise pickle.UnpicklingError(msg)


def sink_positions(recovery_dir: str | os.PathLike[str]) -> dict[tuple[str, str], int]:
    """``(step_id, shard) -> byte position`` of every file-sink partition a resume
    of ``recovery_dir`` would load (the sinks snapshot plain ints)."""
    import io

    view = read_partitions(Path(recovery_dir))
    out: dict[tuple[str, str], int] = {}
    for (step, key), row in view.resumable_rows().items():
        if not step.endswith("_files") or row.data is None:
            continue
        try:
            value = _NoGlobals(io.BytesIO(row.data)).load()
        except (pickle.UnpicklingError, EOFError, ValueError):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            out[(step, key)] = value
    return out
