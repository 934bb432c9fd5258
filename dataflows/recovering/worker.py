"""The workers' side of a recovering run (issue #4): :func:`worker_recovery` and
:func:`recovering_runtime`.

Each process holds the directory's run lock (shared) for its lifetime and
runs ``cluster_main`` with a ``RecoveryConfig``; the epoch interval is
``--snapshot-interval``. A shard resumed by Bytewax (``builder(snapshot)``,
on whichever worker it now hashes to) is a private hard-link clone of its
checkpoint (:func:`recovery.shard.restore_shard`), its joiner rebuilt from
the snapshot's watermarks and counters; ``snapshot()`` returns a
:class:`~recovery.snapshot.ShardSnapshotV1` from
:class:`~recovery.shard.ShardCheckpointer`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dataflows.config import RunConfig
from dataflows.errors import ConfigError
from dataflows.recovering.store import identity_of
from recovery.errors import IncompatibleRecoveryError, RecoveryError
from recovery.layout import LOCK_NAME, open_recovery_dir
from recovery.shard import ShardCheckpointer, restore_shard
from recovery.snapshot import ShardSnapshotV1

if TYPE_CHECKING:
    from dataflows.shard_logic import ShardLogic, ShardRuntime

_LOCK_FDS: list[int] = []


def worker_recovery(cfg: RunConfig) -> Any:
    """For ``cluster_main``: the ``RecoveryConfig`` (``None`` without recovery).
    Takes the directory's run lock (shared) for the rest of this process's life,
    so that no quiescent clean-up runs while it works."""
    if not cfg.recovery_dir:
        return None
    from bytewax.recovery import RecoveryConfig

    fd = os.open(os.path.join(cfg.recovery_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
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
            store = RocksStore(path, budget, bucket_ms=cfg.spec.bucket_ms)
        else:
            if not isinstance(resume, ShardSnapshotV1):
                msg = f"shard {shard}: unexpected resume state {type(resume).__name__}"
                raise RecoveryError(msg)
            store = RocksStore(
                restore_shard(checkpoints, resume, path, identity), budget,
                bucket_ms=cfg.spec.bucket_ms,
            )
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
