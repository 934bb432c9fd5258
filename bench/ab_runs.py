"""Alternating runs of ``streamjoin run`` from one or more code trees (not a test).

For comparing code on a machine shared with other jobs: each round runs every
tree once, in alternating order, through the real CLI (``python -m
dataflows.cli run`` with the tree first on ``PYTHONPATH``), and reports per run

- CPU seconds: user + sys of the whole process tree (the CLI and every worker
  it waited for), and CPU microseconds per input event;
- wall seconds and events/s (``run.json``);
- peak RSS of each worker process (sampled every ``--sample`` seconds from
  ``/proc``, over the whole run, the end of input included);
- with ``--validate``, the verdict of ``streamjoin validate``;

then the medians per tree. Every run also leaves ``OUT.series.json``: a time
series of the records read (from the workers' status files,
``OUT/.run/status-<i>.json``) and each worker's RSS, and the table prints the
throughput of the last quarter of the input against the first.

    .venv/bin/python bench/ab_runs.py --data /work/bench/data-2000000-500000 \\
        --code old=/work/bench/old --code new=. --rounds 2 --validate
    .venv/bin/python bench/ab_runs.py --data DIR --format csv --processes 2 -- --upper 6h

Trees other than this one must have their compiled modules built in place
(``python setup.py build_ext --inplace`` there) or they run pure Python; each
run's ``run.json`` says which (``hot_path``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    label: str
    round: int
    out: Path
    wall_s: float = 0.0
    cpu_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    peak_rss: dict[int, int] = field(default_factory=dict)
    series: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = ""
    #: The machine's 1-minute load average at the start and the end of the run.
    load: tuple[float, float] = (0.0, 0.0)

    @property
    def events(self) -> int:
        return int(self.summary.get("records_in", 0))

    def quarters(self) -> tuple[float, float] | None:
        """Records/s over the first and the last quarter of the records read."""
        pts = [(s["t"], s["read"]) for s in self.series if s["read"] > 0]
        total = self.events
        if len(pts) < 4 or not total:
            return None

        def at(n: float) -> float:  # first sample time at which n records were read
            for t, read in pts:
                if read >= n:
                    return float(t)
            return float(pts[-1][0])

        first = at(total / 4) - at(0)
        last = at(total) - at(3 * total / 4)
        if first <= 0 or last <= 0:
            return None
        return total / 4 / first, total / 4 / last


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Every ``interval`` s: records read and each worker's RSS, from the status files."""

    def __init__(self, run: Run, interval: float) -> None:
        super().__init__(daemon=True)
        self.run_ = run
        self.interval = interval
        self.halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        read, rss = 0, {}
        for path in sorted((self.run_.out / ".run").glob("status-*.json")):
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for part in status.get("partitions", {}).values():
                read += int(part.get("events", 0)) + int(part.get("invalid", 0))
            pid, proc = int(status["pid"]), int(status["process"])
            rss[proc] = _rss(pid)
            self.run_.peak_rss[proc] = max(self.run_.peak_rss.get(proc, 0), rss[proc])
        self.run_.series.append(
            {"t": round(time.monotonic() - self.t0, 2), "read": read, "rss": rss}
        )


def run_once(
    label: str, code: Path, rnd: int, args: argparse.Namespace, extra: list[str]
) -> Run:
    out = Path(args.work) / f"out-{label}-{rnd}"
    shutil.rmtree(out, ignore_errors=True)
    ext = "csv" if args.format == "csv" else "jsonl"
    cmd = [
        sys.executable, "-m", "dataflows.cli", "run",
        "--left", str(Path(args.data) / f"impressions.{ext}"),
        "--right", str(Path(args.data) / f"plays.{ext}"),
        "--how", "left", "--upper", "30m",
        "--processes", str(args.processes), "--out", str(out),
        "--metrics-linger", "0", *extra,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(code))
    run = Run(label, rnd, out)
    print(f"[{label} round {rnd}] $ PYTHONPATH={code} {' '.join(cmd[1:])}", flush=True)
    sampler = Sampler(run, args.sample)
    load0 = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    sampler.start()
    done = subprocess.run(cmd, cwd=code, env=env, check=False, capture_output=True, text=True)
    run.wall_s = time.monotonic() - t0
    sampler.halt.set()
    sampler.join()
    sampler.sample()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run.load = (load0, os.getloadavg()[0])
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        run.verdict = f"run failed ({done.returncode})"
        return run
    run.summary = json.loads((out / "run.json").read_text())
    (out.parent / f"{out.name}.series.json").write_text(json.dumps(run.series))
    if args.validate:
        check = subprocess.run(
            [sys.executable, "-m", "dataflows.cli", "validate", str(out)],
            cwd=code, env=env, check=False, capture_output=True, text=True,
        )  # fmt: skip
        run.verdict = "exact" if check.returncode == 0 else "DIFFERS"
        if check.returncode != 0:
            print(check.stdout + check.stderr)
    if not args.keep:
        for kind in ("joined", "late", "invalid", "state"):
            shutil.rmtree(out / kind, ignore_errors=True)
    return run


def report(runs: list[Run]) -> None:
    mib = 2**20
    print(
        "\nlabel  round  CPU s  CPU us/ev  wall s  events/s  peak RSS MiB per process"
        "  state MiB  hot path  q4/q1  load  validate"
    )
    for r in runs:
        if not r.summary:
            print(f"{r.label:<6} {r.round:>5}  {r.verdict}")
            continue
        rss = "/".join(f"{r.peak_rss[p] / mib:,.0f}" for p in sorted(r.peak_rss)) or "-"
        q = r.quarters()
        hot = r.summary.get("hot_path", {}).get("compiled")
        print(
            f"{r.label:<6} {r.round:>5}  {r.cpu_s:>5.1f}  {r.cpu_s * 1e6 / r.events:>9.1f}"
            f"  {r.summary['elapsed_s']:>6.1f}  {r.summary['events_per_s']:>8,.0f}"
            f"  {rss:>24}  {r.summary['peak_state_bytes'] / mib:>9,.0f}"
            f"  {'compiled' if hot else 'pure' if hot is False else '?':>8}"
            f"  {q[1] / q[0] if q else float('nan'):>5.2f}"
            f"  {r.load[0]:.1f}-{r.load[1]:.1f}  {r.verdict}"
        )
    print("\nmedians")
    for label in dict.fromkeys(r.label for r in runs):
        mine = [r for r in runs if r.label == label and r.summary]
        if not mine:
            continue
        cpu = statistics.median(r.cpu_s for r in mine)
        us = statistics.median(r.cpu_s * 1e6 / r.events for r in mine)
        eps = statistics.median(r.summary["events_per_s"] for r in mine)
        rss = statistics.median(max(r.peak_rss.values(), default=0) for r in mine) / mib
        print(
            f"{label:<6} CPU {cpu:.1f} s ({us:.1f} us/event), {eps:,.0f} events/s, "
            f"peak RSS of the largest process {rss:,.0f} MiB ({len(mine)} runs)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="impressions.* and plays.* (run_bench)")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--code", action="append", default=[], metavar="LABEL=DIR",
                        help="a code tree to run (default: this one, as 'this')")  # fmt: skip
    parser.add_argument("--work", default="bench-runs/ab", help="outputs go here")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--validate", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep each run's output files")
    parser.add_argument("extra", nargs="*", help="more flags for `streamjoin run` (after --)")
    args = parser.parse_args(argv)
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code]
    codes = codes or [("this", HERE)]
    args.work, args.data = str(Path(args.work).resolve()), str(Path(args.data).resolve())
    Path(args.work).mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    for rnd in range(args.rounds):
        order = codes if rnd % 2 == 0 else codes[::-1]
        for label, code in order:
            runs.append(run_once(label, code, rnd, args, args.extra))
            report([runs[-1]])
    report(runs)
    return 0 if all(r.verdict in ("", "exact") and r.summary for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
