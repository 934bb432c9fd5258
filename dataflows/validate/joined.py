"""The run's ``joined/`` rows as the DuckDB table ``a``, read by DuckDB.

JSON Lines output files are read with ``read_json_objects``; Avro output files
are first rewritten as JSON Lines (fastavro, through
:func:`dataflows.outputs.read_file_rows`). Each row gives ``id, kind, key,
lts, rts`` and the content fingerprints ``lfp``/``rfp`` of its records
(the hash of the record's JSON as ``json_extract`` normalises it, the same as
``json()`` gives, which is how :mod:`dataflows.validate.records` fingerprints the
inputs; NULL for a missing side), and ``file``, the index of its output
file. A row that DuckDB cannot read as JSON (say, one holding an unpaired
surrogate escape such as ``"\ud800"``, which is no Unicode text), lacks a field
or has times that are not integers is reported (``malformed_joined_row``) and
left out of ``a``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dataflows.errors import ValidationError
from dataflows.outputs import read_file_rows
from dataflows.validate.report import FindingCollector

#: One parse of each row: its fields by path. ``json_extract`` gives a record
#: back normalised as ``json()`` would, so its hash is the inputs' fingerprint.
_ROWS = """
CREATE TABLE a0 AS
SELECT file, v[1] ->> '$' AS id, v[2] ->> '$' AS kind, v[3] ->> '$' AS key,
       v[4] IS NOT NULL AND v[5] IS NOT NULL AS has_records,
       CASE WHEN json_type(v[4]) <> 'NULL' THEN hash(v[4]) END AS lfp,
       CASE WHEN json_type(v[5]) <> 'NULL' THEN hash(v[5]) END AS rfp,
       v[6] AS lt, v[7] AS rt
FROM (SELECT list_position(?::VARCHAR[], filename) - 1 AS file,
             json_extract(json, ['$.id', '$.kind', '$.key', '$.left', '$.right',
                                 '$.left_ts', '$.right_ts']) AS v
      FROM read_json_objects(?, format='newline_delimited', filename=true, ignore_errors=true))
"""
_TS = "CASE WHEN json_type({v}) IN ('BIGINT', 'UBIGINT') THEN ({v})::VARCHAR::BIGINT END"
_TS_OK = "({v} IS NOT NULL AND json_type({v}) IN ('BIGINT', 'UBIGINT', 'NULL'))"


def _avro_as_jsonl(path: Path, out: Path) -> None:
    with out.open("w", encoding="utf-8") as fo:
        for row in read_file_rows(path):
            fo.write(json.dumps(row, separators=(",", ":")) + "\n")


def load_joined(db: Any, tmp: Path, files: list[Path], check: FindingCollector,
                stats: dict[str, int]) -> None:
    """Create the table ``a`` from the joined output ``files``."""
    sources: list[str] = []
    for number, path in enumerate(files):
        if path.suffix == ".avro":
            staged = tmp / f"joined-{number:05d}.jsonl"
            _avro_as_jsonl(path, staged)
            sources.append(str(staged))
        else:
            sources.append(str(path))
    readable = [s for s in sources if Path(s).stat().st_size > 0]
    if not readable:
        db.execute("CREATE TABLE a (file INTEGER, id VARCHAR, kind VARCHAR, key VARCHAR, "
                   "lts BIGINT, rts BIGINT, lfp UBIGINT, rfp UBIGINT)")
        stats["joined rows"] = 0
        return
    try:
        db.execute(_ROWS, [sources, readable])
    except Exception as exc:  # duckdb.Error: a file that is not JSON Lines
        msg = f"cannot read the joined output ({type(exc).__name__}: {exc})"
        raise ValidationError(msg) from exc
    ok = (f"id IS NOT NULL AND kind IS NOT NULL AND key IS NOT NULL AND has_records "
          f"AND {_TS_OK.format(v='lt')} AND {_TS_OK.format(v='rt')}")
    # The SQL below is this module's constants; input text only ever goes in as parameters.
    db.execute(
        "CREATE TABLE a AS SELECT file, id, kind, key, "  # noqa: S608
        f"{_TS.format(v='lt')} AS lts, {_TS.format(v='rt')} AS rts, lfp, rfp "
        f"FROM a0 WHERE {ok}"
    )
    total = db.execute("SELECT count(*) FROM a0").fetchone()[0]
    n_bad = db.execute(
        f"SELECT count(*) FROM a0 WHERE NOT coalesce({ok}, FALSE)").fetchone()[0]  # noqa: S608
    bad = db.execute(f"SELECT file, id FROM a0 WHERE NOT coalesce({ok}, FALSE) "  # noqa: S608
                     "ORDER BY file, id LIMIT ?", [check.max]).fetchall()
    names = [p.name for p in files]
    check.add("malformed_joined_row", n_bad,
              [f"{names[f]}: row id {i!r} lacks a field or has a non-integer time"
               if i is not None else f"{names[f]}: a row that is not JSON DuckDB reads"
               for f, i in bad])
    db.execute("DROP TABLE a0")
    stats["joined rows"] = int(total)
