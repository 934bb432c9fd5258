"""Comparing a run's outputs with what the batch join expects.

- the ``joined/`` rows (table ``a``) with the expected rows (table ``x`` of
  :mod:`dataflows.validate.expected`) by id: missing, extra, duplicated,
  differing content;
- the late rows (table ``l``): each must be an input event (table ``e``);
- the dead letters: a multiset of side, reason, raw, offset (partition names
  are only reported).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from dataflows.inputs import Invalid
from dataflows.outputs import encode_raw, read_rows
from dataflows.validate.report import FindingCollector
from dataflows.validate.tables import eid_bytes
from joins import SIDES


def check_invalid(
    check: FindingCollector, root: Path, invalid: list[Invalid], stats: dict[str, int]
) -> None:
    """Compare the run's ``invalid/`` rows with the dead letters of its inputs."""
    expected = Counter((i.side, i.reason, encode_raw(i.raw, i.binary)[0], i.offset)
                       for i in invalid)
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


def check_late_identity(db: Any, check: FindingCollector) -> None:
    """Report late rows that are no input event (or more copies than the input has)."""
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
        [f"{SIDES[s]} key {k!r} ts {t} eid {eid_bytes(i).hex()}: {n} late row(s), "
         f"{m} input event(s)" for s, k, t, i, n, m in rows],
    )


def compare_joined(
    db: Any, check: FindingCollector, sources: list[str], joined: list[str],
    stats: dict[str, int],
) -> None:
    """Compare the joined rows with the expected ones by id; ``sources`` and
    ``joined`` name the input and joined-output files, for the examples."""
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
