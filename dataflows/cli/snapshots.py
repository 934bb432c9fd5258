"""``streamjoin snapshots DIR`` and ``streamjoin replay``, and the recovery flags of
``streamjoin run`` (issue #4; the wiring is :mod:`dataflows.recovering`).

Replay and the file sinks: a replay starts a new run into a new output
directory from a retained snapshot of a recovery store, without touching that
store (:func:`recovery.replay.copy_for_replay` makes a new recovery directory
with hard-link clones of the checkpoints). The file sinks' snapshots are byte
positions in the *original* output files, so the replay first copies each
output file's prefix up to its snapshotted position into the new directory
(and the original's final-counter files), then resumes: the new directory ends
up holding the complete result of the logical run (rows written before the
replay epoch, copied; rows after it, recomputed), so ``streamjoin validate
NEWDIR`` checks it like any run. The original output directory is only read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from dataflows.config import RunConfig, parse_duration
from dataflows.console import ConsoleOptions
from dataflows.errors import ConfigError

_EXT = {"jsonl": "jsonl", "avro": "avro"}


def add_recovery_flags(p: argparse.ArgumentParser) -> None:
    """``--recovery-dir``, ``--snapshot-interval``, ``--backup-interval``, ``--read-delay``."""
    rec = p.add_argument_group("recovery (kill -9 at any moment, then run again to resume)")
    rec.add_argument(
        "--recovery-dir",
        metavar="DIR",
        help="recovery store (mode 0700; refused if others can write it): created on first "
        "use, resumed from on the next run with the same DIR. Needs the same settings that "
        "change the output (join, --shards, --format, --key-field, --time-field, "
        "--time-unit, --output-format) and the same input files (they may have grown, "
        "unless the run had finished), and --state-dir on the same filesystem",
    )
    rec.add_argument(
        "--snapshot-interval",
        dest="epoch_interval",
        metavar="DURATION",
        help="epoch length = how often every shard and source is snapshotted (default 10s)",
    )
    rec.add_argument(
        "--backup-interval",
        metavar="DURATION",
        help="how long Bytewax keeps superseded snapshots (default 0; longer keeps older "
        "epochs available to `streamjoin replay --epoch`)",
    )
    rec.add_argument(
        "--resume-epoch",
        type=int,
        metavar="E",
        help="resume the recovery store at epoch E instead of its latest (what a refusal of "
        "a damaged store offers; the outputs after E are recomputed). Use it once: a later "
        "run without it resumes from wherever this one got to",
    )
    rec.add_argument(
        "--read-delay",
        metavar="DURATION",
        help="TESTING ONLY: sleep this long before each source read (crash harness)",
    )


def add_recovery_commands(sub: Any) -> list[argparse.ArgumentParser]:
    """The ``snapshots`` and ``replay`` subcommands (their parsers)."""
    snaps = sub.add_parser(
        "snapshots",
        help="show the snapshot a run would resume from",
        description="Print the resumable snapshot of a recovery directory: the resume "
        "epoch and, per shard, its watermark, retained entries and checkpoint size.",
    )
    snaps.add_argument("dir", metavar="DIR", help="a --recovery-dir of streamjoin run")
    rep = sub.add_parser(
        "replay",
        help="start a new run from a retained snapshot into a new output directory",
        description="Copy a retained snapshot of --recovery-dir into a new recovery "
        "directory (the original is never written), copy the original outputs up to "
        "the snapshot's positions into --out, and resume the join from there.",
    )
    rep.add_argument("--recovery-dir", required=True, metavar="DIR")
    rep.add_argument("--out", required=True, metavar="NEWDIR", help="a new output directory")
    rep.add_argument(
        "--epoch", type=int, metavar="E", help="replay epoch (default: the latest resumable)"
    )
    rep.add_argument(
        "--new-recovery-dir", metavar="DIR", help="the copy (default NEWDIR/recovery)"
    )
    rep.add_argument("--processes", type=int, metavar="N", help="default: as the original run")
    return [snaps, rep]


def recovery_command(args: argparse.Namespace) -> int:
    if args.command == "snapshots":
        from recovery.inspect import format_snapshot, resumable_snapshot

        print(format_snapshot(resumable_snapshot(args.dir)))
        return 0
    return replay(args)


def _source_config(recovery_dir: str) -> RunConfig:
    from dataflows.recovering import RUN_CONFIG_NAME

    path = Path(recovery_dir) / RUN_CONFIG_NAME
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        msg = f"--recovery-dir {recovery_dir}: no {RUN_CONFIG_NAME} (not used by streamjoin run)"
        raise ConfigError(msg) from exc
    return RunConfig.from_json(data)


def replay(args: argparse.Namespace) -> int:
    from dataflows.recovering import sink_positions
    from dataflows.run import run
    from dataflows.sinks import STATS_PREFIX, stats_dir, write_config
    from recovery.errors import UntrustedRecoveryError
    from recovery.replay import copy_for_replay
    from recovery.trust import check_private

    source = _source_config(args.recovery_dir)
    try:
        check_private(args.recovery_dir)  # the replay unpickles rows copied from it
    except UntrustedRecoveryError as exc:
        raise ConfigError(str(exc)) from exc
    out_dir = os.path.abspath(args.out)
    if os.path.exists(out_dir) and os.listdir(out_dir):
        msg = f"--out {args.out}: must be a new or empty directory"
        raise ConfigError(msg)
    if out_dir == os.path.abspath(source.out_dir):
        msg = f"--out {args.out} is the original run's output directory"
        raise ConfigError(msg)
    new_rec = os.path.abspath(args.new_recovery_dir or os.path.join(out_dir, "recovery"))
    cfg = replace(
        source,
        out_dir=out_dir,
        state_dir=os.path.join(out_dir, "state"),
        recovery_dir=new_rec,
        read_delay_ms=0,
        resume_epoch=0,
        processes=args.processes or source.processes,
        metrics_port=None if source.metrics_port is None else 0,
    )
    if getattr(args, "progress_interval", None):
        interval = parse_duration(args.progress_interval)
        cfg = replace(cfg, progress_interval_ms=interval)
    write_config(cfg)  # marks NEWDIR as this run's (dataflows.sinks.out_dir)
    copy = copy_for_replay(args.recovery_dir, new_rec, epoch=args.epoch)
    ext = _EXT[source.output_format]
    copied = 0
    for (step, shard), pos in sorted(sink_positions(new_rec).items()):
        kind = step.rsplit(".", 1)[-1].removesuffix("_files")
        src = os.path.join(source.out_dir, kind, f"{shard}.{ext}")
        dst = os.path.join(out_dir, kind, f"{shard}.{ext}")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if pos == 0:
            continue
        if not os.path.isfile(src) or os.path.getsize(src) < pos:
            msg = f"cannot replay: {src} is shorter than its snapshotted position {pos}"
            raise ConfigError(msg)
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            remaining = pos
            while remaining:
                chunk = fi.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                fo.write(chunk)
                remaining -= len(chunk)
        copied += 1
    old_stats, new_stats = stats_dir(source.out_dir), stats_dir(out_dir)
    os.makedirs(new_stats, exist_ok=True)
    if os.path.isdir(old_stats):
        for name in os.listdir(old_stats):
            if name.startswith(STATS_PREFIX):
                shutil.copyfile(os.path.join(old_stats, name), os.path.join(new_stats, name))
    # The time the original executions worked counts in the replay's throughput.
    old_run = os.path.join(source.out_dir, ".run")
    if os.path.isdir(old_run):
        for name in os.listdir(old_run):
            if name.startswith("execution-") and name.endswith(".json"):
                shutil.copyfile(os.path.join(old_run, name), os.path.join(out_dir, ".run", name))
    print(
        f"replay: epoch {copy.resume_epoch} of {args.recovery_dir} copied to {new_rec} "
        f"({copy.checkpoints} checkpoint(s)); {copied} output file prefix(es) copied "
        f"from {source.out_dir}"
    )
    run(cfg, console=ConsoleOptions.of(args))
    print(f"check it with: streamjoin validate {out_dir}")
    return 0
