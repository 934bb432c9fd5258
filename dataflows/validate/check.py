"""``streamjoin validate RUN_DIR``: check a finished run against the batch join.

A run directory holds ``run.json`` (spec, inputs and their settings,
counters), ``joined/``, ``late/`` and ``invalid/``. Validation reads the
inputs **by itself**, never with the run's decoders (``dataflows.inputs``), so
that a decoder that loses, invents or misreads records shows as a mismatch:

1. each input file is framed into records (their positions, exact bytes and
   identities) and staged for DuckDB (:mod:`dataflows.validate.staging`,
   :mod:`dataflows.validate.csv_framing`, :mod:`dataflows.validate.avro_reading`);
2. DuckDB parses them and builds each event's key and time in SQL from the
   settings in ``run.json``, or finds why it is a dead letter
   (:mod:`dataflows.validate.records`): the tables ``e`` and ``bad``;
3. the run's outputs are read: ``joined/`` by DuckDB
   (:mod:`dataflows.validate.joined`), ``late/`` (:mod:`dataflows.validate.tables`;
   the late rows must have ``lateness_ms = watermark_ms - allowed_lateness_ms -
   ts > 0``);
4. DuckDB computes the batch interval join of the on-time events
   (``shared/design/semantics.md``, "Exactness") with the expected ids and
   content fingerprints (:mod:`dataflows.validate.expected`);
5. the ``joined/`` rows are compared by id (missing, extra, duplicated,
   differing content), the late rows must be input events, the dead letters
   must be exactly the records validate found invalid
   (:mod:`dataflows.validate.compare`), and the counters must conserve events
   and agree with all of it (:mod:`dataflows.validate.counters`).

The findings make a :class:`ValidationReport` (:mod:`dataflows.validate.report`).
Exit status 0 only on an exact match.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from dataflows.errors import ValidationError
from dataflows.outputs import output_files
from dataflows.validate.compare import check_invalid, check_late_identity, compare_joined
from dataflows.validate.counters import check_counters
from dataflows.validate.expected import create_expected_tables
from dataflows.validate.joined import load_joined
from dataflows.validate.kafka_topics import kafka_twin
from dataflows.validate.reading import dead_letters, load_inputs, stage_inputs
from dataflows.validate.report import Finding, FindingCollector, ValidationReport
from dataflows.validate.run_file import load_run
from dataflows.validate.tables import load_table, read_late
from joins import SIDES

__all__ = ["Finding", "ValidationReport", "main", "validate"]


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
    run = load_run(root)
    check = FindingCollector(max_examples)
    stats: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="streamjoin-validate-") as tmp_dir:
        tmp = Path(tmp_dir)
        staged = stage_inputs(tmp, run.sides, parallel_bytes)
        read_late(tmp, root, run.spec, check, stats)
        db: Any = duckdb.connect()
        try:
            db.execute("SET preserve_insertion_order = false")
            load_inputs(db, tmp, run.sides, staged)
            for s, side in enumerate(SIDES):
                for what, table in (("events", "e"), ("invalid", "bad")):
                    # ``table`` is one of the two names above
                    query = f"SELECT count(*) FROM {table} WHERE side = ?"  # noqa: S608
                    stats[f"input {what} {side}"] = db.execute(query, [s]).fetchone()[0]
            load_table(db, tmp, "l")
            check_late_identity(db, check)
            joined_files = output_files(root / "joined")
            load_joined(db, tmp, joined_files, check, stats)
            create_expected_tables(db, tmp, run.spec)
            sources = [run.sides[s].paths[i] for s, i in staged.srcs]
            compare_joined(db, check, sources, [p.name for p in joined_files], stats)
            check_invalid(check, root, dead_letters(db, run.sides, staged), stats)
            check_counters(check, run.doc, db, stats)
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
