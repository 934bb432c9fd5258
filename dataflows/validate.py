"""``streamjoin validate RUN_DIR``: check a finished run against the batch join.

A run directory holds ``run.json`` (spec, inputs, counters), ``joined/``,
``late/`` and ``invalid/``. Validation re-reads the inputs with
:func:`dataflows.decode.read_batches`, and with DuckDB computes the batch
interval join of the on-time events (``shared/design/semantics.md``,
"Exactness"):

1. ``E`` = valid input events, ``L`` = the late output, both by identity
   ``(side, key, ts, eid)``; on-time = ``E - L`` as a multiset, then distinct
   (the join drops exact copies of a retained event, counted as duplicates);
2. pairs: ``l.key = r.key and l.ts + lower_ms <= r.ts <= l.ts + upper_ms``;
   unmatched rows of the outer side(s);
3. expected ids with :func:`joins.match_id` / :func:`joins.unmatched_id`, and
   a content fingerprint of each record (BLAKE2b of its sorted-key JSON).

Then it compares the ``joined/`` rows by id (missing, extra, duplicated,
differing content), the late rows (each must be an input event, with
``lateness_ms = watermark_ms - allowed_lateness_ms - ts > 0``), the dead
letters (multiset of side, reason, raw, offset; partition names only
reported), and the counters (conservation per side and agreement with the
outputs). Exit status 0 only on an exact match.

Data moves into DuckDB through temporary CSV files (``read_csv`` is parallel
and much faster than inserting rows from Python).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

import duckdb

from dataflows.decode import Invalid, SourceFormat, read_batches
from dataflows.errors import ConfigError, ValidationError
from dataflows.outputs import output_files, read_file_rows, read_rows
from joins import SIDES, Event, JoinSpec, JoinSpecError, Side
from joins.counters import SideCounters

_SIDE_NO = {"left": 0, "right": 1}
_COUNTER_NAMES = (
    "events_in", "late", "duplicates", "stored", "evicted_matched",
    "unmatched_emitted", "unmatched_dropped", "retained",
)


@dataclass(frozen=True)
class Finding:
    """One kind of disagreement, how often it occurred, and a few examples."""

    problem: str
    count: int
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of :func:`validate`: ``ok`` iff there are no findings."""

    run_dir: Path
    findings: tuple[Finding, ...]
    stats: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def problems(self) -> set[str]:
        """The names of the problems found (for tests and scripts)."""
        return {f.problem for f in self.findings}

    def render(self) -> str:
        """A human-readable report."""
        lines = [f"validate {self.run_dir}"]
        lines += [f"  {name:<34} {value:>12,}" for name, value in self.stats.items()]
        for f in self.findings:
            lines.append(f"PROBLEM {f.problem}: {f.count:,}")
            lines += [f"    {example}" for example in f.examples]
        if self.ok:
            lines.append(f"OK: output matches the batch join exactly ({self.elapsed_s:.1f} s)")
        else:
            lines.append(
                f"FAILED: {len(self.findings)} kind(s) of problem ({self.elapsed_s:.1f} s)"
            )
        return "\n".join(lines)


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def _fp(record: Any) -> int:
    """Content fingerprint of a JSON-like record: equal for records that are equal as
    Python values (whatever their key order), as a signed 64-bit int.

    Uses Python's ``hash``, which is salted per interpreter: fingerprints are only
    compared within one process or a fork of it (see :func:`validate`). A flat
    record hashes as the frozenset of its items (fast); one with nested values,
    or NaN (which hashes by identity), as its sorted-key JSON text.
    """
    try:
        if all(v == v for v in record.values()):
            return hash(frozenset(record.items()))
    except TypeError:  # a nested list or dict is not hashable
        pass
    return hash(_canonical(record))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _nullable(value: Any) -> str:
    return "" if value is None else str(int(value))


def _as_json(record: Any) -> Any:
    return json.loads(_to_json(record))


_to_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


_TS_EID = struct.Struct(">qq")


def _pair_id(key: str, lts: int, leid: int, rts: int, reid: int) -> str:
    """:func:`joins.match_id` of the pair, from the identity fields as stored here
    (``eid`` as a signed big-endian int64); a test holds the two together."""
    k = key.encode() + b"\x00"
    ident = b"M" + k + _TS_EID.pack(lts, leid) + b"|" + k + _TS_EID.pack(rts, reid)
    return blake2b(ident, digest_size=16).hexdigest()


def _row_id(side: int, key: str, ts: int, eid: int) -> str:
    """:func:`joins.unmatched_id` of an event (``side`` 0 left, 1 right)."""
    tag = b"L" if side == 0 else b"R"
    return blake2b(tag + key.encode() + b"\x00" + _TS_EID.pack(ts, eid), digest_size=16).hexdigest()


def _eid_int(eid: bytes) -> int:
    return int.from_bytes(eid, "big", signed=True)


def _eid_bytes(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


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
                key_separator=conf.get("key_separator", "|"),
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


class _Check:
    """Collects findings."""

    def __init__(self, max_examples: int) -> None:
        self.max = max_examples
        self.findings: list[Finding] = []

    def add(self, problem: str, count: int, examples: Sequence[str] = ()) -> None:
        if count:
            self.findings.append(Finding(problem, count, tuple(examples[: self.max])))


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
    run, spec, inputs = _load_run(root)
    check = _Check(max_examples)
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
                jobs.append((_decode_file, (out_csv, inp.side, inp.fmt, path, index, src)))
                src += 1
        for number, joined_path in enumerate(joined_files):
            out_csv = str(tmp / f"joined-{number:05d}.csv")
            jobs.append((_read_joined_file, (out_csv, joined_path, number)))
        size = sum(_size(p) for p in sources) + sum(_size(str(p)) for p in joined_files)
        _read_late(tmp, root, spec, check, stats)
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
            if fn is _decode_file:
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
        _check_invalid(check, root, invalid, stats)
        db = duckdb.connect()
        try:
            db.execute("SET preserve_insertion_order = false")
            _load_tables(db, tmp)
            _check_late_identity(db, check)
            _expected(db, tmp, spec)
            _compare(db, check, sources, [p.name for p in joined_files], stats)
            _check_counters(check, run, db, stats, invalid)
        finally:
            db.close()
    return ValidationReport(root, tuple(check.findings), stats, time.monotonic() - started)


def _decode_file(
    out_csv: str, side: Side, fmt: SourceFormat, path: str, index: int, src: int
) -> tuple[list[Invalid], int]:
    """Decode one input file into ``out_csv``; return its dead letters and event count."""
    invalid: list[Invalid] = []
    valid = 0
    side_no = _SIDE_NO[side]
    fp, eid_int, quote = _fp, _eid_int, _quote
    # Avro records may hold bytes or datetimes, which the outputs carry as JSON
    # text: fingerprint what the output will hold.
    as_json = _as_json if fmt.format == "avro" else None
    partition = f"{side}:{index}:{Path(path).name}"
    with open(out_csv, "w", encoding="utf-8", newline="") as fo:
        for batch, _pos in read_batches(path, side, fmt, partition, 0, 10_000):
            rows = []
            for item in batch:
                if type(item) is Event:
                    rec = item.record if as_json is None else as_json(item.record)
                    rows.append(f"{side_no},{quote(item.key)},{item.ts},"
                                f"{eid_int(item.eid)},{fp(rec)},{src},{item.offset}\n")
                else:
                    assert isinstance(item, Invalid)  # noqa: S101 - narrows for mypy
                    invalid.append(item)
            valid += len(rows)
            fo.write("".join(rows))
    return invalid, valid


_CSV = ("read_csv(?, header=false, delim=',', quote='\"', escape='\"', nullstr='', "
        "auto_detect=false, columns={%s})")
_TABLES: dict[str, tuple[str, str]] = {
    "e": ("events-*.csv", "side TINYINT, key VARCHAR, ts BIGINT, eid BIGINT, fp BIGINT, "
                        "src INTEGER, off BIGINT"),
    "l": ("late.csv", "side TINYINT, key VARCHAR, ts BIGINT, eid BIGINT"),
    "a": ("joined-*.csv", "id VARCHAR, kind VARCHAR, key VARCHAR, lts BIGINT, rts BIGINT, "
                        "lfp BIGINT, rfp BIGINT, rowno BIGINT"),
    "x": ("expected.csv", "id VARCHAR, kind VARCHAR, key VARCHAR, lts BIGINT, rts BIGINT, "
                          "lfp BIGINT, rfp BIGINT, lsrc INTEGER, loff BIGINT, rsrc INTEGER, "
                          "roff BIGINT"),
}


def _load_table(db: Any, tmp: Path, table: str) -> None:
    """Create ``table`` from its CSV file (an empty file: an empty table)."""
    name, columns = _TABLES[table]
    paths = [str(p) for p in sorted(tmp.glob(name)) if p.stat().st_size > 0]
    # Table names and columns are the constants above, never input text.
    if not paths:
        db.execute(f"CREATE TABLE {table} ({columns})")
        return
    spec = ",".join(
        f"'{col}':'{typ}'" for col, typ in (c.split() for c in columns.split(", "))
    )
    db.execute(f"CREATE TABLE {table} AS SELECT * FROM {_CSV % spec}",  # noqa: S608
               [paths])


def _load_tables(db: Any, tmp: Path) -> None:
    for table in ("e", "l", "a"):
        _load_table(db, tmp, table)


def _check_invalid(
    check: _Check, root: Path, invalid: list[Invalid], stats: dict[str, int]
) -> None:
    expected = Counter((i.side, i.reason, i.raw, i.offset) for i in invalid)
    actual: Counter[tuple[Any, ...]] = Counter()
    for row in read_rows(root / "invalid"):
        actual[(row.get("side"), row.get("reason"), row.get("raw"), row.get("offset"))] += 1
    stats["invalid rows"] = sum(actual.values())
    missing = expected - actual
    extra = actual - expected
    check.add("missing_invalid", sum(missing.values()),
              [f"{s} offset {o}: {r} | {raw[:60]!r}" for s, r, raw, o in missing])
    check.add("extra_invalid", sum(extra.values()),
              [f"{s} offset {o}: {r} | {str(raw)[:60]!r}" for s, r, raw, o in extra])


def _read_late(
    tmp: Path, root: Path, spec: JoinSpec, check: _Check, stats: dict[str, int]
) -> None:
    late_csv = tmp / "late.csv"
    bad: list[str] = []
    n = 0
    with late_csv.open("w", newline="") as fo:
        writer = csv.writer(fo)
        for row in read_rows(root / "late"):
            n += 1
            try:
                side, key, ts, eid = row["side"], row["key"], int(row["ts"]), row["eid"]
                wm, lateness = int(row["watermark_ms"]), int(row["lateness_ms"])
                eid_value = _eid_int(bytes.fromhex(eid))
            except (KeyError, TypeError, ValueError) as exc:
                bad.append(f"late row {n}: no usable side/key/ts/eid/watermark ({exc})")
                continue
            if side not in _SIDE_NO or row.get("reason") != "late":
                bad.append(f"late row {n}: side {side!r}, reason {row.get('reason')!r}")
                continue
            if lateness != wm - spec.allowed_lateness_ms - ts or lateness <= 0:
                bad.append(f"late row {n}: {side} key {key!r} ts {ts}: lateness_ms {lateness} "
                           f"!= watermark_ms {wm} - allowed {spec.allowed_lateness_ms} - ts "
                           f"or <= 0")
            writer.writerow((_SIDE_NO[side], key, ts, eid_value))
    stats["late rows"] = n
    check.add("bad_late_record", len(bad), bad)


def _check_late_identity(db: Any, check: _Check) -> None:
    # Late rows that are no input event (or more copies than the input has).
    rows = db.execute(
        "WITH lc AS (SELECT side, key, ts, eid, count(*) AS n FROM l GROUP BY ALL), "
        "ec AS (SELECT side, key, ts, eid, count(*) AS n FROM e GROUP BY ALL) "
        "SELECT lc.side, lc.key, lc.ts, lc.eid, lc.n, coalesce(ec.n, 0) FROM lc "
        "LEFT JOIN ec USING (side, key, ts, eid) WHERE ec.n IS NULL OR lc.n > ec.n "
        "ORDER BY lc.side, lc.ts"
    ).fetchall()
    check.add(
        "late_not_in_input",
        sum(r[4] - r[5] for r in rows),
        [f"{SIDES[s]} key {k!r} ts {t} eid {_eid_bytes(i).hex()}: {n} late row(s), "
         f"{m} input event(s)" for s, k, t, i, n, m in rows],
    )


def _expected(db: Any, tmp: Path, spec: JoinSpec) -> None:
    db.execute(
        "CREATE TABLE d AS WITH ec AS (SELECT side, key, ts, eid, min(fp) AS fp, "
        "count(*) AS n, min(src) AS src, min(off) AS off FROM e GROUP BY side, key, ts, eid), "
        "lc AS (SELECT side, key, ts, eid, count(*) AS n FROM l GROUP BY ALL) "
        "SELECT ec.*, ec.n - coalesce(lc.n, 0) AS on_time FROM ec "
        "LEFT JOIN lc USING (side, key, ts, eid) WHERE ec.n > coalesce(lc.n, 0)"
    )
    db.execute(
        "CREATE TABLE p AS SELECT a.key, a.ts AS lts, a.eid AS leid, a.fp AS lfp, "
        "a.src AS lsrc, a.off AS loff, b.ts AS rts, b.eid AS reid, b.fp AS rfp, "
        "b.src AS rsrc, b.off AS roff "
        "FROM (SELECT * FROM d WHERE side = 0) a JOIN (SELECT * FROM d WHERE side = 1) b "
        "ON a.key = b.key AND b.ts >= a.ts + CAST(? AS BIGINT) "
        "AND b.ts <= a.ts + CAST(? AS BIGINT)",
        [spec.lower_ms, spec.upper_ms],
    )
    db.execute(
        "CREATE TABLE matched_ids AS SELECT DISTINCT 0 AS side, key, lts AS ts, leid AS eid "
        "FROM p UNION ALL SELECT DISTINCT 1, key, rts, reid FROM p"
    )
    db.execute(
        "CREATE TABLE u AS SELECT d.side, d.key, d.ts, d.eid, d.fp, d.src, d.off FROM d "
        "ANTI JOIN matched_ids m ON d.side = m.side AND d.key = m.key AND d.ts = m.ts "
        "AND d.eid = m.eid WHERE (d.side = 0 AND ?) OR (d.side = 1 AND ?)",
        [spec.outer_left, spec.outer_right],
    )
    expected_csv = tmp / "expected.csv"
    quote, pair_id, row_id = _quote, _pair_id, _row_id
    with expected_csv.open("w", encoding="utf-8", newline="") as fo:
        for rows in _chunks(db, "SELECT * FROM p"):
            fo.write("".join([
                f"{pair_id(key, lts, leid, rts, reid)},match,{quote(key)},{lts},{rts},"
                f"{lfp},{rfp},{lsrc},{loff},{rsrc},{roff}\n"
                for key, lts, leid, lfp, lsrc, loff, rts, reid, rfp, rsrc, roff in rows
            ]))
        for rows in _chunks(db, "SELECT * FROM u"):
            fo.write("".join([
                f"{row_id(side, key, ts, eid)},left_only,{quote(key)},{ts},,{fp},,{src},{off},,\n"
                if side == 0 else
                f"{row_id(side, key, ts, eid)},right_only,{quote(key)},,{ts},,{fp},,,{src},{off}\n"
                for side, key, ts, eid, fp, src, off in rows
            ]))
    _load_table(db, tmp, "x")


def _chunks(db: Any, query: str, size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    cursor = db.execute(query)
    while True:
        rows = cursor.fetchmany(size)
        if not rows:
            return
        yield rows


def _read_joined_file(out_csv: str, path: Path, number: int) -> tuple[int, list[str]]:
    """Fingerprint one joined-output file into ``out_csv``; return its row count and
    malformed rows. ``rowno`` is ``number << 32 | line``."""
    bad: list[str] = []
    n = 0
    base = number << 32
    fp, quote, nullable = _fp, _quote, _nullable
    with open(out_csv, "w", encoding="utf-8", newline="") as fo:
        out: list[str] = []
        for row in read_file_rows(path):
            n += 1
            try:
                left, right = row["left"], row["right"]
                out.append(
                    f"{quote(str(row['id']))},{quote(str(row['kind']))},"
                    f"{quote(str(row['key']))},{nullable(row['left_ts'])},"
                    f"{nullable(row['right_ts'])},{'' if left is None else fp(left)},"
                    f"{'' if right is None else fp(right)},{base | n}\n"
                )
            except KeyError as exc:
                bad.append(f"{path.name} row {n}: missing field {exc}")
            except (TypeError, ValueError) as exc:
                bad.append(f"{path.name} row {n}: malformed ({type(exc).__name__}: {exc})")
            if len(out) >= 10_000:
                fo.write("".join(out))
                out = []
        fo.write("".join(out))
    return n, bad


def _compare(
    db: Any, check: _Check, sources: list[str], joined: list[str], stats: dict[str, int]
) -> None:
    def src(i: int | None, off: int | None) -> str:
        return "-" if i is None else f"{Path(sources[i]).name}@{off}"

    def where(rowno: int) -> str:
        return f"{joined[rowno >> 32]}:{rowno & 0xFFFFFFFF}"

    def count_and(query: str, limit: int) -> tuple[int, list[tuple[Any, ...]]]:
        # ``query`` is one of the constant queries below, never input text.
        total = db.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]  # noqa: S608
        return int(total), db.execute(f"{query} LIMIT ?", [limit]).fetchall()

    stats["expected rows"] = db.execute("SELECT count(*) FROM x").fetchone()[0]
    stats["expected pairs"] = db.execute("SELECT count(*) FROM p").fetchone()[0]
    limit = check.max
    total, rows = count_and(
        "SELECT x.* FROM x ANTI JOIN a ON x.id = a.id ORDER BY coalesce(x.lts, x.rts), x.id",
        limit)
    check.add("missing_row", total, [
        f"{kind} key {key!r} left_ts {lts} right_ts {rts} id {i} "
        f"(left {src(ls, lo)}, right {src(rs, ro)})"
        for i, kind, key, lts, rts, _lf, _rf, ls, lo, rs, ro in rows])
    total, rows = count_and(
        "SELECT a.* FROM a ANTI JOIN x ON x.id = a.id ORDER BY a.rowno", limit)
    check.add("extra_row", total, [
        f"{where(no)}: {kind} key {key!r} left_ts {lts} right_ts {rts} id {i}"
        for i, kind, key, lts, rts, _lf, _rf, no in rows])
    total, rows = count_and(
        "SELECT id, count(*) AS n, min(kind), min(key) FROM a GROUP BY id HAVING count(*) > 1 "
        "ORDER BY id", limit)
    dup_rows = db.execute(
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM a GROUP BY id "
        "HAVING count(*) > 1)").fetchone()[0]
    check.add("duplicate_id", int(dup_rows), [
        f"id {i} appears {n} times ({kind} key {key!r})" for i, n, kind, key in rows])
    total, rows = count_and(
        "SELECT a.rowno, a.id, a.kind, x.kind, a.key, x.key, a.lts, x.lts, a.rts, x.rts, "
        "a.lfp = x.lfp OR (a.lfp IS NULL AND x.lfp IS NULL), "
        "a.rfp = x.rfp OR (a.rfp IS NULL AND x.rfp IS NULL) "
        "FROM a JOIN x ON a.id = x.id WHERE a.kind IS DISTINCT FROM x.kind "
        "OR a.key IS DISTINCT FROM x.key OR a.lts IS DISTINCT FROM x.lts "
        "OR a.rts IS DISTINCT FROM x.rts OR a.lfp IS DISTINCT FROM x.lfp "
        "OR a.rfp IS DISTINCT FROM x.rfp ORDER BY a.rowno", limit)
    check.add("content_differs", total, [
        f"{where(no)} id {i}: kind {ak}/{xk} key {ka!r}/{kx!r} left_ts {al}/{xl} "
        f"right_ts {ar}/{xr} left record {'same' if lok else 'DIFFERS'} "
        f"right record {'same' if rok else 'DIFFERS'} (actual/expected)"
        for no, i, ak, xk, ka, kx, al, xl, ar, xr, lok, rok in rows])


def _check_counters(
    check: _Check, run: dict[str, Any], db: Any, stats: dict[str, int], invalid: list[Invalid]
) -> None:
    counters = run.get("counters")
    if not isinstance(counters, dict):
        check.add("counters_missing", 1, ["run.json has no counters"])
        return
    bad: list[str] = []
    q = db.execute
    actual_pairs = q("SELECT count(*) FROM a WHERE kind = 'match'").fetchone()[0]
    if counters.get("pairs") != actual_pairs:
        bad.append(f"pairs = {counters.get('pairs')} but joined/ has {actual_pairs} match rows")
    for side in SIDES:
        s = _SIDE_NO[side]
        got = counters.get(side)
        if not isinstance(got, dict) or any(not isinstance(got.get(n), int)
                                            for n in _COUNTER_NAMES):
            bad.append(f"{side}: counters incomplete: {got!r} (need {', '.join(_COUNTER_NAMES)})")
            continue
        c = SideCounters(**{n: got[n] for n in _COUNTER_NAMES if n != "retained"})
        if got["retained"] != c.retained:
            bad.append(f"{side}: retained = {got['retained']} but stored - evicted = {c.retained}")
        if c.unaccounted():
            bad.append(f"{side}: conservation fails by {c.unaccounted()}: events_in "
                       f"{c.events_in} != late + duplicates + evicted_matched + "
                       f"unmatched_emitted + unmatched_dropped + retained")
        expect = {
            "events_in": stats[f"input events {side}"],
            "late": q("SELECT count(*) FROM l WHERE side = ?", [s]).fetchone()[0],
            "duplicates": q("SELECT coalesce(sum(on_time - 1), 0) FROM d WHERE side = ?",
                            [s]).fetchone()[0],
            "stored": q("SELECT count(*) FROM d WHERE side = ?", [s]).fetchone()[0],
            "evicted_matched": q("SELECT count(*) FROM matched_ids WHERE side = ?",
                                 [s]).fetchone()[0],
            "retained": 0,
        }
        unmatched = expect["stored"] - expect["evicted_matched"]
        outer = run["spec"]["how"] in (("left", "full") if side == "left" else ("right", "full"))
        expect["unmatched_emitted"] = unmatched if outer else 0
        expect["unmatched_dropped"] = 0 if outer else unmatched
        for name, value in expect.items():
            if got[name] != value:
                bad.append(f"{side}: {name} = {got[name]}, expected {int(value)}")
    inv = counters.get("invalid", {})
    for side in SIDES:
        n = sum(1 for i in invalid if i.side == side)
        if not isinstance(inv, dict) or inv.get(side) != n:
            got_n = inv.get(side) if isinstance(inv, dict) else inv
            bad.append(f"invalid.{side} = {got_n}, but the inputs hold {n} invalid records")
    check.add("counter_mismatch", len(bad), bad)


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
