#!/usr/bin/env python
"""Crash harness for ``streamjoin run --recovery-dir`` (issue #4).

Generates a small dataset, then repeatedly starts ``streamjoin run --recovery-dir
REC --snapshot-interval ...`` in its own process group and kills the whole group
with SIGKILL at a random moment:

- ``start``: shortly after the start (while the recovery store is being opened,
  the workers import, connect or resume);
- ``processing``: a while later, in the middle of reading and joining;
- ``snapshot``: as soon as a shard checkpoint is being written (a ``.partial``
  directory appears under ``REC/checkpoints``), i.e. inside ``snapshot()``.

After each kill it checks that the snapshot a resume would load references only
checkpoints that are on disk. One cycle (chosen at random) runs with another
process count than the others, so a resume changes the worker count in both
directions. After ``--cycles`` kills (or earlier, if the input is done) the run
is resumed to completion, then: ``streamjoin validate OUT`` must be exact, no
output id may appear twice across joined/, late/ and invalid/ (late and invalid
rows are identified by their input partition and offset), and the checkpoint
root must hold exactly what the retained snapshots reference.

The source is slowed down with the test-only ``--read-delay`` and a small
``--batch-size`` so that a small input spans all the kills. Randomness is seeded;
the kill schedule is printed on failure (and with ``-v``).

    .venv/bin/python scripts/crash_harness.py --cycles 50 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class Options:
    work: Path
    cycles: int = 20
    seed: int = 0
    impressions: int = 3000
    keys: int = 800
    partitions: int = 2
    processes: int = 2
    other_processes: int = 1
    shards: int = 8
    batch_size: int = 10
    #: Source throttle during the kill cycles (the input must outlast them) and
    #: for the final run to completion (not part of the join's identity).
    read_delay: str = "300ms"
    final_read_delay: str = "0"
    snapshot_interval: str = "200ms"
    how: str = "left"
    #: Seconds after the start for ``start`` and ``processing`` kills.
    start_window: tuple[float, float] = (0.05, 1.5)
    processing_window: tuple[float, float] = (1.5, 4.0)
    run_timeout_s: float = 600.0
    verbose: bool = False


@dataclass
class Cycle:
    number: int
    mode: str
    processes: int
    planned_s: float
    killed_after_s: float | None = None
    finished: bool = False
    note: str = ""

    def line(self) -> str:
        what = (
            "finished" if self.finished
            else f"SIGKILL after {self.killed_after_s:.2f}s" if self.killed_after_s is not None
            else "?"
        )
        plan = f"{self.mode} @{self.planned_s:.2f}s" if self.mode != "snapshot" else "snapshot"
        return f"cycle {self.number:>3}: {self.processes} proc, {plan:<22} -> {what} {self.note}"


@dataclass
class Result:
    cycles: list[Cycle] = field(default_factory=list)
    kills: int = 0
    elapsed_s: float = 0.0
    validate_output: str = ""
    duplicates: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    checkpoint_dirs_after: int = 0
    referenced_after: int = 0

    def schedule(self) -> str:
        return "\n".join(c.line() for c in self.cycles)


class HarnessError(AssertionError):
    def __init__(self, msg: str, result: Result) -> None:
        super().__init__(f"{msg}\nkill schedule:\n{result.schedule()}")
        self.result = result


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dataflows.cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def generate(opts: Options) -> Path:
    data = opts.work / "data"
    subprocess.run(  # noqa: S603 - our own interpreter and module
        _cli("generate", "--out", str(data), "--impressions", str(opts.impressions),
             "--keys", str(opts.keys), "--partitions", str(opts.partitions),
             "--seed", str(opts.seed), "--malformed-fraction", "0.01",
             "--late-fraction", "0.01", "--duplicate-fraction", "0.01",
             "--rate-per-s", "20", "--late-lag", "10s", "--window", "1m"),
        check=True, cwd=REPO, env=_env(), capture_output=True,
    )
    return data


def run_args(opts: Options, data: Path, processes: int, read_delay: str) -> list[str]:
    return _cli(
        "run", "--left", str(data / "impressions*"), "--right", str(data / "plays*"),
        "--how", opts.how, "--out", str(opts.work / "out"),
        "--recovery-dir", str(opts.work / "rec"),
        "--snapshot-interval", opts.snapshot_interval,
        "--processes", str(processes), "--shards", str(opts.shards),
        "--batch-size", str(opts.batch_size), "--read-delay", read_delay,
        "--metrics-port", "0", "--metrics-linger", "0",
    )


def _partial_checkpoints(root: Path) -> set[str]:
    """``.partial`` checkpoint directories being written (or left by a kill)."""
    found: set[str] = set()
    try:
        shards = os.listdir(root)
    except FileNotFoundError:
        return found
    for shard in shards:
        try:
            found.update(f"{shard}/{n}" for n in os.listdir(root / shard)
                         if n.endswith(".partial"))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


def one_cycle(opts: Options, data: Path, cycle: Cycle, log_path: Path, kill: bool) -> int | None:
    """Start a run; kill its process group per ``cycle`` (if ``kill``). Returns the
    exit code if it ended by itself, ``None`` if killed."""
    with open(log_path, "ab") as log:
        log.write(f"\n=== {cycle.line()}\n".encode())
        log.flush()
        t0 = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603
            run_args(opts, data, cycle.processes,
                     opts.read_delay if kill else opts.final_read_delay),
            cwd=REPO, env=_env(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        root = opts.work / "rec" / "checkpoints"
        leftovers = _partial_checkpoints(root)  # a killed execution's, not a new snapshot
        deadline = t0 + (opts.run_timeout_s if not kill else max(cycle.planned_s, 8.0) + 60)
        while True:
            code = proc.poll()
            now = time.monotonic()
            if code is not None:
                cycle.finished = True
                return code
            if kill:
                due = (
                    bool(_partial_checkpoints(root) - leftovers) if cycle.mode == "snapshot"
                    else now - t0 >= cycle.planned_s
                )
                if cycle.mode == "snapshot" and now - t0 >= cycle.planned_s:
                    cycle.note = "(no checkpoint seen: killed at the deadline)"
                    due = True
                if due:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    cycle.killed_after_s = now - t0
                    return None
            if now > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                msg = f"run did not finish within {opts.run_timeout_s}s"
                raise TimeoutError(msg)
            time.sleep(0.002 if cycle.mode == "snapshot" else 0.01)


def _row_ids(out: Path) -> tuple[Counter[str], dict[str, int]]:
    from dataflows.outputs import read_rows

    ids: Counter[str] = Counter()
    rows: dict[str, int] = {}
    for kind in ("joined", "late", "invalid"):
        n = 0
        for row in read_rows(out / kind):
            n += 1
            rid = row.get("id") if kind == "joined" else None
            ids[f"{kind}:{rid or (row['partition'], row['offset'])}"] += 1
        rows[kind] = n
    return ids, rows


def check_resumable(rec: Path) -> str:
    """The snapshot a resume would load must only name checkpoints on disk."""
    from recovery.inspect import resumable_snapshot
    from recovery.partitions import read_partitions

    try:
        if not read_partitions(rec, with_snaps=False).executions:
            return ""  # killed before the first execution started: nothing to resume
    except Exception:
        return ""
    try:
        snap = resumable_snapshot(rec)
    except Exception as exc:
        return f"cannot read the resumable snapshot: {exc}"
    if snap.missing:
        return f"resumable snapshot names missing checkpoints of shards {snap.missing}"
    return ""


def harness(opts: Options) -> Result:
    """Run the cycles (see the module docstring); raises :class:`HarnessError`
    with the kill schedule on any failure."""
    result = Result()
    try:
        return _harness(opts, result)
    except HarnessError:
        raise
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc} (runs' output: {opts.work / 'runs.log'})"
        raise HarnessError(msg, result) from exc


def _harness(opts: Options, result: Result) -> Result:
    from recovery.gc import referenced_checkpoints
    from recovery.layout import open_recovery_dir
    from recovery.partitions import read_partitions

    rng = random.Random(opts.seed)  # noqa: S311 - a seeded schedule, not secrets
    if opts.work.exists():
        shutil.rmtree(opts.work)
    opts.work.mkdir(parents=True)
    data = generate(opts)
    log_path = opts.work / "runs.log"
    t_start = time.monotonic()
    other_at = rng.randrange(2, max(3, opts.cycles - 1)) if opts.cycles >= 3 else 0
    modes = ["start", "processing", "snapshot"]
    done = False
    for number in range(1, opts.cycles + 1):
        mode = modes[(number - 1) % 3] if number <= 3 else rng.choice(modes)
        window = opts.start_window if mode == "start" else opts.processing_window
        planned = rng.uniform(*window) if mode != "snapshot" else opts.processing_window[1] * 2
        processes = opts.other_processes if number == other_at else opts.processes
        cycle = Cycle(number, mode, processes, planned)
        result.cycles.append(cycle)
        code = one_cycle(opts, data, cycle, log_path, kill=True)
        if opts.verbose:
            print(cycle.line(), flush=True)
        if code is not None:
            if code != 0:
                msg = f"run exited with {code} (see {log_path})"
                raise HarnessError(msg, result)
            done = True
            break
        result.kills += 1
        problem = check_resumable(opts.work / "rec")
        if problem:
            raise HarnessError(problem, result)
    if not done:
        final = Cycle(len(result.cycles) + 1, "none", opts.processes, 0.0)
        result.cycles.append(final)
        code = one_cycle(opts, data, final, log_path, kill=False)
        if opts.verbose:
            print(final.line(), flush=True)
        if code != 0:
            msg = f"final run exited with {code} (see {log_path})"
            raise HarnessError(msg, result)
    result.elapsed_s = time.monotonic() - t_start
    out = opts.work / "out"
    val = subprocess.run(  # noqa: S603 - our own interpreter and module
        _cli("validate", str(out)), cwd=REPO, env=_env(), capture_output=True, text=True,
        check=False,
    )
    result.validate_output = val.stdout + val.stderr
    if val.returncode != 0:
        msg = f"validate failed ({val.returncode}):\n{result.validate_output}"
        raise HarnessError(msg, result)
    ids, result.rows = _row_ids(out)
    result.duplicates = {k: n for k, n in ids.items() if n > 1}
    if result.duplicates:
        sample = dict(list(result.duplicates.items())[:5])
        msg = f"{len(result.duplicates)} duplicate output id(s), e.g. {sample}"
        raise HarnessError(msg, result)
    layout = open_recovery_dir(opts.work / "rec")
    refs = referenced_checkpoints(read_partitions(layout.dir))
    referenced = {r for rs in refs.values() for r in rs}
    on_disk = [c for c in layout.checkpoints.dirs()]
    result.checkpoint_dirs_after = len(on_disk)
    result.referenced_after = len(referenced)
    if {c.ref for c in on_disk} != referenced or any(c.state != "complete" for c in on_disk):
        msg = (
            f"checkpoint root holds {[c.path.name for c in on_disk]} but the retained "
            f"snapshots reference {sorted(referenced)}"
        )
        raise HarnessError(msg, result)
    summary = json.loads((out / "run.json").read_text())
    if summary.get("recovery", {}).get("mode") not in ("resume", "finished"):
        msg = f"the last execution did not resume: {summary.get('recovery')}"
        raise HarnessError(msg, result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="crash-harness-work", help="scratch directory (emptied)")
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impressions", type=int, default=10000)
    p.add_argument("--keys", type=int, default=2500)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--other-processes", type=int, default=1)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--read-delay", default="300ms", help="during the kill cycles")
    p.add_argument("--final-read-delay", default="0", help="for the run to completion")
    p.add_argument("--snapshot-interval", default="200ms")
    p.add_argument("--how", default="left")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    opts = Options(
        work=Path(a.work).resolve(), cycles=a.cycles, seed=a.seed, impressions=a.impressions,
        keys=a.keys, processes=a.processes, other_processes=a.other_processes, shards=a.shards,
        batch_size=a.batch_size, read_delay=a.read_delay, final_read_delay=a.final_read_delay,
        snapshot_interval=a.snapshot_interval,
        how=a.how, verbose=a.verbose,
    )
    try:
        res = harness(opts)
    except HarnessError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(res.schedule())
    print(f"{res.kills} kills, then completion, in {res.elapsed_s:.1f}s; rows {res.rows}; "
          f"validate exact; 0 duplicate ids; checkpoint dirs after the run: "
          f"{res.checkpoint_dirs_after} (referenced: {res.referenced_after})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
