"""State benchmark: insert and probe millions of entries through RocksStore.

Not a test. Drives :class:`state.store.RocksStore` the way the joiner does, in
batches: ``contains_many`` + ``scan`` of the other side + ``insert`` +
``commit`` (insert phase), then ``contains_many`` + ``scan`` + ``mark_matched``
+ ``commit`` (probe phase), then ``evict`` of everything in chunks of 10,000
(evict phase), and prints entries/s per phase, CPU seconds and peak RSS.

    .venv/bin/python bench/state_bench.py --entries 20000000 --budget-mib 256

Done-when of the project: 20 million entries with a 256 MiB budget, peak RSS
under 1 GiB.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from joins.events import Event
from state.options import MIB, MemoryBudget, RocksOptions
from state.store import RocksStore

UPPER_MS = 30 * 60 * 1000


def rss_kib(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process from /proc, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_event(side: str, i: int, keys: int, rng: random.Random) -> Event:
    key = f"user-{rng.randrange(keys)}"
    ts = 1_700_000_000_000 + i * 10 + rng.randrange(5_000)
    record = {"user": key, "ad": f"ad-{i % 997}", "ts": ts, "price": 1.25, "ok": True}
    return Event(side, key, ts, rng.randbytes(8), record, "p0", i)  # type: ignore[arg-type]


def run_phase(
    name: str,
    n: int,
    batch: int,
    step: Callable[[int, int], None],
    stores: list[RocksStore],
) -> tuple[float, list[float]]:
    """Run ``step(start, count)`` over ``n`` items; returns (rate, per-batch rates)."""
    rates: list[float] = []
    t0 = last = time.perf_counter()
    done = 0
    while done < n:
        count = min(batch, n - done)
        tb = time.perf_counter()
        step(done, count)
        rates.append(count / max(time.perf_counter() - tb, 1e-9))
        done += count
        now = time.perf_counter()
        if now - last >= 10 or done == n:
            last = now
            print(
                f"[{name}] {done:>11,}/{n:,}  {done / (now - t0):>9,.0f}/s  "
                f"rss {rss_kib('VmRSS') / 1024:,.0f} MiB (peak {rss_kib('VmHWM') / 1024:,.0f})  "
                f"disk {sum(s.stats().disk_bytes for s in stores) / MIB:,.0f} MiB",
                flush=True,
            )
    return n / (time.perf_counter() - t0), rates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=20_000_000)
    ap.add_argument("--probes", type=int, default=None, help="default: --entries")
    ap.add_argument("--budget-mib", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=None, help="distinct keys (default entries/10)")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=None, help="parent of the DB dirs (default tmp)")
    ap.add_argument("--no-prefix-bloom", action="store_true", help="A/B: whole-key blooms only")
    ap.add_argument("--bucket-ms", type=int, default=10 * 60 * 1000, help="eviction bucket width")
    ap.add_argument("--keep", action="store_true", help="keep the DB dirs afterwards")
    args = ap.parse_args(argv)
    n, probes = args.entries, args.probes if args.probes is not None else args.entries
    keys = args.keys or max(1, n // 10)
    total = args.budget_mib * MIB
    options = RocksOptions(
        total_bytes=total,
        write_buffer_bytes=total // 4,
        memtable_bytes=min(64 * MIB, total // 8),
        prefix_bloom=not args.no_prefix_bloom,
    )
    budget = MemoryBudget(options)
    root = Path(tempfile.mkdtemp(prefix="state-bench-", dir=args.dir))
    stores = [
        RocksStore(root / f"shard-{i}", budget, bucket_ms=args.bucket_ms)
        for i in range(args.shards)
    ]
    print(
        f"{n:,} entries, {probes:,} probes, {keys:,} keys, batch {args.batch}, "
        f"{args.shards} shard(s), budget {args.budget_mib} MiB, "
        f"prefix bloom {options.prefix_bloom}, dir {root}",
        flush=True,
    )
    rng = random.Random(42)

    def shard(e: Event) -> RocksStore:
        return stores[hash(e.key) % len(stores)]

    def insert_step(start: int, count: int) -> None:
        events = [make_event("left", start + j, keys, rng) for j in range(count)]
        by_store: dict[int, list[Event]] = {}
        for e in events:
            by_store.setdefault(id(shard(e)), []).append(e)
        for s in stores:
            mine = by_store.get(id(s), [])
            for e, known in zip(mine, s.contains_many(mine), strict=True):
                if not known:
                    partners = s.scan("right", e.key, e.ts, e.ts + UPPER_MS)
                    s.insert(e, bool(partners))
            s.commit()

    matched = 0

    def probe_step(start: int, count: int) -> None:
        nonlocal matched
        events = [make_event("right", (start + j) % n, keys, rng) for j in range(count)]
        for s in stores:
            mine = [e for e in events if shard(e) is s]
            for e, _known in zip(mine, s.contains_many(mine), strict=True):
                for entry in s.scan("left", e.key, e.ts - UPPER_MS, e.ts):
                    matched += 1
                    if not entry.matched:
                        s.mark_matched(entry)
            s.commit()

    cpu0 = time.process_time()
    ins_rate, ins = run_phase("insert", n, args.batch, insert_step, stores)
    cpu1 = time.process_time()
    probe_rate, pro = run_phase("probe", probes, args.batch, probe_step, stores)
    cpu2 = time.process_time()
    stats = [s.stats() for s in stores]
    entries = sum(st.entries["left"] for st in stats)
    disk = sum(st.disk_bytes for st in stats)
    props = stores[0].rocksdb_properties()
    t0 = time.perf_counter()
    evicted = unmatched = 0
    for s in stores:
        while True:
            out = s.evict("left", 2**62, 10_000, True)
            s.commit()
            evicted += out.removed
            unmatched += len(out.events)
            if not out.more:
                break
    evict_s = time.perf_counter() - t0
    cpu3 = time.process_time()
    for s in stores:
        s.close()
    hwm = rss_kib("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"insert: {ins_rate:,.0f} entries/s (median batch {statistics.median(ins):,.0f}/s)")
    print(
        f"probe:  {probe_rate:,.0f} probes/s (median batch {statistics.median(pro):,.0f}/s), "
        f"{matched:,} matches"
    )
    print(
        f"evict:  {evicted / max(evict_s, 1e-9):,.0f} entries/s ({evicted:,} entries, "
        f"{unmatched:,} never matched, decoded)"
    )
    print(
        f"CPU s (user+sys, this process): insert {cpu1 - cpu0:.1f}, probe {cpu2 - cpu1:.1f}, "
        f"evict {cpu3 - cpu2:.1f}"
    )
    print(f"entries retained before evict: {entries:,}; disk {disk / MIB:,.0f} MiB")
    print(f"peak RSS: VmHWM {hwm / 1024:,.0f} MiB, ru_maxrss {maxrss / 1024:,.0f} MiB")
    print(f"shard-0 properties: {props}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
