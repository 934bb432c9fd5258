"""The floor (not a test): a naive in-memory Bytewax interval join against streamjoin.

The naive join is what any Bytewax user could write in an afternoon: both
JSON Lines files through Bytewax's ``FileSource``, ``json.loads``, keyed by the
join key, one ``stateful_batch`` logic per key holding both sides' events in
Python lists, each event probing the other side's list for the interval and
counting the pairs. It has no watermark (nothing is late), no outer rows, no
output files, no persistence, and its state is bounded only by evicting, per
key, what its own newest event has left behind. streamjoin does all of that
with its state in RocksDB; this benchmark runs both on the same data, one after
the other, in one process each, and prints wall time, CPU seconds and the
ratio.

    .venv/bin/python bench/naive_bench.py --work /work/bench            # W-2M
    .venv/bin/python bench/naive_bench.py --impressions 500000 --rounds 3

Each round runs naive then streamjoin; the table shows every run and the
medians. CPU seconds (user + sys of the process tree) are steadier than wall
time on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from run_bench import dataset

UPPER_MS = 30 * 60 * 1000
#: How far behind a key's newest event the naive join keeps events: the window
#: plus the generator's disorder.
HORIZON_MS = UPPER_MS + 5_000


def naive_flow(left: Path, right: Path, out: Path) -> Any:
    """The naive dataflow: pairs counted per batch, the sum written to ``out``."""
    import bytewax.operators as op
    from bytewax.connectors.files import FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators import StatefulBatchLogic
    from bytewax.outputs import DynamicSink, StatelessSinkPartition

    class Logic(StatefulBatchLogic[tuple[bool, int], int, None]):
        def __init__(self) -> None:
            self.left: list[int] = []
            self.right: list[int] = []
            self.newest = -(2**62)

        def on_batch(self, values: list[tuple[bool, int]]) -> tuple[Iterable[int], bool]:
            pairs = 0
            for is_left, ts in values:
                if is_left:
                    pairs += sum(1 for r in self.right if ts <= r <= ts + UPPER_MS)
                    self.left.append(ts)
                else:
                    pairs += sum(1 for lt in self.left if lt <= ts <= lt + UPPER_MS)
                    self.right.append(ts)
                if ts > self.newest:
                    self.newest = ts
            floor = self.newest - HORIZON_MS
            self.left = [t for t in self.left if t >= floor]
            self.right = [t for t in self.right if t >= floor]
            return ([pairs] if pairs else []), False

        def snapshot(self) -> None:
            return None

    class Total(StatelessSinkPartition[int]):
        def __init__(self) -> None:
            self.pairs = 0

        def write_batch(self, items: list[int]) -> None:
            self.pairs += sum(items)

        def close(self) -> None:
            out.write_text(json.dumps({"pairs": self.pairs}))

    class TotalSink(DynamicSink[int]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Total:
            return Total()

    def parse(is_left: bool) -> Any:
        def f(line: str) -> tuple[str, tuple[bool, int]]:
            rec = json.loads(line)
            return rec["key"], (is_left, int(rec["ts"]))

        return f

    flow = Dataflow("naive_join")
    lefts = op.map("parse_left", op.input("left", flow, FileSource(left)), parse(True))
    rights = op.map("parse_right", op.input("right", flow, FileSource(right)), parse(False))
    events = op.merge("merge", lefts, rights)
    counts = op.stateful_batch("join", events, lambda _resume: Logic())
    op.output("total", op.key_rm("unkey", counts), TotalSink())
    return flow


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys of ``cmd`` and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench-runs", help="data and outputs directory")
    parser.add_argument("--impressions", type=int, default=2_000_000)
    parser.add_argument("--keys", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--naive-only", nargs=3, metavar=("LEFT", "RIGHT", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.naive_only:
        from bytewax.testing import run_main

        left, right, out = (Path(p) for p in args.naive_only)
        run_main(naive_flow(left, right, out))
        return 0
    work = Path(args.work).resolve()
    data = dataset(work, args.impressions, args.keys)
    left, right = data / "impressions.jsonl", data / "plays.jsonl"
    events = sum(1 for _ in left.open("rb")) + sum(1 for _ in right.open("rb"))
    rows: dict[str, list[tuple[float, float]]] = {"naive": [], "streamjoin": []}
    pairs: dict[str, int] = {}
    for _ in range(args.rounds):
        total = work / "naive-total.json"
        rows["naive"].append(_timed(
            [sys.executable, __file__, "--naive-only", str(left), str(right), str(total)]))
        pairs["naive"] = json.loads(total.read_text())["pairs"]
        out = work / "out-naive-cmp"
        rows["streamjoin"].append(_timed([
            sys.executable, "-m", "dataflows.cli", "run", "--left", str(left),
            "--right", str(right), "--how", "left", "--upper", "30m",
            "--processes", "1", "--out", str(out), "--metrics-linger", "0",
        ]))  # fmt: skip
        pairs["streamjoin"] = json.loads((out / "run.json").read_text())["counters"]["pairs"]
    print(f"\n{events:,} events; pairs: naive {pairs['naive']:,} (nothing late), "
          f"streamjoin {pairs['streamjoin']:,} (late events join nothing)")
    print("system       wall s   CPU s   events/s (wall)   CPU us/event")
    medians = {}
    for name, runs in rows.items():
        for wall, cpu in runs:
            print(f"{name:<11} {wall:>7.1f} {cpu:>7.1f}   {events / wall:>15,.0f}"
                  f"   {cpu * 1e6 / events:>12.1f}")
        medians[name] = (statistics.median(w for w, _ in runs),
                         statistics.median(c for _, c in runs))
    (nw, nc), (sw, sc) = medians["naive"], medians["streamjoin"]
    print(f"medians: naive {nw:.1f} s wall, {nc:.1f} CPU s; streamjoin {sw:.1f} s, {sc:.1f} "
          f"CPU s; streamjoin/naive speed: {nw / sw:.2f}x wall, {nc / sc:.2f}x CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
