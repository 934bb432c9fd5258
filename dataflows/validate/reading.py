"""Reading a run's inputs as validate expects them decoded: every input file is
framed and staged by Python (:func:`stage_inputs`, one file a job, on two
forked processes when the inputs are large), then DuckDB turns the staged
records into the tables ``e`` (events) and ``bad`` (dead letters) with
:mod:`dataflows.validate.records` (:func:`load_inputs`).

:func:`read_inputs` does both on its own DuckDB and returns the rows, for tests
and for looking at what validate makes of an input.
"""

from __future__ import annotations

import base64
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from dataflows.errors import ValidationError
from dataflows.validate.avro_reading import stage_avro
from dataflows.validate.csv_framing import stage_csv
from dataflows.validate.records import TABLES, classify_csv, classify_json
from dataflows.validate.run_file import SideInputs
from dataflows.validate.staging import COLUMNS, StageWriter, stage_jsonl
from joins import Side

#: The longest staged line DuckDB reads (a record of up to about 48 MiB).
_MAX_STAGED_LINE = 64 << 20


@dataclass(frozen=True)
class Staged:
    """What staging learned: per input file (``src``) its side number and index
    among the side's files, and its CSV header (empty for other formats)."""

    srcs: tuple[tuple[int, int], ...]
    headers: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class InputEvent:
    """An event validate found in the inputs."""

    side: Side
    key: str
    ts: int
    eid: bytes
    fp: int
    partition: str
    offset: int


@dataclass(frozen=True)
class ExpectedDeadLetter:
    """A record validate found to be no valid event: where it is, why (validate's
    own words), its exact bytes (the first ones, if ``raw_bytes`` says more)."""

    side: Side
    partition: str
    offset: int
    problem: str
    raw: bytes
    raw_bytes: int


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
            needed = (*inputs.key_fields, inputs.time_field)
            header = stage_csv(writer, src, handle, path, needed).header
        else:
            stage_avro(writer, src, handle, inputs.time_field)
        writer.flush()
    return header


def stage_inputs(tmp: Path, sides: tuple[SideInputs, ...], parallel_bytes: int) -> Staged:
    """Stage every input file into ``tmp``. Call it before DuckDB starts: with
    ``parallel_bytes`` of input or more it forks."""
    srcs: list[tuple[int, int]] = []
    jobs: list[tuple[str, int, SideInputs, str]] = []
    for s, inputs in enumerate(sides):
        for index, path in enumerate(inputs.paths):
            jobs.append((str(tmp / f"rec-{len(srcs):05d}.txt"), len(srcs), inputs, path))
            srcs.append((s, index))
    if sum(_size(job[3]) for job in jobs) >= parallel_bytes and len(jobs) > 1:
        # Framing is CPU-bound Python: two forked processes (fork, before DuckDB
        # starts any thread; spawn would re-run a caller's unguarded main script).
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            headers = list(pool.map(stage_file, *zip(*jobs, strict=True)))
    else:
        headers = [stage_file(*job) for job in jobs]
    return Staged(tuple(srcs), tuple(headers))


def load_inputs(db: Any, tmp: Path, sides: tuple[SideInputs, ...], staged: Staged) -> None:
    """Create ``e`` and ``bad`` from the files :func:`stage_inputs` wrote (their
    ``side`` is the index of the input in ``sides``)."""
    files = [str(p) for p in sorted(tmp.glob("rec-*.txt")) if p.stat().st_size > 0]
    if files:
        spec = ", ".join(f"'{c}': '{t}'" for c, t in COLUMNS.items())
        # The delimiter is the 0x1F byte itself; DuckDB reads new_line='\n' as an escape.
        read = ("read_csv(?, header=false, delim='\x1f', quote='', escape='', new_line='\\n', "
                f"auto_detect=false, max_line_size={_MAX_STAGED_LINE}, "
                f"buffer_size={2 * _MAX_STAGED_LINE}, columns={{{spec}}})")
        try:  # the SQL is this module's constants; the staged files go in as a parameter
            db.execute(f"CREATE TABLE r AS SELECT * FROM {read}", [files])  # noqa: S608
        except duckdb.Error as exc:
            msg = (f"cannot load the inputs' records into DuckDB (a record over about "
                   f"{_MAX_STAGED_LINE * 3 // 4 >> 20} MiB?): {exc}")
            raise ValidationError(msg) from exc
    else:
        db.execute(f"CREATE TABLE r ({', '.join(f'{c} {t}' for c, t in COLUMNS.items())})")
    for statement in TABLES:
        db.execute(statement)
    for src, (s, _index) in enumerate(staged.srcs):
        inputs = sides[s]
        if inputs.format != "csv":
            classify_json(db, s, src, inputs)
        elif staged.headers[src]:
            classify_csv(db, s, src, inputs, staged.headers[src])
    db.execute("DROP TABLE r")


def dead_letters(
    db: Any, sides: tuple[SideInputs, ...], staged: Staged
) -> list[ExpectedDeadLetter]:
    """The rows of ``bad``."""
    out = []
    for src, off, problem, t, b, size in db.execute(
            "SELECT src, off, problem, t, b, size FROM bad ORDER BY src, off").fetchall():
        raw = base64.b64decode(b) if b is not None else (t or "").encode()
        s, index = staged.srcs[src]
        out.append(ExpectedDeadLetter(sides[s].side, sides[s].partition(index), int(off),
                                      problem, raw, len(raw) if size is None else int(size)))
    return out


def read_inputs(
    sides: tuple[SideInputs, ...],
) -> tuple[list[InputEvent], list[ExpectedDeadLetter]]:
    """The events and dead letters validate finds in the inputs of ``sides``,
    in file order."""
    with tempfile.TemporaryDirectory(prefix="streamjoin-validate-") as tmp_dir:
        tmp = Path(tmp_dir)
        staged = stage_inputs(tmp, sides, parallel_bytes=1 << 62)
        db = duckdb.connect()
        try:
            load_inputs(db, tmp, sides, staged)
            events = []
            for key, ts, eid, fp, src, off in db.execute(
                    "SELECT key, ts, eid, fp, src, off FROM e ORDER BY src, off").fetchall():
                inputs = sides[staged.srcs[src][0]]
                events.append(InputEvent(inputs.side, key, ts, eid.to_bytes(8, "big", signed=True),
                                         fp, inputs.partition(staged.srcs[src][1]), off))
            return events, dead_letters(db, sides, staged)
        finally:
            db.close()
