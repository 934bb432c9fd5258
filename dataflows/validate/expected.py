"""The expected output of a run: the batch interval join, computed with DuckDB.

From the tables ``e`` (input events) and ``l`` (late output) of
:mod:`dataflows.validate.tables`, following ``shared/design/semantics.md``,
"Exactness":

1. ``E`` = valid input events, ``L`` = the late output, both by identity
   ``(side, key, ts, eid)``; on-time = ``E - L`` as a multiset, then distinct
   (the join drops exact copies of a retained event, counted as duplicates):
   table ``d``, with each event's ``on_time`` copies;
2. pairs: ``l.key = r.key and l.ts + lower_ms <= r.ts <= l.ts + upper_ms``
   (table ``p``; the events in a pair are ``matched_ids``); unmatched rows of
   the outer side(s) (table ``u``);
3. expected ids with :func:`joins.match_id` / :func:`joins.unmatched_id`
   (recomputed here by :func:`pair_id` and :func:`row_id`, in Python: DuckDB
   has no BLAKE2), and the content fingerprints of the records: table ``x``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from hashlib import blake2b
from pathlib import Path
from typing import Any

from joins import JoinSpec

_TS_EID = struct.Struct(">qq")


def pair_id(key: str, lts: int, leid: int, rts: int, reid: int) -> str:
    """:func:`joins.match_id` of the pair, from the identity fields as stored here
    (``eid`` as a signed big-endian int64); a test holds the two together."""
    k = key.encode() + b"\x00"
    ident = b"M" + k + _TS_EID.pack(lts, leid) + b"|" + k + _TS_EID.pack(rts, reid)
    return blake2b(ident, digest_size=16).hexdigest()


def row_id(side: int, key: str, ts: int, eid: int) -> str:
    """:func:`joins.unmatched_id` of an event (``side`` 0 left, 1 right)."""
    tag = b"L" if side == 0 else b"R"
    return blake2b(tag + key.encode() + b"\x00" + _TS_EID.pack(ts, eid), digest_size=16).hexdigest()


def create_expected_tables(db: Any, tmp: Path, spec: JoinSpec) -> None:
    """Create the tables ``d``, ``p``, ``matched_ids``, ``u`` and ``x`` (see the
    module docstring); the ids go through files in ``tmp``."""
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
    # DuckDB has no BLAKE2: the ids are computed here, keyed by each row's rowid
    # (only the ids make the round trip through a file).
    pair, row = pair_id, row_id
    with (tmp / "pair-ids.csv").open("w", encoding="utf-8") as fo:
        for rows in _chunks(db, "SELECT rowid, key, lts, leid, rts, reid FROM p"):
            fo.write("".join([f"{r},{pair(key, lts, leid, rts, reid)}\n"
                              for r, key, lts, leid, rts, reid in rows]))
    with (tmp / "row-ids.csv").open("w", encoding="utf-8") as fo:
        for rows in _chunks(db, "SELECT rowid, side, key, ts, eid FROM u"):
            fo.write("".join([f"{r},{row(side, key, ts, eid)}\n"
                              for r, side, key, ts, eid in rows]))
    ids = ("read_csv(?, header=false, delim=',', quote='', escape='', auto_detect=false, "
           "columns={'r': 'BIGINT', 'id': 'VARCHAR'})")
    db.execute(
        f"CREATE TABLE x AS SELECT i.id, 'match' AS kind, p.key, lts, rts, lfp, rfp, "  # noqa: S608
        f"lsrc, loff, rsrc, roff FROM p JOIN {ids} i ON p.rowid = i.r "
        "UNION ALL SELECT i.id, CASE WHEN side = 0 THEN 'left_only' ELSE 'right_only' END, "
        "u.key, CASE WHEN side = 0 THEN ts END, CASE WHEN side = 1 THEN ts END, "
        "CASE WHEN side = 0 THEN fp END, CASE WHEN side = 1 THEN fp END, "
        "CASE WHEN side = 0 THEN src END, CASE WHEN side = 0 THEN off END, "
        "CASE WHEN side = 1 THEN src END, CASE WHEN side = 1 THEN off END "
        f"FROM u JOIN {ids} i ON u.rowid = i.r",
        [str(tmp / "pair-ids.csv"), str(tmp / "row-ids.csv")],
    )


def _chunks(db: Any, query: str, size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    cursor = db.execute(query)
    while True:
        rows = cursor.fetchmany(size)
        if not rows:
            return
        yield rows
