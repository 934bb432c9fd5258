"""What a shard logic calls when recovery is on: :class:`ShardCheckpointer`.

One per shard logic. In ``snapshot()`` the logic calls
:meth:`ShardCheckpointer.snapshot` with its store and ``joiner.to_state()``;
the result is what ``snapshot()`` returns. In ``builder(resume_state)`` the
logic calls :func:`restore_shard` to clone the referenced checkpoint into the
shard's working directory, opens its store there, builds the joiner with
``state=snapshot.joiner_state`` and keeps ``ShardCheckpointer(..., resume=snapshot)``.

A snapshot whose joiner counters equal those of the last checkpoint reuses that
checkpoint instead of taking a new one: the store only changes through inserts
(``stored``), evictions (``evicted_*``) and match flags (``pairs``), all
counted, so equal counters mean an unchanged store. Shards that only saw
watermark heartbeats in an epoch then cost a JSON dump, not a flush.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from recovery.checkpoints import Checkpointable, CheckpointStore
from recovery.errors import IncompatibleRecoveryError
from recovery.identity import JoinIdentity
from recovery.snapshot import ShardSnapshotV1, check_shard_name


def _counters_key(joiner_state: dict[str, Any]) -> str:
    return json.dumps(joiner_state["counters"], sort_keys=True)


class ShardCheckpointer:
    """Takes one shard's snapshots: a checkpoint (or a reused one) plus the
    joiner's state, as a :class:`~recovery.snapshot.ShardSnapshotV1`."""

    def __init__(
        self,
        checkpoints: CheckpointStore,
        shard: str,
        fingerprint: str,
        *,
        resume: ShardSnapshotV1 | None = None,
        reuse_unchanged: bool = True,
    ) -> None:
        self.checkpoints = checkpoints
        self.shard = check_shard_name(shard)
        self.fingerprint = fingerprint
        self.reuse_unchanged = reuse_unchanged
        # Above the resumed seq and every checkpoint a crashed execution left.
        self._next = checkpoints.next_seq(shard, resume.seq if resume is not None else 0)
        self._last_ref = resume.checkpoint if resume is not None else None
        self._last_counters = (
            _counters_key(resume.joiner_state) if resume is not None else None
        )
        #: How many snapshots took a new checkpoint / reused the last one.
        self.taken = 0
        self.reused = 0

    def snapshot(self, store: Checkpointable, joiner_state: dict[str, Any]) -> ShardSnapshotV1:
        """The shard's snapshot now (call from ``snapshot()``, at an epoch's close)."""
        seq = self._next
        self._next += 1
        counters = _counters_key(joiner_state)
        if self.reuse_unchanged and self._last_ref is not None and counters == self._last_counters:
            ref = self._last_ref
            self.reused += 1
        else:
            ref = self.checkpoints.take(self.shard, store, seq)
            self._last_ref, self._last_counters = ref, counters
            self.taken += 1
        return ShardSnapshotV1.create(self.shard, seq, ref, joiner_state, self.fingerprint)


def restore_shard(
    checkpoints: CheckpointStore,
    snapshot: ShardSnapshotV1,
    work_dir: str | os.PathLike[str],
    identity: JoinIdentity,
) -> Path:
    """Clone ``snapshot``'s checkpoint into ``work_dir`` (call from the builder).

    Refuses a snapshot taken under another join configuration or shard count.
    Returns the clone's path, to be opened with ``RocksStore(path, budget)``.
    """
    if snapshot.fingerprint != identity.fingerprint:
        msg = (
            f"shard {snapshot.shard} was snapshotted under configuration "
            f"{snapshot.fingerprint}, this run is {identity.fingerprint} "
            f"({identity.describe()}): refusing to resume it"
        )
        raise IncompatibleRecoveryError(msg)
    return checkpoints.restore(snapshot.checkpoint, work_dir)
