"""The late rows, which ``streamjoin validate`` hands DuckDB through a CSV file,
and the conventions all its tables share.

- ``l`` (``late.csv``): the rows of the run's ``late/`` output (:func:`read_late`).

The inputs (``r`` to ``e`` and ``bad``) and the joined rows (``a``) are read by
DuckDB itself (:mod:`dataflows.validate.records`, :mod:`dataflows.validate.joined`);
the expected rows ``x`` are :mod:`dataflows.validate.expected`'s.

In all tables a side is ``0`` (left) or ``1`` (right) and an ``eid`` is its 8
bytes as a signed big-endian int64. Late rows that cannot be read are reported
(``bad_late_record``), as are late rows whose ``lateness_ms`` is not
``watermark_ms - allowed_lateness_ms - ts > 0``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from dataflows.outputs import read_rows
from dataflows.validate.report import FindingCollector
from joins import JoinSpec

SIDE_NO = {"left": 0, "right": 1}


def eid_int(eid: bytes) -> int:
    """An event id as stored in the tables: a signed big-endian int64."""
    return int.from_bytes(eid, "big", signed=True)


def eid_bytes(value: int) -> bytes:
    """The inverse of :func:`eid_int`."""
    return value.to_bytes(8, "big", signed=True)


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
    "l": ("late.csv", "side TINYINT, key VARCHAR, ts BIGINT, eid BIGINT"),
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
