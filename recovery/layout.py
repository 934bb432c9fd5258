"""The recovery directory: its layout, ``run_manifest.json`` and compatibility.

::

    <recovery-dir>/
        run_manifest.json         what this store is for (written once, at first use)
        part-0.sqlite3 ...        Bytewax's recovery partitions
        checkpoints/<shard>/...   RocksDB checkpoints (see recovery.checkpoints)

``recovery/`` never imports Bytewax: the SQLite partitions are created by the
caller (``dataflows/``) with ``python -m bytewax.recovery DIR N`` when
:attr:`RecoveryLayout.needs_partitions` is true, right after
:func:`init_recovery_dir`. The partition count is fixed by that first call;
later ``partitions`` arguments are ignored (the manifest keeps the first).

The manifest records the :class:`~recovery.identity.JoinIdentity` (join spec
and shard count), where the checkpoints live (``checkpoint_root``: relative
to the directory, or absolute), the input files it read
(:class:`~recovery.inputs.InputFiles`; absent in stores created before they
were recorded) and the caller's ``settings``: every setting that changes the
output, as flag -> value (absent in older stores; compared by the caller,
:mod:`dataflows.config.identity`). :func:`check_compatible` refuses a resume with another
identity, naming both; :func:`recovery.inputs.check_inputs` refuses changed
input files, and :func:`record_inputs` updates them after a resume was allowed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recovery.checkpoints import CheckpointStore
from recovery.errors import IncompatibleRecoveryError, RecoveryError
from recovery.identity import JoinIdentity
from recovery.inputs import InputFiles
from recovery.partitions import partition_files
from recovery.trust import make_private_dir

MANIFEST_NAME = "run_manifest.json"
LOCK_NAME = ".run.lock"
MANIFEST_VERSION = 1
DEFAULT_CHECKPOINT_ROOT = "checkpoints"


@dataclass(frozen=True, slots=True)
class RunManifest:
    """``run_manifest.json``: what a recovery directory was initialised for."""

    identity: JoinIdentity
    partitions: int
    checkpoint_root: str = DEFAULT_CHECKPOINT_ROOT
    #: The input files, as of the latest start (``None``: not recorded).
    inputs: InputFiles | None = None
    #: Every setting that changes the output, as ``(flag, value)`` pairs chosen
    #: by the caller (``None``: written before settings were recorded).
    settings: tuple[tuple[str, str], ...] | None = None
    #: True once every partition file exists (set after ``bytewax.recovery``
    #: created them): from then on a missing partition is damage, not an
    #: interrupted initialisation. ``None``: an older store.
    partitions_ready: bool | None = None
    #: The smallest commit delay of any execution so far, in epochs
    #: (``ceil(backup_interval / epoch_interval)``): a partition's commit of
    #: epoch ``c`` proves it holds every row below ``c + delay + 1``
    #: (:mod:`recovery.integrity`). ``None``: not recorded (taken as 0).
    commit_delay_epochs: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.partitions, int) or self.partitions <= 0:
            msg = f"recovery partitions must be a positive integer, got {self.partitions!r}"
            raise RecoveryError(msg)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "fingerprint": self.identity.fingerprint,
            **self.identity.to_json(),
            "partitions": self.partitions,
            "checkpoint_root": self.checkpoint_root,
        }
        if self.inputs is not None:
            data["inputs"] = self.inputs.to_json()
        if self.settings is not None:
            data["settings"] = dict(self.settings)
        if self.partitions_ready is not None:
            data["partitions_ready"] = self.partitions_ready
        if self.commit_delay_epochs is not None:
            data["commit_delay_epochs"] = self.commit_delay_epochs
        return data

    @property
    def settings_map(self) -> dict[str, str] | None:
        """:attr:`settings` as a dict, in recorded order."""
        return None if self.settings is None else dict(self.settings)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "manifest") -> RunManifest:
        if data.get("version") != MANIFEST_VERSION:
            msg = f"{source}: unsupported manifest version {data.get('version')!r}"
            raise RecoveryError(msg)
        try:
            manifest = cls(
                JoinIdentity.from_json(data),
                int(data["partitions"]),
                str(data["checkpoint_root"]),
                InputFiles.from_json(data["inputs"]) if "inputs" in data else None,
                _settings_from_json(data.get("settings")),
                _optional(data, "partitions_ready", bool),
                _optional(data, "commit_delay_epochs", int),
            )
        except (KeyError, TypeError, ValueError, RecoveryError) as exc:
            msg = f"{source}: malformed manifest: {exc}"
            raise RecoveryError(msg) from exc
        if data.get("fingerprint") != manifest.identity.fingerprint:
            msg = f"{source}: fingerprint does not match the recorded configuration"
            raise RecoveryError(msg)
        return manifest


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is not None and (not isinstance(value, kind) or (
        kind is int and isinstance(value, bool)
    )):
        msg = f"{key} must be a {kind.__name__}, got {value!r}"
        raise ValueError(msg)
    return value


def _settings_from_json(data: Any) -> tuple[tuple[str, str], ...] | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        msg = f"settings must map names to strings, got {data!r}"
        raise ValueError(msg)
    return tuple(data.items())


class RecoveryLayout:
    """Paths of one recovery directory, and its manifest."""

    def __init__(self, directory: str | os.PathLike[str], manifest: RunManifest) -> None:
        self.dir = Path(directory)
        self.manifest = manifest

    @property
    def identity(self) -> JoinIdentity:
        return self.manifest.identity

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_NAME

    @property
    def checkpoint_root(self) -> Path:
        return self.dir / self.manifest.checkpoint_root  # an absolute root wins in `/`

    @property
    def checkpoints(self) -> CheckpointStore:
        return CheckpointStore(self.checkpoint_root)

    def partition_files(self) -> list[Path]:
        return partition_files(self.dir)

    @property
    def needs_partitions(self) -> bool:
        """True until ``python -m bytewax.recovery DIR N`` has created the files."""
        return not self.partition_files()

    def bytewax_init_command(self) -> list[str]:
        """The arguments after ``python`` that create the SQLite partitions."""
        return ["-m", "bytewax.recovery", str(self.dir), str(self.manifest.partitions)]

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[None]:
        """Held (shared) by every process of a run for as long as it uses the
        directory: a quiescent clean-up then refuses to run. ``flock`` based, so
        it is only seen by processes on the same host."""
        with _flock(self.dir / LOCK_NAME, fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def quiescent_lock(self) -> Iterator[None]:
        """Exclusive: proves that no process holding :meth:`run_lock` runs, and
        keeps a run from starting until released. Raises if a run holds it."""
        try:
            with _flock(self.dir / LOCK_NAME, fcntl.LOCK_EX | fcntl.LOCK_NB):
                yield
        except BlockingIOError as exc:
            msg = f"a run is using the recovery directory {self.dir} (it holds {LOCK_NAME})"
            raise RecoveryError(msg) from exc


@contextlib.contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_manifest(path: Path, manifest: RunManifest) -> None:
    """Write ``manifest`` to ``path`` atomically (a temporary file, synced, then
    renamed): a later start rewrites it, and a crash must leave the old or the new."""
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n"
    try:
        # 0600 whatever the umask: a group-writable manifest is refused on resume.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        msg = f"cannot write {path}: {exc.strerror or exc}"
        raise RecoveryError(msg) from exc


def read_manifest(directory: str | os.PathLike[str]) -> RunManifest | None:
    """The manifest of a recovery directory, ``None`` if it has none."""
    path = Path(directory) / MANIFEST_NAME
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        msg = f"cannot read {path}: {exc}"
        raise RecoveryError(msg) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON: {exc}"
        raise RecoveryError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{path}: expected a JSON object"
        raise RecoveryError(msg)
    return RunManifest.from_json(data, str(path))


def open_recovery_dir(directory: str | os.PathLike[str]) -> RecoveryLayout:
    """An existing recovery directory (for ``snapshots``, ``replay``, clean-up)."""
    manifest = read_manifest(directory)
    if manifest is None:
        msg = f"{directory} is not a streamjoin recovery directory (no {MANIFEST_NAME})"
        raise RecoveryError(msg)
    return RecoveryLayout(directory, manifest)


def check_compatible(manifest: RunManifest, identity: JoinIdentity, where: str = "") -> None:
    """Refuse ``identity`` unless it is the one ``manifest`` was initialised for."""
    recorded = manifest.identity
    if recorded.fingerprint == identity.fingerprint:
        return
    place = f" {where}" if where else ""
    msg = (
        f"this recovery directory{place} was initialised for {recorded.describe()}; "
        f"you asked for {identity.describe()} (differs in: "
        f"{', '.join(recorded.differences(identity))}). Resume with the same "
        "configuration, or use a new recovery directory."
    )
    raise IncompatibleRecoveryError(msg)


def update_manifest(layout: RecoveryLayout, **changes: Any) -> RecoveryLayout:
    """``layout`` with its manifest's fields replaced by ``changes`` (rewritten
    only if something differs). Call it with no run using the directory."""
    manifest = replace(layout.manifest, **changes)
    if manifest == layout.manifest:
        return layout
    write_manifest(layout.manifest_path, manifest)
    return RecoveryLayout(layout.dir, manifest)


def record_inputs(layout: RecoveryLayout, inputs: InputFiles) -> RecoveryLayout:
    """``layout`` with ``inputs`` recorded in its manifest (rewritten only if they
    differ). Call it with no run using the directory, after the check passed."""
    return update_manifest(layout, inputs=inputs)


def record_commit_delay(layout: RecoveryLayout, epochs: int) -> RecoveryLayout:
    """Record that an execution commits ``epochs`` behind its frontier (the
    manifest keeps the smallest delay any execution used)."""
    known = layout.manifest.commit_delay_epochs
    return update_manifest(layout, commit_delay_epochs=epochs if known is None
                           else min(known, epochs))


def record_settings(layout: RecoveryLayout, settings: Mapping[str, str]) -> RecoveryLayout:
    """``layout`` with ``settings`` recorded in its manifest (rewritten only if they
    differ): for stores written before settings were recorded, once the caller
    has checked what it could. Call it with no run using the directory."""
    return update_manifest(layout, settings=tuple(settings.items()))


def init_recovery_dir(
    directory: str | os.PathLike[str],
    identity: JoinIdentity,
    partitions: int,
    *,
    checkpoint_root: str | os.PathLike[str] | None = None,
    inputs: InputFiles | None = None,
    settings: Mapping[str, str] | None = None,
) -> RecoveryLayout:
    """Create a recovery directory at first use, or check an existing one.

    First use: creates the directory, the checkpoint root and the manifest
    (with ``inputs`` and ``settings``, if given). Later: raises
    :class:`~recovery.errors.IncompatibleRecoveryError` if the identity differs;
    ``partitions``, ``checkpoint_root`` and ``inputs`` are then ignored in
    favour of the recorded ones (settings are compared by the caller, who knows
    what they mean; inputs are checked by
    :func:`recovery.inputs.check_inputs`, which needs to know whether the
    store has executed). Either way the caller then runs
    :meth:`RecoveryLayout.bytewax_init_command` if
    :attr:`RecoveryLayout.needs_partitions`.
    """
    root = Path(directory)
    existing = read_manifest(root)
    if existing is not None:
        check_compatible(existing, identity, str(root))
        layout = RecoveryLayout(root, existing)
    else:
        if partition_files(root):
            msg = (
                f"{root} holds recovery partitions but no {MANIFEST_NAME}: it was not "
                "created by streamjoin; refusing to guess its configuration"
            )
            raise RecoveryError(msg)
        manifest = RunManifest(
            identity,
            partitions,
            DEFAULT_CHECKPOINT_ROOT if checkpoint_root is None else os.fspath(checkpoint_root),
            inputs,
            None if settings is None else tuple(settings.items()),
        )
        make_private_dir(root)  # 0700: its rows are unpickled on resume (recovery.trust)
        write_manifest(root / MANIFEST_NAME, manifest)
        layout = RecoveryLayout(root, manifest)
    make_private_dir(layout.checkpoint_root)
    return layout
