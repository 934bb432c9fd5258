"""The tables ``streamjoin validate`` gives DuckDB, and how they are written.

Data moves into DuckDB through temporary CSV files (``read_csv`` is parallel
and much faster than inserting rows from Python), one or more per table:

- ``e`` (``events-*.csv``): the valid input events, re-read with
  :func:`dataflows.inputs.read_batches`, one file per input file;
- ``l`` (``late.csv``): the rows of the run's ``late/`` output;
- ``a`` (``joined-*.csv``): the rows of the run's ``joined/`` output, one file
  per output file;
- ``x`` (``expected.csv``): the expected rows, written by
  :mod:`dataflows.validate.expected`.

In all of them a side is ``0`` (left) or ``1`` (right), an ``eid`` is its
8 bytes as a signed big-endian int64, and a record is its content fingerprint
(:func:`fingerprint`). Rows that cannot be read are reported as findings
(``malformed_joined_row``, ``bad_late_record``), the latter including late rows
whose ``lateness_ms`` is not ``watermark_ms - allowed_lateness_ms - ts > 0``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.outputs import read_file_rows, read_rows
from dataflows.validate.report import FindingCollector
from joins import Event, JoinSpec, Side

SIDE_NO = {"left": 0, "right": 1}

_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_to_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


def fingerprint(record: Any) -> int:
    """Content fingerprint of a JSON-like record: equal for records that are equal as
    Python values (whatever their key order), as a signed 64-bit int.

    Uses Python's ``hash``, which is salted per interpreter: fingerprints are only
    compared within one process or a fork of it (see
    :func:`dataflows.validate.validate`). A flat record hashes as the frozenset of
    its items (fast); one with nested values, or NaN (which hashes by identity), as
    its sorted-key JSON text.
    """
    try:
        if all(v == v for v in record.values()):
            return hash(frozenset(record.items()))
    except TypeError:  # a nested list or dict is not hashable
        pass
    return hash(_canonical(record))


def csv_quote(text: str) -> str:
    """``text`` as one quoted CSV field."""
    return '"' + text.replace('"', '""') + '"'


def _nullable(value: Any) -> str:
    return "" if value is None else str(int(value))


def _as_json(record: Any) -> Any:
    return json.loads(_to_json(record))


def eid_int(eid: bytes) -> int:
    """An event id as stored in the tables: a signed big-endian int64."""
    return int.from_bytes(eid, "big", signed=True)


def eid_bytes(value: int) -> bytes:
    """The inverse of :func:`eid_int`."""
    return value.to_bytes(8, "big", signed=True)


def decode_input_file(
    out_csv: str, side: Side, fmt: SourceFormat, path: str, index: int, src: int
) -> tuple[list[Invalid], int]:
    """Decode one input file into ``out_csv``; return its dead letters and event count."""
    invalid: list[Invalid] = []
    valid = 0
    side_no = SIDE_NO[side]
    fp, to_int, quote = fingerprint, eid_int, csv_quote
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
                                f"{to_int(item.eid)},{fp(rec)},{src},{item.offset}\n")
                else:
                    assert isinstance(item, Invalid)  # noqa: S101 - narrows for mypy
                    invalid.append(item)
            valid += len(rows)
            fo.write("".join(rows))
    return invalid, valid


def read_joined_file(out_csv: str, path: Path, number: int) -> tuple[int, list[str]]:
    """Fingerprint one joined-output file into ``out_csv``; return its row count and
    malformed rows. ``rowno`` is ``number << 32 | line``."""
    bad: list[str] = []
    n = 0
    base = number << 32
    fp, quote, nullable = fingerprint, csv_quote, _nullable
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


def read_late(
    tmp: Path, root: Path, spec: JoinSpec, check: FindingCollector, stats: dict[str, int]
) -> None:
    """Write the run's late rows to ``tmp/late.csv``, reporting unusable ones and
    ones whose ``lateness_ms`` does not follow from their watermark."""
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
                eid_value = eid_int(bytes.fromhex(eid))
            except (KeyError, TypeError, ValueError) as exc:
                bad.append(f"late row {n}: no usable side/key/ts/eid/watermark ({exc})")
                continue
            if side not in SIDE_NO or row.get("reason") != "late":
                bad.append(f"late row {n}: side {side!r}, reason {row.get('reason')!r}")
                continue
            if lateness != wm - spec.allowed_lateness_ms - ts or lateness <= 0:
                bad.append(f"late row {n}: {side} key {key!r} ts {ts}: lateness_ms {lateness} "
                           f"!= watermark_ms {wm} - allowed {spec.allowed_lateness_ms} - ts "
                           f"or <= 0")
            writer.writerow((SIDE_NO[side], key, ts, eid_value))
    stats["late rows"] = n
    check.add("bad_late_record", len(bad), bad)


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


def load_table(db: Any, tmp: Path, table: str) -> None:
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


def load_tables(db: Any, tmp: Path) -> None:
    """Create the tables of the run's inputs and outputs: ``e``, ``l`` and ``a``."""
    for table in ("e", "l", "a"):
        load_table(db, tmp, table)
