"""``streamjoin validate RUN_DIR``: check a finished run against the batch join.

A run directory holds ``run.json`` (spec, inputs, counters), ``joined/``,
``late/`` and ``invalid/``. Validation

1. re-reads the inputs with :func:`dataflows.inputs.read_batches` and reads the
   outputs, into CSV tables for DuckDB (:mod:`dataflows.validate.tables`; the
   late rows must have ``lateness_ms = watermark_ms - allowed_lateness_ms - ts
   > 0``);
2. computes with DuckDB the batch interval join of the on-time events
   (``shared/design/semantics.md``, "Exactness"), with the expected ids and
   content fingerprints (:mod:`dataflows.validate.expected`);
3. compares the ``joined/`` rows by id (missing, extra, duplicated, differing
   content), the late rows (each must be an input event) and the dead letters
   (:mod:`dataflows.validate.compare`), and the counters (conservation per side
   and agreement with the outputs, :mod:`dataflows.validate.counters`).

The findings make a :class:`ValidationReport` (:mod:`dataflows.validate.report`).
Exit status 0 only on an exact match.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from dataflows.errors import ConfigError, ValidationError
from dataflows.inputs import Invalid, SourceFormat
from dataflows.outputs import output_files
from dataflows.validate.compare import check_invalid, check_late_identity, compare_joined
from dataflows.validate.counters import check_counters
from dataflows.validate.expected import create_expected_tables
from dataflows.validate.kafka_topics import kafka_twin
from dataflows.validate.report import Finding, FindingCollector, ValidationReport
from dataflows.validate.tables import decode_input_file, load_tables, read_joined_file, read_late
from joins import SIDES, JoinSpec, JoinSpecError, Side

__all__ = ["Finding", "ValidationReport", "main", "validate"]


@dataclass(frozen=True)
class _Input:
    side: Side
    paths: tuple[str, ...]
    fmt: SourceFormat


def _load_run(run_dir: Path) -> tuple[dict[str, Any], JoinSpec, list[_Input]]:
    path = run_dir / "run.json"
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError as exc:
        msg = f"{run_dir} is not a run directory: no run.json"
        raise ValidationError(msg) from exc
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise ValidationError(msg) from exc
    try:
        conf_spec = run["spec"]
        spec = JoinSpec(
            lower_ms=int(conf_spec["lower_ms"]),
            upper_ms=int(conf_spec["upper_ms"]),
            how=conf_spec["how"],
            max_out_of_orderness_ms=int(conf_spec.get("max_out_of_orderness_ms", 5_000)),
            allowed_lateness_ms=int(conf_spec.get("allowed_lateness_ms", 0)),
            idle_timeout_ms=int(conf_spec.get("idle_timeout_ms", 30_000)),
        )
        inputs = []
        for side in SIDES:
            conf = run["inputs"][side]
            fmt = SourceFormat(
                format=conf["format"],
                key_fields=tuple(conf.get("key_fields", ("key",))),
                time_field=conf.get("time_field", "ts"),
                time_unit=conf.get("time_unit", "ms"),
            )
            paths = tuple(
                str(p if Path(p).is_absolute() or not (run_dir / p).exists() else run_dir / p)
                for p in conf["paths"]
            )
            inputs.append(_Input(side, paths, fmt))
    except (KeyError, TypeError, ValueError, JoinSpecError, ConfigError) as exc:
        msg = f"{path}: missing or malformed spec/inputs ({type(exc).__name__}: {exc})"
        raise ValidationError(msg) from exc
    return run, spec, inputs


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def validate(
    run_dir: str | Path, *, max_examples: int = 5, parallel_bytes: int = 32 << 20
) -> ValidationReport:
    """Validate the run in ``run_dir`` (see the module docstring)."""
    started = time.monotonic()
    root = Path(run_dir)
    with kafka_twin(root, max_examples) as twin:  # topics read into a run of files
        if twin is not None:
            return twin.report(validate(twin.run_dir, max_examples=max_examples,
                                        parallel_bytes=parallel_bytes))
    run, spec, inputs = _load_run(root)
    check = FindingCollector(max_examples)
    stats: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="streamjoin-validate-") as tmp_dir:
        tmp = Path(tmp_dir)
        sources = [p for inp in inputs for p in inp.paths]
        joined_files = output_files(root / "joined")
        # Decoding the inputs and reading the joined rows are CPU-bound jobs, one
        # per file: with large inputs they run on two forked processes (forked
        # before DuckDB starts any thread, and sharing this process's hash salt,
        # which the fingerprints need; spawn would also re-run a caller's
        # unguarded main script).
        jobs: list[tuple[Any, tuple[Any, ...]]] = []
        src = 0
        for inp in inputs:
            for index, path in enumerate(inp.paths):
                out_csv = str(tmp / f"events-{src:05d}.csv")
                jobs.append((decode_input_file, (out_csv, inp.side, inp.fmt, path, index, src)))
                src += 1
        for number, joined_path in enumerate(joined_files):
            out_csv = str(tmp / f"joined-{number:05d}.csv")
            jobs.append((read_joined_file, (out_csv, joined_path, number)))
        size = sum(_size(p) for p in sources) + sum(_size(str(p)) for p in joined_files)
        read_late(tmp, root, spec, check, stats)
        if size >= parallel_bytes and len(jobs) > 1:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(2, mp_context=context) as pool:
                futures = [pool.submit(fn, *args) for fn, args in jobs]
                results = [f.result() for f in futures]
        else:
            results = [fn(*args) for fn, args in jobs]
        invalid: list[Invalid] = []
        valid = {"left": 0, "right": 0}
        joined_rows = 0
        bad_rows: list[str] = []
        for (fn, args), result in zip(jobs, results, strict=True):
            if fn is decode_input_file:
                invalid += result[0]
                valid[args[1]] += result[1]
            else:
                joined_rows += result[0]
                bad_rows += result[1]
        stats["joined rows"] = joined_rows
        check.add("malformed_joined_row", len(bad_rows), bad_rows)
        for side in SIDES:
            stats[f"input events {side}"] = valid[side]
            stats[f"input invalid {side}"] = sum(1 for i in invalid if i.side == side)
        check_invalid(check, root, invalid, stats)
        db = duckdb.connect()
        try:
            db.execute("SET preserve_insertion_order = false")
            load_tables(db, tmp)
            check_late_identity(db, check)
            create_expected_tables(db, tmp, spec)
            compare_joined(db, check, sources, [p.name for p in joined_files], stats)
            check_counters(check, run, db, stats, invalid)
        finally:
            db.close()
    return ValidationReport(root, tuple(check.findings), stats, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """``streamjoin validate RUN_DIR [--examples N]``: 0 exact, 1 mismatch, 2 unusable."""
    parser = argparse.ArgumentParser(
        prog="streamjoin validate",
        description="Check a finished run's outputs against the batch interval join.",
    )
    parser.add_argument("run_dir", type=Path, help="the run's output directory (with run.json)")
    parser.add_argument("--examples", type=int, default=5, help="examples per problem (5)")
    args = parser.parse_args(argv)
    try:
        report = validate(args.run_dir, max_examples=max(args.examples, 0))
    except ValidationError as exc:
        print(f"streamjoin validate: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1
