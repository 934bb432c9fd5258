"""Throughput benchmark of ``streamjoin run`` (not a test).

Generates the reference dataset once (2M impressions over 500,000 keys, play
rate 0.3, 5% orphan plays, 5 s disorder, 0.2% late: about 2.7M events), then
runs a left join with a 30 minute window through the real CLI with 1 and with 2
processes, and prints events/s and the peak RSS of the process tree.

    .venv/bin/python bench/run_bench.py --validate          # both runs, each validated
    .venv/bin/python bench/run_bench.py --processes 1 --impressions 500000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from dataflows.generator import GeneratorConfig, generate


def dataset(work: Path, impressions: int, keys: int) -> Path:
    """The benchmark's input, generated unless an identical one is there."""
    cfg = GeneratorConfig(
        impressions=impressions,
        keys=keys,
        play_rate=0.3,
        orphan_rate=0.05,
        disorder_ms=5_000,
        late_fraction=0.002,
        seed=1,
    )
    data = work / f"data-{impressions}-{keys}"
    stamp = data / "generator.json"
    wanted = json.dumps(cfg.__dict__, sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted:
        return data
    t0 = time.monotonic()
    ds = generate(data, cfg, format="jsonl", progress=True)
    total = sum(c.records for c in ds.counts.values())
    print(f"generated {total:,} events in {time.monotonic() - t0:.0f} s -> {data}")
    stamp.write_text(wanted)
    return data


def run_once(data: Path, out: Path, processes: int, extra: list[str]) -> dict[str, object]:
    cmd = [
        sys.executable, "-m", "dataflows.cli", "run",
        "--left", str(data / "impressions.jsonl"),
        "--right", str(data / "plays.jsonl"),
        "--how", "left", "--upper", "30m",
        "--processes", str(processes),
        "--out", str(out),
        *extra,
    ]  # fmt: skip
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    summary: dict[str, object] = json.loads((out / "run.json").read_text())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench-runs", help="data and outputs directory")
    parser.add_argument("--impressions", type=int, default=2_000_000)
    parser.add_argument("--keys", type=int, default=500_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--validate", action="store_true", help="check each run with `streamjoin validate`"
    )
    parser.add_argument("extra", nargs="*", help="more flags for `streamjoin run` (after --)")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    data = dataset(work, args.impressions, args.keys)
    results = []
    for n in args.processes:
        s = run_once(data, work / f"out-p{n}", n, args.extra)
        results.append((n, s))
    verdicts = {n: validate(work / f"out-p{n}") for n, _ in results} if args.validate else {}
    print("\nprocesses  events in   elapsed s  events/s  peak RSS MiB  peak state MiB  validate")
    for n, s in results:
        c = s["counters"]
        assert isinstance(c, dict)
        events = c["left"]["events_in"] + c["right"]["events_in"]
        print(
            f"{n:>9}  {events:>9,}  {s['elapsed_s']:>10.1f}  {s['events_per_s']:>8,.0f}"
            f"  {int(s['peak_rss_bytes']) / 2**20:>12,.0f}"  # type: ignore[call-overload]
            f"  {int(s['peak_state_bytes']) / 2**20:>14,.0f}"  # type: ignore[call-overload]
            f"  {verdicts.get(n, '')}"
        )
    return 0 if all(v == "exact" for v in verdicts.values()) else 1


def validate(out: Path) -> str:
    """``exact``, or ``DIFFERS`` after printing the validator's report."""
    cmd = [sys.executable, "-m", "dataflows.cli", "validate", str(out)]
    print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode == 0:
        return "exact"
    print(done.stdout + done.stderr)
    return "DIFFERS"


if __name__ == "__main__":
    sys.exit(main())
