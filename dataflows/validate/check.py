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
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import duckdb

from dataflows.errors import ValidationError
from dataflows.outputs import output_files
from dataflows.validate.avro_reading import stage_avro
from dataflows.validate.compare import check_invalid, check_late_identity, compare_joined
from dataflows.validate.counters import check_counters
from dataflows.validate.csv_framing import stage_csv
from dataflows.validate.expected import create_expected_tables
from dataflows.validate.joined import load_joined
from dataflows.validate.records import TABLES, classify_csv, classify_json
from dataflows.validate.report import Finding, FindingCollector, ValidationReport
from dataflows.validate.run_file import RunFile, SideInputs, load_run
from dataflows.validate.staging import COLUMNS, StageWriter, stage_jsonl
from dataflows.validate.tables import load_table, read_late
from joins import SIDES

__all__ = ["Finding", "ValidationReport", "main", "validate"]


#: The longest staged line DuckDB reads (a record of up to about 48 MiB).
_MAX_STAGED_LINE = 64 << 20


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def stage_file(out: str, src: int, inputs: SideInputs, path: str) -> tuple[str, ...]:
    """Frame the input file ``path`` into the staged file ``out``; return its
    CSV header (empty for other formats)."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        msg = f"cannot read input {path!r}: {exc.strerror or exc}"
        raise ValidationError(msg) from exc
    header: tuple[str, ...] = ()
    with handle, open(out, "wb") as fo:
        writer = StageWriter(fo)
        if inputs.format == "jsonl":
            stage_jsonl(writer, src, handle)
        elif inputs.format == "csv":
            header = stage_csv(writer, src, handle, path).header
            missing = [f for f in (*inputs.key_fields, inputs.time_field)
                       if header and f not in header]
            if missing:
                msg = (f"csv header of {path!r} has no column {missing[0]!r} "
                       f"(columns: {', '.join(header)})")
                raise ValidationError(msg)
        else:
            stage_avro(writer, src, handle, inputs.time_field)
        writer.flush()
    return header


def _load_inputs(db: Any, tmp: Path, run: RunFile, srcs: list[tuple[int, int]],
                 headers: list[tuple[str, ...]], stats: dict[str, int]) -> None:
    """The tables ``r`` (staged records), then ``e`` and ``bad``."""
    staged = [str(p) for p in sorted(tmp.glob("rec-*.txt")) if p.stat().st_size > 0]
    columns = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
    if staged:
        spec = ", ".join(f"'{c}': '{t}'" for c, t in COLUMNS.items())
        # The delimiter is the 0x1F byte itself; DuckDB reads new_line='\n' as an escape.
        read = ("read_csv(?, header=false, delim='\x1f', quote='', escape='', new_line='\\n', "
                f"auto_detect=false, max_line_size={_MAX_STAGED_LINE}, "
                f"buffer_size={2 * _MAX_STAGED_LINE}, columns={{{spec}}})")
        # the SQL is this module's constants; the staged files go in as a parameter
        db.execute(f"CREATE TABLE r AS SELECT * FROM {read}", [staged])  # noqa: S608
    else:
        db.execute(f"CREATE TABLE r ({columns})")
    for statement in TABLES:
        db.execute(statement)
    for src, (s, _index) in enumerate(srcs):
        inputs = run.sides[s]
        if inputs.format == "csv":
            if headers[src]:
                classify_csv(db, s, src, inputs, headers[src])
        else:
            classify_json(db, s, src, inputs)
    db.execute("DROP TABLE r")
    for s, side in enumerate(SIDES):
        stats[f"input events {side}"] = db.execute(
            "SELECT count(*) FROM e WHERE side = ?", [s]).fetchone()[0]
        stats[f"input invalid {side}"] = db.execute(
            "SELECT count(*) FROM bad WHERE side = ?", [s]).fetchone()[0]


def validate(
    run_dir: str | Path, *, max_examples: int = 5, parallel_bytes: int = 32 << 20
) -> ValidationReport:
    """Validate the run in ``run_dir`` (see the module docstring)."""
    started = time.monotonic()
    root = Path(run_dir)
    run = load_run(root)
    check = FindingCollector(max_examples)
    stats: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="streamjoin-validate-") as tmp_dir:
        tmp = Path(tmp_dir)
        srcs: list[tuple[int, int]] = []  # per input file: side number, index
        jobs: list[tuple[str, int, SideInputs, str]] = []
        for s, inputs in enumerate(run.sides):
            for index, path in enumerate(inputs.paths):
                jobs.append((str(tmp / f"rec-{len(srcs):05d}.txt"), len(srcs), inputs, path))
                srcs.append((s, index))
        size = sum(_size(job[3]) for job in jobs)
        if size >= parallel_bytes and len(jobs) > 1:
            # Framing is CPU-bound Python, one job per file: two forked processes
            # (forked before DuckDB starts any thread; spawn would also re-run a
            # caller's unguarded main script).
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(2, mp_context=context) as pool:
                headers = list(pool.map(stage_file, *zip(*jobs, strict=True)))
        else:
            headers = [stage_file(*job) for job in jobs]
        read_late(tmp, root, run.spec, check, stats)
        db = duckdb.connect()
        try:
            db.execute("SET preserve_insertion_order = false")
            _load_inputs(db, tmp, run, srcs, headers, stats)
            load_table(db, tmp, "l")
            check_late_identity(db, check)
            joined_files = output_files(root / "joined")
            load_joined(db, tmp, joined_files, check, stats)
            create_expected_tables(db, tmp, run.spec)
            sources = [run.sides[s].paths[i] for s, i in srcs]
            compare_joined(db, check, sources, [p.name for p in joined_files], stats)
            check_invalid(check, root, db, run.sides, srcs, stats)
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
