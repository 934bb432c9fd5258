"""Bucketed eviction in RocksDB: ``delete_range`` in one keyspace against one
column family per bucket (not a test; a micro-benchmark on rocksdict alone).

Rolls buckets through a DB: insert a bucket of ``--per`` entries over
``--keys`` keys, probe ``--probes`` random keys in every live bucket (one seek
each), and once more than ``--live`` buckets are live, evict the oldest: scan it
and either ``delete_range`` it (``range``: keys ``side | bucket | key ...``) or
drop its column family (``cf``: keys ``side | key ...`` in a family per bucket).
Prints microseconds per inserted entry, per evicted entry and per probe, and
the cost of creating and dropping a column family.

    .venv/bin/python bench/bucket_evict_bench.py range
    .venv/bin/python bench/bucket_evict_bench.py cf
"""

from __future__ import annotations

import argparse
import random
import shutil
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import rocksdict

from state.options import MIB, MemoryBudget, RocksOptions

_U64 = struct.Struct(">Q")
_OFF = 2**63


def body(key: str) -> bytes:
    raw = key.encode()
    return struct.pack(">IH", zlib.crc32(raw), len(raw)) + raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["range", "cf"])
    ap.add_argument("--entries", type=int, default=3_000_000)
    ap.add_argument("--keys", type=int, default=500_000)
    ap.add_argument("--per", type=int, default=250_000, help="entries per bucket")
    ap.add_argument("--live", type=int, default=4, help="live buckets before evicting")
    ap.add_argument("--probes", type=int, default=5_000, help="probes after each bucket")
    ap.add_argument("--budget-mib", type=int, default=64)
    args = ap.parse_args(argv)
    total = args.budget_mib * MIB
    budget = MemoryBudget(
        RocksOptions(total_bytes=total, write_buffer_bytes=total // 4, memtable_bytes=total // 8)
    )
    plen = 13 if args.mode == "range" else 5

    def options() -> rocksdict.Options:
        o = budget.db_options()
        o.set_prefix_extractor(rocksdict.SliceTransform.create_fixed_prefix(plen))
        return o

    root = Path(tempfile.mkdtemp(prefix="bucket-evict-"))
    db = rocksdict.Rdict(str(root / "db"), options())
    wo = rocksdict.WriteOptions()
    wo.disable_wal = True  # type: ignore[method-assign, assignment]
    ro = rocksdict.ReadOptions()
    ro.set_total_order_seek(True)
    rng = random.Random(1)
    views: dict[int, rocksdict.Rdict] = {}
    handles: dict[int, object] = {}
    live: list[int] = []
    t_ins = t_ev = t_probe = t_create = t_drop = 0.0
    evicted = probes = done = bucket = 0

    def key_of(b: int, k: str, i: int) -> bytes:
        head = b"L" + _U64.pack(b + _OFF) if args.mode == "range" else b"L"
        return head + body(k) + _U64.pack(b * args.per + i + _OFF) + rng.randbytes(8)

    while done < args.entries:
        t0 = time.perf_counter()
        if args.mode == "cf":
            db.create_column_family(f"b{bucket}", options())
            views[bucket] = db.get_column_family(f"b{bucket}")
            handles[bucket] = db.get_column_family_handle(f"b{bucket}")
            t_create += time.perf_counter() - t0
        batch = rocksdict.WriteBatch(raw_mode=True)
        if args.mode == "cf":
            batch.set_default_column_family(handles[bucket])  # type: ignore[arg-type]
        for i in range(args.per):
            value = b"\x00" * 9 + rng.randbytes(120) + b"y" * 100
            batch.put(key_of(bucket, f"user-{rng.randrange(args.keys)}", i), value)
            if len(batch) >= 1000:
                db.write(batch, wo)
                batch = rocksdict.WriteBatch(raw_mode=True)
                if args.mode == "cf":
                    batch.set_default_column_family(handles[bucket])  # type: ignore[arg-type]
        db.write(batch, wo)
        t_ins += time.perf_counter() - t0
        live.append(bucket)
        done += args.per
        bucket += 1
        t0 = time.perf_counter()
        iters = {b: (db.iter() if args.mode == "range" else views[b].iter()) for b in live}
        for _ in range(args.probes):
            k = f"user-{rng.randrange(args.keys)}"
            for b in live:
                p = (b"L" + _U64.pack(b + _OFF) if args.mode == "range" else b"L") + body(k)
                it = iters[b]
                it.seek(p)
                while it.valid() and it.key().startswith(p):
                    it.value()
                    it.next()
            probes += 1
        del iters
        t_probe += time.perf_counter() - t0
        if len(live) > args.live:
            old = live.pop(0)
            t0 = time.perf_counter()
            if args.mode == "range":
                lo, hi = b"L" + _U64.pack(old + _OFF), b"L" + _U64.pack(old + 1 + _OFF)
                it = db.iter(ro)
                it.seek(lo)
                while it.valid() and it.key() < hi:
                    it.value()
                    evicted += 1
                    it.next()
                del it
                batch = rocksdict.WriteBatch(raw_mode=True)
                batch.delete_range(lo, hi)
                db.write(batch, wo)
            else:
                it = views[old].iter(ro)
                it.seek_to_first()
                while it.valid():
                    it.value()
                    evicted += 1
                    it.next()
                del it
                del views[old], handles[old]
                t1 = time.perf_counter()
                db.drop_column_family(f"b{old}")
                t_drop += time.perf_counter() - t1
            t_ev += time.perf_counter() - t0
    print(
        f"{args.mode}: insert {t_ins / done * 1e6:.2f} us/entry, evict "
        f"{t_ev / max(evicted, 1) * 1e6:.2f} us/entry, probe {t_probe / probes * 1e6:.1f} us "
        f"per {args.live + 1}-bucket probe"
    )
    if args.mode == "cf":
        print(
            f"column family: create {t_create / bucket * 1e3:.1f} ms, "
            f"drop {t_drop / max(bucket - len(live), 1) * 1e3:.1f} ms"
        )
    views.clear()
    handles.clear()
    db.close()
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
