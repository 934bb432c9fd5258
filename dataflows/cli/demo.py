"""``streamjoin generate`` and ``streamjoin demo``: synthetic data, and the whole
tour on it (generate, join with several processes, validate, summarise).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import fields
from typing import Any

from dataflows.config import build_config, format_duration, parse_duration
from dataflows.console import ConsoleOptions
from dataflows.errors import ConfigError
from dataflows.generator import LATE_AGAINST_MS, GeneratedDataset, GeneratorConfig, generate

#: Flags of ``generate`` (GeneratorConfig fields); durations end in ``_ms``.
_HELP = {
    "impressions": "impressions (left events) to generate",
    "keys": "distinct keys (user:title)",
    "seed": "random seed: the same seed writes the same files",
    "zipf_s": "key skew, Zipf exponent (0 = uniform)",
    "play_rate": "fraction of impressions followed by a play",
    "orphan_rate": "fraction of plays whose key has no impression",
    "window_ms": "plays come up to this long after their impression (duration)",
    "disorder_ms": "events are shuffled up to this far back in their partition (duration)",
    "late_fraction": "fraction of events placed far behind (late)",
    "duplicate_fraction": "fraction of events written twice",
    "malformed_fraction": "fraction of broken records per kind (jsonl/csv only)",
    "partitions": "files per side",
    "rate_per_s": "impressions per second of event time",
    "start_ms": "event time of the first impression (epoch ms)",
    "late_lag_ms": "extra distance of late events behind their partition (duration)",
}


def _flag(name: str) -> str:
    base = name[:-3] if name.endswith("_ms") and name != "start_ms" else name
    return "--" + base.replace("_", "-")


def add_generator_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`GeneratorConfig` field (defaults: the generator's)."""
    for f in fields(GeneratorConfig):
        kind = str if f.name.endswith("_ms") and f.name != "start_ms" else type(f.default)
        parser.add_argument(
            _flag(f.name),
            dest=f.name,
            type=kind,
            default=None,
            metavar="DURATION" if kind is str else ("N" if kind is int else "X"),
            help=f"{_HELP.get(f.name, f.name)} (default "
            f"{format_duration(int(f.default)) if kind is str else f.default})",  # type: ignore[arg-type]
        )


def generator_config(args: argparse.Namespace) -> GeneratorConfig:
    """A :class:`GeneratorConfig` from the flags that were given."""
    values: dict[str, Any] = {}
    for f in fields(GeneratorConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        values[f.name] = parse_duration(value) if isinstance(value, str) else value
    return GeneratorConfig(**values)


def describe(ds: GeneratedDataset, cfg: GeneratorConfig | None = None) -> str:
    """What ``generate`` wrote, with "placed late" said in the run's terms."""
    cfg = cfg or GeneratorConfig()
    lines = [f"wrote {ds.out_dir}/ ({ds.format}):"]
    for side, paths in (("left", ds.left_paths), ("right", ds.right_paths)):
        c = ds.counts[side]
        lines.append(
            f"  {side:5}  {c.events:>9,} events ({c.duplicates:,} copies, "
            f"{c.intended_late:,} placed late) + {c.malformed:,} malformed, "
            f"{len(paths)} file(s)"
        )
    # Placed at ts + 5s + disorder + up to late_lag, among events up to disorder
    # apart: about 5s + late_lag behind the newest event before them.
    gap = format_duration(LATE_AGAINST_MS + cfg.late_lag_ms)
    d = format_duration(LATE_AGAINST_MS)
    lines.append(
        f"  placed late: written about {gap} or more behind the newest event before them in "
        f"their file.\n  A run (default --max-out-of-orderness {d}) counts an event late when "
        "the watermark, the lowest over all files of both sides, has passed it: at most these "
        f"(with --disorder up to {d}),\n  fewer when another file is read behind them in event "
        "time (the run's summary says how many)"
    )
    lines.append(f"  pairs expected for a {format_duration(cfg.window_ms)} window: "
                 f"~{ds.expected_pairs:,}")
    return "\n".join(lines)


def generate_command(args: argparse.Namespace) -> int:
    cfg = generator_config(args)
    ds = generate(args.out, cfg, format=args.format, progress=True)
    print(describe(ds, cfg))
    left = ds.left_paths[0] if len(ds.left_paths) == 1 else os.path.join(ds.out_dir, "impressions*")
    right = ds.right_paths[0] if len(ds.right_paths) == 1 else os.path.join(ds.out_dir, "plays*")
    print(f"join it with: streamjoin run --left '{left}' --right '{right}' --format {args.format} "
          f"--out {ds.out_dir}-out")
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """Generate, run with ``--processes``, validate and print the summary."""
    from dataflows.run import run
    from dataflows.validate import main as validate_main

    if args.impressions <= 0:
        msg = f"--impressions must be > 0, got {args.impressions}"
        raise ConfigError(msg)
    out = os.path.abspath(args.out)
    data = os.path.join(out, "input")
    gen = GeneratorConfig(
        impressions=args.impressions,
        keys=max(1, args.impressions // 3),
        seed=42,
        partitions=2,
        malformed_fraction=0.0005,
    )
    t0 = time.monotonic()
    print(f"[1/3] generating {args.impressions:,} impressions and their plays into {data}/")
    ds = generate(data, gen, format="jsonl", progress=True)
    print(describe(ds, gen) + f"\n  ({time.monotonic() - t0:.1f} s)")
    cfg = build_config(
        {
            "left": [str(p) for p in ds.left_paths],
            "right": [str(p) for p in ds.right_paths],
            "out": os.path.join(out, "run"),
            "how": "left",
            "upper": "30m",
            "processes": args.processes,
            "metrics_port": getattr(args, "metrics_port", None),
            "metrics_host": getattr(args, "metrics_host", None),
            "metrics_linger": getattr(args, "metrics_linger", None),
            "progress_interval": getattr(args, "progress_interval", None),
        }
    )
    print(f"[2/3] left join, 30 minute window, {args.processes} processes -> {cfg.out_dir}/")
    run(cfg, console=ConsoleOptions.of(args))
    print(f"[3/3] validating {cfg.out_dir} against the batch join of its inputs")
    code: int = validate_main([cfg.out_dir])
    print(f"demo finished in {time.monotonic() - t0:.0f} s" + ("" if code == 0 else " (INVALID)"))
    return code
