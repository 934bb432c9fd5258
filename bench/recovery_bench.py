"""Recovery benchmark: snapshot time per epoch and resume time at several state sizes.

Not a test. For each size, one shard's :class:`state.store.RocksStore` is filled
with that many retained entries through an :class:`joins.IntervalJoiner` whose
interval is so wide (+-365 days) that nothing is evicted. Then ``--epochs``
epochs run the way a shard with recovery on does:

1. ``--entries-per-epoch`` new events (half left, half right; the right ones
   match retained left entries) through ``IntervalJoiner.process`` in batches
   of ``--batch``;
2. the snapshot, timed: ``ShardCheckpointer.snapshot`` (a RocksDB checkpoint:
   memtable flush plus hard links, under ``.partial``, then renamed);
3. clean-up, timed apart: Bytewax's row write and commit are emulated on real
   recovery partitions (``python -m bytewax.recovery``, ``backup_interval`` 0:
   the new row supersedes the older ones), then ``collect_garbage`` for the
   shard, every ``--gc-every`` snapshots.

Resume is then timed ``--resumes`` times from the last snapshot, as the builder
does it after a crash: ``restore_shard`` (a hard-link clone), ``RocksStore``
open with a fresh block cache, ``IntervalJoiner(state=...)``, and a first probe
(one right event that scans about ten retained left entries). The OS page cache
stays warm, as it does when a process is restarted on the same host.

    .venv/bin/python bench/recovery_bench.py --sizes 1000000,10000000 --dir /work/bench-tmp

Done-when of issue #4: at two state sizes at least 10x apart, snapshot time per
epoch and resume time stay nearly flat while the state grows.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from joins.events import Event, Side, content_id
from joins.joiner import IntervalJoiner
from joins.spec import JoinSpec
from recovery.gc import collect_garbage
from recovery.identity import JoinIdentity
from recovery.layout import RecoveryLayout, init_recovery_dir
from recovery.shard import ShardCheckpointer, restore_shard
from recovery.snapshot import ShardSnapshotV1, encode_snapshot
from state.options import MIB, MemoryBudget, RocksOptions
from state.store import RocksStore

DAY_MS = 24 * 3600 * 1000
#: Wide enough that nothing is evicted during the benchmark, in both directions.
SPEC = JoinSpec(lower_ms=-365 * DAY_MS, upper_ms=365 * DAY_MS, how="left")
SHARD = "shard-0"
PARTITIONS = ("left-0", "right-0")
STEP = "bench.interval_join"
T0_MS = 1_700_000_000_000
#: Event time between consecutive events (10M events span about 28 hours).
STEP_MS = 10
#: Retained entries per key and side: the key space is size / this.
ENTRIES_PER_KEY = 10
CLOCK_MS = T0_MS  # processing time never moves: no partition goes idle


def rss_kib(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process from /proc, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_budget(mib: int) -> MemoryBudget:
    """The process budget, split as the defaults split 256 MiB."""
    total = mib * MIB
    return MemoryBudget(
        RocksOptions(total_bytes=total, write_buffer_bytes=total // 4, memtable_bytes=total // 16)
    )


class EventMaker:
    """Events with event time growing by :data:`STEP_MS`, keys drawn uniformly
    from ``keys`` so that every key holds about :data:`ENTRIES_PER_KEY` entries."""

    def __init__(self, keys: int, seed: int = 42) -> None:
        self.keys = keys
        self.rng = random.Random(seed)
        self.next = 0

    def event(self, side: Side, key_index: int | None = None) -> Event:
        i = self.next
        self.next += 1
        k = self.rng.randrange(self.keys) if key_index is None else key_index
        key = f"user-{k}"
        ts = T0_MS + i * STEP_MS
        record = {"user": key, "ad": f"ad-{i % 997}", "ts": ts, "price": 1.25, "ok": True}
        eid = content_id(f"{side}|{key}|{ts}|{i}".encode())
        return Event(side, key, ts, eid, record, f"{side}-0", i)

    def batch(self, count: int, sides: tuple[Side, ...]) -> list[Event]:
        return [self.event(sides[j % len(sides)]) for j in range(count)]


class BytewaxRows:
    """What Bytewax does with a snapshot after ``snapshot()`` returns it: writes
    its row to the key's partition (Bytewax's upsert), and, ``backup_interval``
    being 0, commits the epoch, which deletes the key's older rows."""

    def __init__(self, layout: RecoveryLayout) -> None:
        subprocess.run([sys.executable, *layout.bytewax_init_command()], check=True)
        self.path = layout.partition_files()[0]

    def write_and_commit(self, epoch: int, snap: ShardSnapshotV1) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (step_id, state_key, snap_epoch) "
                "DO UPDATE SET ser_change = EXCLUDED.ser_change",
                (STEP, snap.shard, epoch, encode_snapshot(snap)),
            )
            conn.execute(
                "DELETE FROM snaps WHERE step_id = ? AND state_key = ? AND snap_epoch < ?",
                (STEP, snap.shard, epoch),
            )
        conn.close()


@dataclass(frozen=True, slots=True)
class EpochResult:
    retained: int
    snapshot_ms: float
    gc_ms: float | None
    checkpoints: int


@dataclass(frozen=True, slots=True)
class ResumeResult:
    clone_ms: float
    open_ms: float
    probe_ms: float
    matches: int

    @property
    def total_ms(self) -> float:
        return self.clone_ms + self.open_ms + self.probe_ms


@dataclass(frozen=True, slots=True)
class SizeResult:
    size: int
    build_s: float
    first_snapshot_ms: float
    epochs: list[EpochResult]
    resumes: list[ResumeResult]
    checkpoint_bytes: int
    checkpoint_own_bytes: int
    state_bytes: int
    peak_rss_kib: int

    @property
    def snapshot_ms(self) -> list[float]:
        return [e.snapshot_ms for e in self.epochs]

    @property
    def gc_ms(self) -> list[float]:
        return [e.gc_ms for e in self.epochs if e.gc_ms is not None]


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def file_stats(path: Path) -> Iterator[os.stat_result]:
    """``os.stat`` of every file under ``path`` (files removed meanwhile skipped)."""
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                yield os.stat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue


def inodes(path: Path) -> set[tuple[int, int]]:
    return {(st.st_dev, st.st_ino) for st in file_stats(path)}


def own_bytes(root: Path, shared_with: Path) -> int:
    """Bytes of the files under ``root`` that are not hard links into ``shared_with``."""
    shared = inodes(shared_with)
    total = 0
    seen: set[tuple[int, int]] = set()
    for st in file_stats(root):
        ino = (st.st_dev, st.st_ino)
        if ino not in shared and ino not in seen:
            seen.add(ino)
            total += st.st_size
    return total


def build(joiner: IntervalJoiner, maker: EventMaker, n: int, batch: int, label: str) -> float:
    """Retain ``n`` left entries through the joiner; returns seconds taken."""
    t0 = last = time.perf_counter()
    done = 0
    while done < n:
        count = min(batch, n - done)
        joiner.process(maker.batch(count, ("left",)))
        done += count
        now = time.perf_counter()
        if now - last >= 10 or done == n:
            last = now
            print(
                f"  [{label} build] {done:>11,}/{n:,}  {done / (now - t0):>8,.0f} entries/s  "
                f"rss {rss_kib('VmRSS') / 1024:,.0f} MiB",
                flush=True,
            )
    return time.perf_counter() - t0


def retained(joiner: IntervalJoiner) -> int:
    return joiner.counters.left.retained + joiner.counters.right.retained


def run_size(size: int, args: argparse.Namespace, root: Path) -> SizeResult:
    label = f"{size:,}"
    budget = make_budget(args.budget_mib)
    identity = JoinIdentity(SPEC, 1)
    layout = init_recovery_dir(root / "recovery", identity, partitions=1)
    rows = BytewaxRows(layout)
    checkpoints = layout.checkpoints
    state_dir = root / "state"
    live_path = state_dir / SHARD
    store = RocksStore(live_path, budget)
    joiner = IntervalJoiner(SPEC, store, PARTITIONS, lambda: CLOCK_MS)
    maker = EventMaker(max(1, size // ENTRIES_PER_KEY))

    build_s = build(joiner, maker, size, args.build_batch, label)
    checkpointer = ShardCheckpointer(checkpoints, SHARD, identity.fingerprint)

    def snapshot_and_clean(epoch: int) -> tuple[ShardSnapshotV1, float, float | None]:
        t0 = time.perf_counter()
        snap = checkpointer.snapshot(store, joiner.to_state())
        snap_ms = ms_since(t0)
        rows.write_and_commit(epoch, snap)
        gc_ms = None
        if epoch % args.gc_every == 0:
            t0 = time.perf_counter()
            collect_garbage(layout, shards=[SHARD])
            gc_ms = ms_since(t0)
        return snap, snap_ms, gc_ms

    # Epoch 0 flushes what the build left in the memtable: reported on its own.
    snap, first_ms, _ = snapshot_and_clean(0)
    print(f"  [{label}] first snapshot after the build: {first_ms:.1f} ms", flush=True)

    epochs: list[EpochResult] = []
    for epoch in range(1, args.epochs + 1):
        left = args.entries_per_epoch
        while left > 0:
            count = min(args.batch, left)
            joiner.process(maker.batch(count, ("left", "right")))
            left -= count
        snap, snap_ms, gc_ms = snapshot_and_clean(epoch)
        n_ckpt = sum(1 for c in checkpoints.dirs(SHARD) if c.state == "complete")
        epochs.append(EpochResult(retained(joiner), snap_ms, gc_ms, n_ckpt))
        gc_text = "-" if gc_ms is None else f"{gc_ms:6.1f} ms"
        print(
            f"  [{label} epoch {epoch:>3}] retained {retained(joiner):>11,}  "
            f"snapshot {snap_ms:6.1f} ms  clean-up {gc_text}  checkpoints on disk {n_ckpt}",
            flush=True,
        )

    state_bytes = store.stats().disk_bytes
    checkpoint_bytes = checkpoints.disk_bytes()
    checkpoint_own = own_bytes(checkpoints.root, live_path)
    store.close()  # the process is gone; a new one resumes from `snap`
    expected = snap.entries["left"] + snap.entries["right"]

    resumes: list[ResumeResult] = []
    probe_key = maker.rng.randrange(maker.keys)
    for rep in range(1, args.resumes + 1):
        work_dir = root / "resumed" / SHARD
        shutil.rmtree(work_dir, ignore_errors=True)
        fresh_budget = make_budget(args.budget_mib)  # a new process: a cold block cache
        t0 = time.perf_counter()
        path = restore_shard(checkpoints, snap, work_dir, identity)
        t1 = time.perf_counter()
        resumed_store = RocksStore(path, fresh_budget)
        resumed = IntervalJoiner(
            SPEC, resumed_store, PARTITIONS, lambda: CLOCK_MS, state=snap.joiner_state
        )
        t2 = time.perf_counter()
        out = resumed.process([maker.event("right", probe_key)])
        t3 = time.perf_counter()
        count = resumed_store.count("left") + resumed_store.count("right")
        resumed_store.close()
        if count != expected + 1:
            msg = f"resumed store holds {count:,} entries, expected {expected + 1:,}"
            raise RuntimeError(msg)
        result = ResumeResult(
            (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000, len(out.matched)
        )
        resumes.append(result)
        print(
            f"  [{label} resume {rep}] clone {result.clone_ms:6.1f} ms  "
            f"open {result.open_ms:6.1f} ms  first probe {result.probe_ms:6.1f} ms "
            f"({result.matches} matches)  total {result.total_ms:6.1f} ms",
            flush=True,
        )

    return SizeResult(
        size=size,
        build_s=build_s,
        first_snapshot_ms=first_ms,
        epochs=epochs,
        resumes=resumes,
        checkpoint_bytes=checkpoint_bytes,
        checkpoint_own_bytes=checkpoint_own,
        state_bytes=state_bytes,
        peak_rss_kib=rss_kib("VmHWM"),
    )


def print_table(results: list[SizeResult]) -> None:
    med = statistics.median
    header = (
        f"{'size':>12} {'retained at end':>15} {'snap med':>9} {'snap p90':>9} "
        f"{'snap max':>9} {'clean-up med':>12} {'resume med':>11} {'ckpt disk':>10} "
        f"{'ckpt own':>9} {'state disk':>11} {'peak RSS':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        gc = f"{med(r.gc_ms):9.1f} ms" if r.gc_ms else f"{'-':>12}"
        print(
            f"{r.size:>12,} {r.epochs[-1].retained:>15,} {med(r.snapshot_ms):6.1f} ms "
            f"{p90(r.snapshot_ms):6.1f} ms {max(r.snapshot_ms):6.1f} ms {gc} "
            f"{med([x.total_ms for x in r.resumes]):8.1f} ms "
            f"{r.checkpoint_bytes / MIB:6.1f} MiB {r.checkpoint_own_bytes / MIB:5.1f} MiB "
            f"{r.state_bytes / MIB:7.1f} MiB {r.peak_rss_kib / 1024:5.0f} MiB"
        )
    print()
    print(
        f"{'size':>12} {'build':>9} {'first snap':>11} {'clone med':>10} "
        f"{'open med':>9} {'probe med':>10} {'resume p90':>11}"
    )
    for r in results:
        print(
            f"{r.size:>12,} {r.build_s:7.0f} s {r.first_snapshot_ms:8.1f} ms "
            f"{med([x.clone_ms for x in r.resumes]):7.1f} ms "
            f"{med([x.open_ms for x in r.resumes]):6.1f} ms "
            f"{med([x.probe_ms for x in r.resumes]):7.1f} ms "
            f"{p90([x.total_ms for x in r.resumes]):8.1f} ms"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]

        def ratio(f: Callable[[SizeResult], float]) -> str:
            return f"{f(large) / f(small):.2f}x"

        print()
        print(
            f"large/small ({large.size:,} / {small.size:,} entries, "
            f"state disk {ratio(lambda r: r.state_bytes)}):"
        )
        print(
            f"  snapshot median {ratio(lambda r: med(r.snapshot_ms))}, "
            f"p90 {ratio(lambda r: p90(r.snapshot_ms))}"
        )
        print(f"  resume median   {ratio(lambda r: med([x.total_ms for x in r.resumes]))}")
    print()
    print(
        "snap: ShardCheckpointer.snapshot per epoch (flush + hard links); clean-up: "
        "collect_garbage of the shard; resume: restore_shard + open + joiner + first probe;"
    )
    print(
        "ckpt disk: checkpoint root after the last clean-up, hard-linked files once; "
        "ckpt own: of that, bytes not shared with the live state; state disk: live SST + WAL."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes",
        default="1000000,10000000",
        help="retained entries of the shard, comma-separated, smallest first (default %(default)s)",
    )
    ap.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="parent of the temporary data (default: the system's tmp)",
    )
    ap.add_argument(
        "--budget-mib", type=int, default=256, help="RocksDB memory budget (default %(default)s)"
    )
    ap.add_argument(
        "--epochs", type=int, default=20, help="timed epochs per size (default %(default)s)"
    )
    ap.add_argument(
        "--entries-per-epoch",
        type=int,
        default=20_000,
        help="new events per epoch, half left, half right (default %(default)s)",
    )
    ap.add_argument(
        "--batch",
        type=int,
        default=1000,
        help="events per joiner batch in epochs (default %(default)s)",
    )
    ap.add_argument(
        "--build-batch",
        type=int,
        default=50_000,
        help="events per joiner batch while building the state (default %(default)s)",
    )
    ap.add_argument(
        "--gc-every", type=int, default=1, help="clean-up every N snapshots (default %(default)s)"
    )
    ap.add_argument(
        "--resumes", type=int, default=5, help="timed resumes per size (default %(default)s)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) <= 0 or args.epochs < 1 or args.resumes < 1 or args.gc_every < 1:
        ap.error("--sizes, --epochs, --resumes and --gc-every must be positive")
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    top = Path(tempfile.mkdtemp(prefix="recovery-bench-", dir=args.dir))
    print(
        f"sizes {', '.join(f'{s:,}' for s in sizes)}; {args.epochs} epochs of "
        f"{args.entries_per_epoch:,} events (batches of {args.batch:,}); budget "
        f"{args.budget_mib} MiB; clean-up every {args.gc_every} snapshot(s); "
        f"{args.resumes} resumes; data under {top}",
        flush=True,
    )
    results: list[SizeResult] = []
    try:
        for size in sizes:
            root = top / f"size-{size}"
            # One process per size: its peak RSS is its own, and no heap or
            # RocksDB memory of an earlier size is left in it.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
                results.append(pool.submit(run_size, size, args, root).result())
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
