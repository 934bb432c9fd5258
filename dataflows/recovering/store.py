"""The recovery store of a run's configuration (issue #4): what it is valid for,
creating it, and checking it before an execution.

On first use the parent (:func:`open_store`, called by
:func:`dataflows.recovering.session.begin`) creates and initialises the
recovery directory (``run_manifest.json`` plus ``python -m bytewax.recovery
DIR N`` with ``N`` = the first run's worker count, at least 2). It refuses a
directory written under other settings (:func:`check_store_settings`: every
setting that changes the output, :mod:`dataflows.config.identity`), and
(:func:`check_store_inputs`) a resume whose input files are not the ones the
store read (:func:`recovery.inputs.check_inputs`: missing, shorter, another
head, another list; grown is fine), both as
:class:`~dataflows.errors.ConfigError` (exit 2, one line).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dataflows.config import (
    RunConfig,
    describe_changes,
    join_settings,
    setting_changes,
    store_settings,
    unrecorded,
)
from dataflows.console import describe_os_error
from dataflows.errors import ConfigError, RunError
from recovery.checkpoints import check_same_filesystem
from recovery.errors import (
    FilesystemMismatchError,
    IncompatibleRecoveryError,
    InputsChangedError,
    RecoveryError,
    UntrustedRecoveryError,
)
from recovery.identity import JoinIdentity
from recovery.inputs import InputFiles, check_inputs
from recovery.integrity import (
    DamagedRecoveryError,
    missing_partitions,
    missing_partitions_message,
)
from recovery.layout import (
    DEFAULT_CHECKPOINT_ROOT,
    RecoveryLayout,
    init_recovery_dir,
    read_manifest,
    record_settings,
    update_manifest,
)
from recovery.partitions import read_partitions
from recovery.trust import check_private, make_private_dir, make_private_file


def check_store_settings(cfg: RunConfig) -> list[str]:
    """Refuse to resume a store written under other settings (ConfigError, one
    line naming each setting with its recorded and its new value; see
    :mod:`dataflows.config.identity`). Returns notes: a store written before
    the settings were recorded has only its join settings checked, and the
    rest is recorded from this start on (:func:`record_store_settings`)."""
    try:
        manifest = read_manifest(cfg.recovery_dir)
    except RecoveryError as exc:
        msg = f"--recovery-dir {cfg.recovery_dir}: {exc}"
        raise RunError(msg) from exc
    if manifest is None:
        return []
    current = store_settings(cfg)
    recorded = manifest.settings_map
    if recorded is None:
        recorded = join_settings(manifest.identity.spec, manifest.identity.shards)
    changes = setting_changes(recorded, current)
    if changes:
        msg = (
            f"the recovery directory {cfg.recovery_dir} holds a run with other settings: "
            f"{describe_changes(changes)}. Its state and outputs were made with the "
            "recorded settings, and a resume with these would mix two interpretations of "
            "the input in one result: run with the recorded settings, or use a new "
            "recovery directory and --out."
        )
        raise ConfigError(msg)
    missing = unrecorded(recorded, current)
    if not missing:
        return []
    return [
        f"recovery: {cfg.recovery_dir} has no record of {', '.join(missing)} (created "
        "before they were recorded): not checked this time, recorded for later resumes"
    ]


def record_store_settings(cfg: RunConfig, layout: RecoveryLayout) -> RecoveryLayout:
    """Record ``cfg``'s settings in a store that lacks them (after the check)."""
    return record_settings(layout, store_settings(cfg))


def identity_of(cfg: RunConfig) -> JoinIdentity:
    """What a recovery directory is valid for: the join spec and the shard count."""
    return JoinIdentity(cfg.spec, cfg.shards)


def input_paths(cfg: RunConfig) -> dict[str, tuple[str, ...]]:
    """Each side's input files in partition order (what the store records)."""
    return {cfg.left.side: cfg.left.paths, cfg.right.side: cfg.right.paths}


def default_partitions(cfg: RunConfig) -> int:
    """Recovery partitions for a new store: the first run's workers, at least 2."""
    return max(2, cfg.workers)


def open_store(cfg: RunConfig, inputs: InputFiles | None = None) -> RecoveryLayout:
    """Create (first use, recording ``inputs``) or check the recovery directory of
    ``cfg``; make sure Bytewax's partitions exist. An incompatible directory is a
    ConfigError."""
    try:
        layout = init_recovery_dir(
            cfg.recovery_dir, identity_of(cfg), default_partitions(cfg), inputs=inputs,
            settings=store_settings(cfg),
        )
    except IncompatibleRecoveryError as exc:
        raise ConfigError(str(exc).replace("\n", " ")) from exc
    if layout.manifest.partitions_ready:
        missing = missing_partitions(layout)
        if missing:  # they existed: lost, not an interrupted initialisation
            raise DamagedRecoveryError(missing_partitions_message(layout, missing))
    elif layout.needs_partitions or not _partitions_complete(layout):
        _init_partitions(layout)
    return update_manifest(layout, partitions_ready=True)


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


def check_filesystems(cfg: RunConfig) -> None:
    """Refuse a ``--state-dir`` on another filesystem than the store's checkpoint
    root (ConfigError; see :func:`recovery.checkpoints.check_same_filesystem`).
    Looks at the nearest existing ancestors, so it runs before anything is created."""
    try:
        manifest = read_manifest(cfg.recovery_dir)
        relative = manifest.checkpoint_root if manifest else DEFAULT_CHECKPOINT_ROOT
        check_same_filesystem(Path(cfg.recovery_dir) / relative, cfg.state_dir)
    except FilesystemMismatchError as exc:
        raise ConfigError(str(exc)) from exc


def check_writable(cfg: RunConfig) -> None:
    """Refuse (:class:`~dataflows.errors.RunError`, one line: the path, why and
    the fix) a ``--out``, ``--state-dir`` or ``--recovery-dir`` that this user
    cannot create or write: on a read-only filesystem, without permission, or
    under a file. Looks at the nearest existing directory, so it runs before
    anything is created (``--out`` naming a file is refused by the output
    directory's own check, as a usage error)."""
    out = Path(cfg.out_dir).absolute()
    out_is_a_file = out.exists() and not out.is_dir()
    for flag, path in (
        ("--out", cfg.out_dir),
        ("--state-dir", cfg.state_dir),
        ("--recovery-dir", cfg.recovery_dir),
    ):
        if not path or (out_is_a_file and Path(path).absolute().is_relative_to(out)):
            continue
        problem = _unwritable(Path(path).absolute())
        if problem is not None:
            shown = "" if problem.filename == path else f"{flag} {path}: "
            msg = shown + describe_os_error(problem, {flag: str(problem.filename)})
            raise RunError(msg)


def _unwritable(path: Path) -> OSError | None:
    if path.exists() and not path.is_dir():
        return None
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        return OSError(errno.EACCES, os.strerror(errno.EACCES), str(existing))
    return None


def check_trusted(cfg: RunConfig) -> None:
    """Refuse a recovery directory that someone else can write (ConfigError; see
    :mod:`recovery.trust`): a resume unpickles its rows."""
    try:
        check_private(cfg.recovery_dir)
    except UntrustedRecoveryError as exc:
        raise ConfigError(str(exc)) from exc


def make_state_dir(cfg: RunConfig) -> None:
    """Create ``--state-dir`` with mode 0700 (the shards' RocksDB files)."""
    try:
        make_private_dir(cfg.state_dir)
    except RecoveryError as exc:
        raise RunError(str(exc)) from exc


def _partitions_complete(layout: RecoveryLayout) -> bool:
    """For stores that do not record ``partitions_ready`` (older ones): an
    incomplete set is an interrupted first initialisation, unless the store
    shows it has run (then it is damage, refused)."""
    missing = missing_partitions(layout)
    try:
        view = read_partitions(layout.dir)
        _ = view.part_count
    except RecoveryError:
        if view_has_executions(layout) or layout.checkpoints.dirs():
            if missing:
                raise DamagedRecoveryError(missing_partitions_message(layout, missing)) from None
            raise
        return False
    return not missing


def view_has_executions(layout: RecoveryLayout) -> bool:
    """Whether the store has run: an execution row, or any row an execution
    writes (if its execution rows were lost with a partition, a resume must be
    refused as damaged, never taken for a fresh start)."""
    try:
        view = read_partitions(layout.dir)
    except RecoveryError:
        return False
    return bool(view.executions or view.fronts or view.commits or view.snaps)


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
            make_private_file(path)  # 0600 whatever the umask (recovery.trust)
            os.replace(path, layout.dir / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
