"""The parent's side of a recovering execution (issue #4): :func:`begin` and its
:class:`Session`.

:func:`begin` (called by :func:`dataflows.run.run`) checks before it changes
anything: the state directory on the checkpoints' filesystem, the store's
recorded settings (:mod:`dataflows.config.identity`), ``--out``
(:mod:`dataflows.sinks.out_dir`), every CSV input's header
(:func:`check_input_headers`), the store itself (:mod:`dataflows.recovering.store`:
created on first use; its partitions; who can write it; its input files).
Then, with no worker running (quiescent lock), it plans the resume
(:func:`recovery.integrity.plan_resume`: complete and consistent at the
resume epoch, or at ``--resume-epoch``, or refused naming what is missing),
rewinds the store to that epoch (:func:`recovery.prune.rewind`: the rows a
crashed execution wrote at or above it are dropped), refuses a finished run
whose inputs grew, records the input files as they are now (a later resume is
held to these sizes), the settings and the commit delay, and deletes every
checkpoint no retained row references. A fresh store prepares ``OUT`` as a
run without recovery does; a resume keeps ``OUT`` (the file sinks truncate
themselves to their snapshotted positions); a store whose join already
finished (every shard's resumable row is a discard) runs no workers and only
re-summarises.
While the workers run, :class:`~recovery.gc.PeriodicCleanup` deletes
unreferenced checkpoints; after they exit (cleanly or not) one quiescent
round runs (:meth:`Session.end`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dataflows.config import RunConfig
from dataflows.errors import ConfigError, InputError, RunError
from dataflows.recovering.store import (
    check_filesystems,
    check_store_inputs,
    check_store_settings,
    check_trusted,
    check_writable,
    input_paths,
    make_state_dir,
    open_store,
    record_store_settings,
    view_has_executions,
)
from dataflows.shards import shard_names
from dataflows.sinks import check_out_dir, config_path, prepare_out_dir, write_config
from joins.watermark import WM_MAX
from recovery.errors import RecoveryError
from recovery.gc import PeriodicCleanup, collect_garbage
from recovery.inputs import InputFile, grown_files, observe_inputs
from recovery.inspect import ResumableSnapshot, resumable_snapshot
from recovery.integrity import DamagedRecoveryError, EpochOutOfRangeError, plan_resume
from recovery.layout import MANIFEST_NAME, RecoveryLayout, record_commit_delay, record_inputs
from recovery.prune import prune_unloadable_rows, rewind
from recovery.trust import write_private_text

#: The run configuration of the latest execution, kept in the recovery
#: directory (``streamjoin replay`` starts from it).
RUN_CONFIG_NAME = "run_config.json"
#: Suffix of the join step's id (its rows are the shards').
JOIN_STEP_SUFFIX = "interval_join.join"


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


def commit_delay_epochs(cfg: RunConfig) -> int:
    """How many epochs behind its frontier this execution's Bytewax commits (and
    garbage-collects): ``ceil(backup interval / epoch interval)``."""
    return -(-cfg.backup_interval_ms // cfg.epoch_interval_ms)


def _finished(snap: ResumableSnapshot) -> bool:
    """Every shard's logic finished (its resumable row is a discard)."""
    return not snap.shards and any(
        d.split("/", 1)[0].endswith(JOIN_STEP_SUFFIX) for d in snap.discarded
    )


def _ended(snap: ResumableSnapshot) -> bool:
    """The join reached its end: finished, or a shard's watermark is +inf (every
    input closed, everything evicted) though not every shard discarded yet."""
    return _finished(snap) or any(s.watermark_ms >= WM_MAX for s in snap.shards)


def refuse_grown_inputs_of_ended_run(
    cfg: RunConfig, grown: list[tuple[InputFile, InputFile]]
) -> None:
    """A join that reached the end of its inputs cannot take appended records:
    refuse (ConfigError, one line) if any input file grew."""
    if not grown:
        return
    files = "; ".join(
        f"{old.side} input {old.path}: {new.size_bytes - old.size_bytes} bytes more "
        f"({old.size_bytes} read, {new.size_bytes} now)"
        for old, new in grown
    )
    msg = (
        f"the run in the recovery directory {cfg.recovery_dir} has finished (every input "
        "was read to its end and the watermark reached +inf, so every retained event was "
        f"evicted and the outer rows emitted), and its inputs have grown since: {files}. A "
        "finished join cannot take more input exactly: every appended event would be late, "
        "and rows already emitted as unmatched could not be taken back. Start a new run "
        "over the whole inputs with a new --recovery-dir (and a new --out to keep these "
        "results)."
    )
    raise ConfigError(msg)


def _recorded_out_dir(config_file: Path) -> str | None:
    try:
        return os.path.abspath(str(json.loads(config_file.read_text("utf-8"))["out_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def refuse_another_out_dir(cfg: RunConfig) -> None:
    """A store's outputs are in the ``--out`` it ran with: a resume continues
    them from the snapshot's positions, so another ``--out`` would miss all that
    was written before (ConfigError, one line, with the ways out). A copy of
    that directory (moved or copied with the store: its ``.run/config.json``
    names the same ``--out``) is the same outputs, and accepted."""
    previous = _recorded_out_dir(Path(cfg.recovery_dir) / RUN_CONFIG_NAME)
    if previous is None or previous == cfg.out_dir:
        return  # a new store, or one that never recorded it; the same --out
    if _recorded_out_dir(Path(config_path(cfg.out_dir))) == previous:
        return
    msg = (
        f"the recovery directory {cfg.recovery_dir} holds a run whose outputs are in "
        f"{previous}: --out was {previous}, now {cfg.out_dir}. A resume continues those "
        f"outputs from its snapshot, so a new directory would miss what was written "
        f"before it: run with --out {previous}, or start a copy in the new directory with "
        f"streamjoin replay --recovery-dir {cfg.recovery_dir} --out {cfg.out_dir}"
    )
    raise ConfigError(msg)


def check_input_headers(cfg: RunConfig) -> None:
    """Refuse a CSV input whose header the run could not use
    (:class:`~dataflows.errors.InputError`, naming the file and the setting),
    before anything is written."""
    from dataflows.inputs import SourceFormat, check_csv_headers

    for side in (cfg.left, cfg.right):
        fmt = SourceFormat(side.format, side.key_fields, side.time_field, side.time_unit)
        check_csv_headers(side.side, side.paths, fmt)


def begin(cfg: RunConfig) -> Session:
    """Before starting the workers of an execution (see the module docstring)."""
    check_writable(cfg)  # before anything is created
    if not cfg.recovery_dir:
        check_out_dir(cfg)
        check_input_headers(cfg)
        prepare_out_dir(cfg)
        make_state_dir(cfg)
        return Session(cfg, "off")
    check_filesystems(cfg)  # before anything is created
    notes = check_store_settings(cfg)
    refuse_another_out_dir(cfg)
    new_store = not (Path(cfg.recovery_dir) / MANIFEST_NAME).exists()
    if new_store:
        check_out_dir(cfg)  # before the store is created
    check_input_headers(cfg)
    try:
        inputs = observe_inputs(input_paths(cfg))
    except RecoveryError as exc:
        raise InputError(str(exc)) from exc
    if not new_store:
        check_trusted(cfg)  # before reading its partitions: Bytewax unpickles its rows
    layout = open_store(cfg, inputs)
    if new_store:
        check_trusted(cfg)  # e.g. under a directory others can write
    executed = view_has_executions(layout)
    notes += check_store_inputs(cfg, layout, executed)
    if not new_store:
        check_out_dir(cfg)  # after the store's own, more precise, checks
    recorded_inputs = layout.manifest.inputs
    try:
        with layout.quiescent_lock():
            if executed:
                # Complete and consistent, or refused naming what is missing
                # (recovery.integrity); nothing is changed before this check.
                try:
                    plan = plan_resume(
                        layout,
                        shards=shard_names(cfg.shards),
                        is_join_step=lambda step: step.endswith(JOIN_STEP_SUFFIX),
                        requested=cfg.resume_epoch or None,
                    )
                except EpochOutOfRangeError as exc:
                    raise ConfigError(str(exc)) from exc
                if plan.problems:
                    raise DamagedRecoveryError(plan.refusal(cfg.recovery_dir))
                notes += plan.notes
                resume, pruned = rewind(layout, plan.epoch)
            elif cfg.resume_epoch:
                msg = (
                    f"--resume-epoch {cfg.resume_epoch}: the recovery directory "
                    f"{cfg.recovery_dir} has not run yet, so it has no epoch to resume at"
                )
                raise ConfigError(msg)
            else:
                resume, pruned = prune_unloadable_rows(layout)
            snap = resumable_snapshot(layout) if executed else None
            finished = snap is not None and _finished(snap)
            if snap is not None and recorded_inputs is not None and _ended(snap):
                # Before the grown sizes are recorded: a rerun is refused again.
                refuse_grown_inputs_of_ended_run(cfg, grown_files(recorded_inputs, inputs))
            layout = record_inputs(layout, inputs)
            layout = record_store_settings(cfg, layout)
            layout = record_commit_delay(layout, commit_delay_epochs(cfg))
        collect_garbage(layout, quiescent=True)
    except DamagedRecoveryError:
        raise
    except RecoveryError as exc:
        msg = f"--recovery-dir {cfg.recovery_dir}: {exc}"
        raise RunError(msg) from exc
    if not executed:
        prepare_out_dir(cfg)
        mode = "fresh"
    else:
        write_config(cfg)  # keeps the outputs: the sinks truncate to their snapshots
        mode = "finished" if finished else "resume"
    kept = replace(cfg, resume_epoch=0)  # a one-off: replay starts from this file
    write_private_text(layout.dir / RUN_CONFIG_NAME, json.dumps(kept.to_json(), indent=2))
    make_state_dir(cfg)
    session = Session(cfg, mode, layout, resume, pruned, notes=tuple(notes))
    if session.needs_workers:
        interval = min(max(2 * cfg.epoch_interval_ms / 1000.0, 1.0), 30.0)
        session.cleanup = PeriodicCleanup(layout, interval).start()
    return session
