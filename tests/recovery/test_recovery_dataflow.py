"""Recovery through a real Bytewax 0.21.1 dataflow (``run_main`` with a
``RecoveryConfig``): a stateful_batch logic per shard snapshots
:class:`ShardSnapshotV1` values pointing at real RocksDB checkpoints, cleans up
after itself, crashes (``TestingSource.ABORT``), resumes, is inspected and
replayed from a copy.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSink, TestingSource, run_main

from joins import Event, IntervalJoiner, JoinSpec, content_id
from recovery.gc import collect_garbage, referenced_checkpoints
from recovery.identity import JoinIdentity
from recovery.inspect import format_snapshot, resumable_snapshot
from recovery.layout import RecoveryLayout, init_recovery_dir, open_recovery_dir
from recovery.partitions import read_partitions
from recovery.replay import copy_for_replay
from recovery.shard import ShardCheckpointer, restore_shard
from recovery.snapshot import ShardSnapshotV1
from state.store import RocksStore
from tests.budgets import small_budget

SPEC = JoinSpec(lower_ms=0, upper_ms=40, how="left", max_out_of_orderness_ms=0,
                idle_timeout_ms=10**9)
SHARDS = ("sA", "sB", "sC")
IDENTITY = JoinIdentity(SPEC, len(SHARDS))
PARTITIONS = ("left:0", "right:0")
BUDGET = small_budget()

Item = tuple[str, Event]


@dataclass
class Ctx:
    layout: RecoveryLayout
    state_dir: Path
    gc_every: int = 3
    #: False: snapshots cost nothing (Bytewax calls snapshot() even without recovery).
    recovery: bool = True
    #: (shard, seq, complete checkpoint dirs of the shard after its clean-up)
    observed: list[tuple[str, int, int]] = field(default_factory=list)


class JoinLogic(StatefulBatchLogic[Item, str, ShardSnapshotV1]):
    """A trimmed ShardLogic: an interval joiner over a RocksStore, with recovery."""

    def __init__(self, ctx: Ctx, resume: ShardSnapshotV1 | None) -> None:
        self.ctx = ctx
        self.shard = ""
        if resume is not None:
            self._open(resume.shard, resume)

    def _open(self, shard: str, resume: ShardSnapshotV1 | None) -> None:
        ctx, self.shard = self.ctx, shard
        work = ctx.state_dir / shard
        if resume is None:
            shutil.rmtree(work, ignore_errors=True)
            self.store = RocksStore(work, BUDGET)
        else:
            self.store = RocksStore(
                restore_shard(ctx.layout.checkpoints, resume, work, IDENTITY), BUDGET
            )
        state = None if resume is None else resume.joiner_state
        self.joiner = IntervalJoiner(SPEC, self.store, PARTITIONS, lambda: 0, state=state)
        self.checkpointer = ShardCheckpointer(
            ctx.layout.checkpoints, shard, IDENTITY.fingerprint, resume=resume
        )

    def on_batch(self, values: list[Item]) -> tuple[Iterable[str], bool]:
        if not self.shard:
            self._open(values[0][0], None)
        out = self.joiner.process([e for _, e in values])
        ids = [f"m:{m.left.ts}:{m.right.ts}:{m.left.key}" for m in out.matched]
        ids += [f"u:{u.event.ts}:{u.event.key}" for u in out.unmatched]
        return ids, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[str], bool]:
        out = self.joiner.close()
        return [f"u:{u.event.ts}:{u.event.key}" for u in out.unmatched], StatefulBatchLogic.RETAIN

    def snapshot(self) -> ShardSnapshotV1 | None:  # type: ignore[override]
        if not self.ctx.recovery:
            return None
        snap = self.checkpointer.snapshot(self.store, self.joiner.to_state())
        if snap.seq % self.ctx.gc_every == 0:
            collect_garbage(self.ctx.layout, shards=[self.shard])
            dirs = [c for c in self.ctx.layout.checkpoints.dirs(self.shard)
                    if c.state == "complete"]
            self.ctx.observed.append((self.shard, snap.seq, len(dirs)))
        return snap


def events(n: int) -> list[Item]:
    """n left and n right events over 12 keys, right 0..45 ms after left."""
    out: list[Item] = []
    for i in range(n):
        key = f"k{i % 12}"
        shard = SHARDS[i % len(SHARDS)]
        for side, ts in (("left", 10 * i), ("right", 10 * i + (i * 7) % 46)):
            eid = content_id(f"{side}{key}{ts}".encode())
            out.append((shard, Event(side, key, ts, eid, {"i": i}, f"{side}:0", i)))  # type: ignore[arg-type]
    return out


def build(ctx: Ctx, items: list[Any], sink: list[str]) -> Dataflow:
    flow = Dataflow("rt")
    stream = op.input("inp", flow, TestingSource(items, batch_size=4))
    keyed = op.map("key", stream, lambda item: (item[0], item))  # values keep their shard
    joined = op.stateful_batch("join", keyed, lambda resume: JoinLogic(ctx, resume))
    op.output("out", op.flat_map("ids", joined, lambda kv: [kv[1]]), TestingSink(sink))
    return flow


def new_ctx(root: Path, name: str = "rec") -> Ctx:
    layout = init_recovery_dir(root / name, IDENTITY, partitions=2)
    subprocess.run([sys.executable, *layout.bytewax_init_command()], check=True)
    return Ctx(layout, root / f"{name}-state")


def run(ctx: Ctx, items: list[Any], sink: list[str]) -> None:
    config = RecoveryConfig(str(ctx.layout.dir)) if ctx.recovery else None  # type: ignore[no-untyped-call]
    run_main(  # type: ignore[no-untyped-call]
        build(ctx, items, sink), epoch_interval=timedelta(0), recovery_config=config
    )


def expected(items: list[Item], tmp_path: Path) -> set[str]:
    """The output of an uninterrupted run without recovery."""
    ctx = new_ctx(tmp_path, "reference")
    ctx.recovery = False
    sink: list[str] = []
    run(ctx, [i for i in items if not isinstance(i, TestingSource.ABORT)], sink)
    assert len(sink) == len(set(sink))
    return set(sink)


def digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    "pairs",
    [pytest.param(90, id="45-epochs"),
     pytest.param(900, id="450-epochs", marks=pytest.mark.slow)],
)
def test_long_run_keeps_checkpoints_bounded_by_retained_snapshots(
    tmp_path: Path, pairs: int
) -> None:
    ctx = new_ctx(tmp_path)
    sink: list[str] = []
    items = events(pairs)  # 2 items a pair, batches of 4: an epoch per 2 pairs
    run(ctx, items, sink)
    assert set(sink) == expected(items, tmp_path)
    layout = ctx.layout
    seqs = {shard: max(s for sh, s, _ in ctx.observed if sh == shard) for shard in SHARDS}
    assert min(seqs.values()) >= pairs // 2 // len(SHARDS)  # many epochs per shard ...
    worst = max(n for _, _, n in ctx.observed)
    assert worst <= 4, ctx.observed  # ... and never more than a handful of checkpoints
    # On disk: what retained rows reference, plus what the shards took since
    # their last clean-up (at most gc_every each).
    refs = referenced_checkpoints(read_partitions(layout.dir))
    referenced = {r for rs in refs.values() for r in rs}
    complete = {c.ref for c in layout.checkpoints.dirs() if c.state == "complete"}
    assert referenced <= complete
    assert len(complete - referenced) <= len(SHARDS) * ctx.gc_every
    # Every row is durable now, so even a non-quiescent clean-up leaves exactly
    # what the retained rows name; a quiescent one finds nothing more.
    collect_garbage(layout)
    assert {c.ref for c in layout.checkpoints.dirs()} == referenced
    assert collect_garbage(layout, quiescent=True).deleted == ()
    assert {c.state for c in layout.checkpoints.dirs()} == {"complete"}


def test_crash_resume_inspect_and_replay(tmp_path: Path) -> None:
    items: list[Any] = events(60)
    items.insert(70, TestingSource.ABORT())
    want = expected(items, tmp_path)
    ctx = new_ctx(tmp_path)
    first: list[str] = []
    run(ctx, items, first)  # aborts after 70 items
    assert 0 < len(first) < len(want)

    snap = resumable_snapshot(ctx.layout.dir)
    assert snap.resume_epoch > 1
    assert {s.shard for s in snap.shards} == set(SHARDS)
    assert snap.missing == ()
    assert all(s.checkpoint_bytes and s.checkpoint_bytes > 0 for s in snap.shards)
    assert sum(s.entries["left"] + s.entries["right"] for s in snap.shards) > 0
    assert snap.other_rows == 1  # the input's position
    text = format_snapshot(snap)
    assert f"resume epoch   {snap.resume_epoch}" in text
    assert "shards=3, how=left, lower=0ms, upper=40ms" in text
    for s in snap.shards:
        assert f"{s.shard} " in text
        assert s.checkpoint in text

    # Replay: a copy that a run resumes from without touching the original.
    before = digest(ctx.layout.dir)
    copy = copy_for_replay(ctx.layout.dir, tmp_path / "replay")
    assert (copy.resume_epoch, copy.shards) == (snap.resume_epoch, 3)
    assert digest(ctx.layout.dir) == before
    replay_ctx = Ctx(open_recovery_dir(copy.recovery_dir), tmp_path / "replay-state")
    replayed: list[str] = []
    run(replay_ctx, items, replayed)
    assert digest(ctx.layout.dir) == before
    assert set(first) | set(replayed) == want

    # Resume the original: builder(resume_state) clones each shard's checkpoint.
    second: list[str] = []
    run(ctx, items, second)
    assert set(first) | set(second) == want
    assert set(second) == set(replayed)
    collect_garbage(ctx.layout, quiescent=True)
    collect_garbage(replay_ctx.layout, quiescent=True)
    for layout in (ctx.layout, replay_ctx.layout):
        refs = referenced_checkpoints(read_partitions(layout.dir))
        assert {c.ref for c in layout.checkpoints.dirs()} == {r for v in refs.values() for r in v}


def test_resume_with_another_configuration_is_refused(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    run(ctx, [*events(5), TestingSource.ABORT()], [])
    other = JoinIdentity(JoinSpec(upper_ms=40, how="inner"), 3)
    with pytest.raises(Exception, match="initialised for shards=3, how=left"):
        init_recovery_dir(ctx.layout.dir, other, partitions=2)
