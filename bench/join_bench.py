"""Join-core benchmark: the joiner over RocksDB shards on a run_bench dataset,
without Bytewax, input decoding or output writing in the timed part (not a test).

Decodes both input files first (untimed), then replays them as the dataflow
would: source batches of ``--batch`` records alternating between the two files,
each split by shard (``dataflows.shards.shard_of``) and handed to that shard's
:class:`joins.IntervalJoiner` with the partition's mark; every shard gets a
heartbeat of all marks every ``--heartbeat-every`` batches; at the end every
joiner is closed. Prints the CPU seconds of the join (process time: the main
thread plus RocksDB's background threads), its wall time and the rows made.

    .venv/bin/python bench/join_bench.py --data bench-runs/data-500000-125000
    .venv/bin/python bench/join_bench.py --data ... --bucket-ms 300000 --profile 30

``--profile N`` prints the N costliest functions (cProfile, cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dataflows.inputs import SourceFormat, read_batches
from dataflows.shards import shard_of
from joins import Event, IntervalJoiner, JoinSpec, PartitionMark
from state.options import MIB, MemoryBudget, RocksOptions
from state.store import RocksStore


def load(path: Path, side: str, partition: str, batch: int) -> list[list[Event]]:
    fmt = SourceFormat("jsonl")
    out: list[list[Event]] = []
    for items, _pos in read_batches(str(path), side, fmt, partition, batch_size=batch):  # type: ignore[arg-type]
        out.append([e for e in items if type(e) is Event])
    return out


def open_store(path: Path, budget: MemoryBudget, bucket_ms: int | None) -> Any:
    if "bucket_ms" in inspect.signature(RocksStore).parameters:  # (older code has none)
        return RocksStore(path, budget, bucket_ms=bucket_ms)
    return RocksStore(path, budget)


class WriteCounter:
    """Counts the operations (puts, deletes, range deletes) the stores write:
    the store's own count (``RocksStore.ops_written``) where it keeps one, else
    (older, pure-Python code) by wrapping its writes."""

    def __init__(self) -> None:
        self._ops = 0
        self._stores: list[Any] = []

    @property
    def ops(self) -> int:
        return self._ops + sum(s.ops_written for s in self._stores)

    def attach(self, store: Any) -> None:
        if hasattr(store, "ops_written"):
            self._stores.append(store)
        elif hasattr(store, "_write"):  # one WriteBatch per _write call
            real = store._write

            def counted(batch: Any) -> None:
                self._ops += batch.len()
                real(batch)

            store._write = counted
        else:  # the layout-1 store: its overlay and two count keys per commit
            real_commit = store.commit

            def counted_commit() -> None:
                if store._pending:
                    self._ops += len(store._pending) + 2
                real_commit()

            store.commit = counted_commit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a run_bench data directory")
    ap.add_argument("--shards", type=int, default=32)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--heartbeat-every", type=int, default=4)
    ap.add_argument("--budget-mib", type=int, default=256)
    ap.add_argument("--upper-ms", type=int, default=30 * 60 * 1000)
    ap.add_argument("--bucket-ms", type=int, default=None, help="default: the spec's")
    ap.add_argument("--dir", type=Path, default=None, help="parent of the DB dirs")
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    left = load(args.data / "impressions.jsonl", "left", "left:0", args.batch)
    right = load(args.data / "plays.jsonl", "right", "right:0", args.batch)
    n_events = sum(map(len, left)) + sum(map(len, right))
    print(f"decoded {n_events:,} events in {time.perf_counter() - t0:.1f} s", flush=True)
    spec_kw: dict[str, Any] = {"upper_ms": args.upper_ms, "how": "left"}
    if args.bucket_ms is not None:
        spec_kw["eviction_bucket_ms"] = args.bucket_ms
    spec = JoinSpec(**spec_kw)
    bucket_ms = getattr(spec, "bucket_ms", None)
    options = RocksOptions.for_budget(args.budget_mib * MIB)
    budget = MemoryBudget(options)
    root = Path(tempfile.mkdtemp(prefix="join-bench-", dir=args.dir))
    parts = ("left:0", "right:0")
    clock = [0]
    joiners = [
        IntervalJoiner(
            spec, open_store(root / f"s{i}", budget, bucket_ms), parts, lambda: clock[0]
        )
        for i in range(args.shards)
    ]
    writes = WriteCounter()
    for j in joiners:
        writes.attach(j.store)
    max_ts: dict[str, int] = {}
    pairs = unmatched = late = peak_retained = 0

    def take(outs: Any) -> None:
        nonlocal pairs, unmatched, late
        pairs += len(outs.matched)
        unmatched += len(outs.unmatched)
        late += len(outs.late)

    # interleave the two files' batches as two partitions read in turn
    order: list[tuple[str, list[Event]]] = []
    for i in range(max(len(left), len(right))):
        if i < len(left):
            order.append(("left:0", left[i]))
        if i < len(right):
            order.append(("right:0", right[i]))
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for n, (part, events) in enumerate(order):
        clock[0] += 10
        top = max(e.ts for e in events)
        max_ts[part] = max(max_ts.get(part, top), top)
        mark = PartitionMark(part, max_ts[part], clock[0])
        groups: dict[int, list[Event]] = {}
        for e in events:
            groups.setdefault(shard_of(e.key, args.shards), []).append(e)
        for s, evs in groups.items():
            take(joiners[s].process(evs, [mark]))
        if n % args.heartbeat_every == 0:
            marks = [PartitionMark(p, t, clock[0]) for p, t in max_ts.items()]
            for j in joiners:
                take(j.advance(marks))
            retained = sum(j.store.count("left") + j.store.count("right") for j in joiners)
            peak_retained = max(peak_retained, retained)
    cpu_join = time.process_time() - cpu0
    for j in joiners:
        take(j.close())
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    disk = sum(j.store.stats().disk_bytes for j in joiners)
    probes = sum(getattr(j.store, "probes", 0) for j in joiners)
    seeks = sum(getattr(j.store, "seeks", 0) for j in joiners)
    skipped = sum(getattr(j.store, "seeks_skipped", 0) for j in joiners)
    for j in joiners:
        j.store.close()
    shutil.rmtree(root, ignore_errors=True)
    print(
        f"join CPU {cpu:.1f} s ({cpu / n_events * 1e6:.1f} us/event; "
        f"close {cpu - cpu_join:.1f} s), wall {wall:.1f} s, {n_events / wall:,.0f} events/s; "
        f"pairs {pairs:,}, unmatched {unmatched:,}, late {late:,}; bucket_ms {bucket_ms}; "
        f"peak retained {peak_retained:,}; disk after close {disk / MIB:,.0f} MiB; "
        f"RocksDB write ops {writes.ops:,} ({writes.ops / n_events:.2f} per event)"
    )
    if probes:
        print(f"probes {probes:,}: {seeks / probes:.2f} seeks each, {skipped / probes:.2f} "
              "ruled out by the buckets' key filters")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
