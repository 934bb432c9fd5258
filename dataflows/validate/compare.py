"""Comparing a run's outputs with what the batch join expects.

- the ``joined/`` rows (table ``a``, :mod:`dataflows.validate.joined`) with the
  expected rows (table ``x`` of :mod:`dataflows.validate.expected`) by id:
  missing, extra, duplicated, differing content;
- the late rows (table ``l``): each must be an input event (table ``e``);
- the dead letters (``invalid/``) with the ones validate found (table ``bad``,
  :mod:`dataflows.validate.records`): by side, partition and offset, and by
  their **exact bytes** (``raw`` under its ``raw_encoding``: ``utf-8``, the
  default, or ``base64``; a ``raw`` cut to its first bytes must say so with
  ``raw_truncated`` and give the full length as ``raw_bytes``). The reason
  texts are not compared: validate words its own (its class of problem), and
  both are shown in the examples.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from pathlib import Path
from typing import Any

from dataflows.outputs import read_rows
from dataflows.validate.reading import ExpectedDeadLetter
from dataflows.validate.report import FindingCollector
from dataflows.validate.tables import eid_bytes
from joins import SIDES

#: A dead letter keeps at least this many of a long record's bytes (1 MiB, less
#: a UTF-8 character that the cut would split).
RAW_KEPT_BYTES = (1 << 20) - 3


def _preview(raw: bytes) -> str:
    return repr(raw[:60])


def _row_raw(row: dict[str, Any]) -> bytes:
    """The bytes a dead-letter row holds (raises ``ValueError`` if it cannot say)."""
    raw, encoding = row.get("raw"), row.get("raw_encoding") or "utf-8"
    if not isinstance(raw, str):
        msg = f"raw is {type(raw).__name__}, not text"
        raise ValueError(msg)
    if encoding == "utf-8":
        return raw.encode("utf-8", "surrogatepass")
    if encoding == "base64":
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error as exc:
            msg = f"raw is not base64 ({exc})"
            raise ValueError(msg) from exc
    msg = f"unknown raw_encoding {encoding!r}"
    raise ValueError(msg)


def _raw_matches(row: dict[str, Any], got: bytes, want: bytes, want_len: int) -> str:
    """Why the row's bytes ``got`` are not the record's (``want``, ``want_len``
    bytes long), or ``""``."""
    declared = row.get("raw_bytes")
    cut = bool(row.get("raw_truncated")) or (isinstance(declared, int) and declared > len(got))
    if isinstance(declared, int) and declared >= 0 and declared != want_len:
        return f"raw_bytes {declared}, but the record has {want_len} bytes"
    if cut:
        if not want.startswith(got):
            return "its raw is not the start of the record's bytes"
        if len(got) < min(want_len, RAW_KEPT_BYTES):
            return f"its raw keeps {len(got)} of {want_len} bytes"
        if declared is None:
            return "it is cut without raw_bytes"
        return ""
    if got != want or len(want) != want_len:
        return f"raw {_preview(got)} is not the record's bytes {_preview(want)}"
    return ""


def check_invalid(check: FindingCollector, root: Path, letters: list[ExpectedDeadLetter],
                  stats: dict[str, int]) -> None:
    """Compare the run's ``invalid/`` rows with the dead letters validate found."""
    expected = {(d.side, d.partition, d.offset): d for d in letters}
    key: tuple[str, str, int]
    seen: Counter[tuple[str, str, int]] = Counter()
    extra: list[str] = []
    differs: list[str] = []
    n_rows = 0
    for row in read_rows(root / "invalid"):
        n_rows += 1
        key = (str(row.get("side")), str(row.get("partition")), _int(row.get("offset")))
        seen[key] += 1
        where = f"{key[0]} {key[1]} offset {key[2]}"
        if key not in expected or seen[key] > 1:
            extra.append(f"{where}: {row.get('reason')!r} (no such dead letter expected)")
            continue
        want = expected[key]
        try:
            why = _raw_matches(row, _row_raw(row), want.raw, want.raw_bytes)
        except ValueError as exc:
            why = str(exc)
        if why:
            differs.append(f"{where} ({want.problem}; the run: {row.get('reason')!r}): {why}")
    missing = [f"{d.side} {d.partition} offset {d.offset}: {d.problem} | {_preview(d.raw)}"
               for k, d in expected.items() if k not in seen]
    stats["invalid rows"] = n_rows
    check.add("missing_invalid", len(missing), missing)
    check.add("extra_invalid", len(extra), extra)
    check.add("invalid_raw_differs", len(differs), differs)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


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


_CMP = """
CREATE TEMP TABLE cmp AS
SELECT a.file, a.id AS aid, a.kind AS ak, a.key AS ka, a.lts AS al, a.rts AS ar,
       a.lfp AS alf, a.rfp AS arf, x.id AS xid, x.kind AS xk, x.key AS kx, x.lts AS xl,
       x.rts AS xr, x.lfp AS xlf, x.rfp AS xrf, x.lsrc, x.loff, x.rsrc, x.roff,
       CASE WHEN a.id IS NULL THEN 'missing' WHEN x.id IS NULL THEN 'extra'
            WHEN a.kind IS DISTINCT FROM x.kind OR a.key IS DISTINCT FROM x.key
              OR a.lts IS DISTINCT FROM x.lts OR a.rts IS DISTINCT FROM x.rts
              OR a.lfp IS DISTINCT FROM x.lfp OR a.rfp IS DISTINCT FROM x.rfp
            THEN 'differs' END AS what
FROM a FULL OUTER JOIN x ON a.id = x.id
"""


def compare_joined(
    db: Any, check: FindingCollector, sources: list[str], joined: list[str],
    stats: dict[str, int],
) -> None:
    """Compare the joined rows with the expected ones by id; ``sources`` and
    ``joined`` name the input and joined-output files, for the examples."""
    def src(i: int | None, off: int | None) -> str:
        return "-" if i is None else f"{Path(sources[i]).name}@{off}"

    stats["expected rows"] = db.execute("SELECT count(*) FROM x").fetchone()[0]
    stats["expected pairs"] = db.execute("SELECT count(*) FROM p").fetchone()[0]
    limit = check.max
    db.execute(_CMP)
    counts = dict(db.execute(
        "SELECT what, count(*) FROM cmp WHERE what IS NOT NULL GROUP BY what").fetchall())

    def examples(what: str, columns: str, order: str) -> list[tuple[Any, ...]]:
        if not counts.get(what):
            return []
        # ``columns`` and ``order`` are the constants below, never input text.
        query = f"SELECT {columns} FROM cmp WHERE what = ? ORDER BY {order} LIMIT ?"  # noqa: S608
        return list(db.execute(query, [what, limit]).fetchall())

    check.add("missing_row", counts.get("missing", 0), [
        f"{kind} key {key!r} left_ts {lts} right_ts {rts} id {i} "
        f"(left {src(ls, lo)}, right {src(rs, ro)})"
        for i, kind, key, lts, rts, ls, lo, rs, ro in examples(
            "missing", "xid, xk, kx, xl, xr, lsrc, loff, rsrc, roff",
            "coalesce(xl, xr), xid")])
    check.add("extra_row", counts.get("extra", 0), [
        f"{joined[no]}: {kind} key {key!r} left_ts {lts} right_ts {rts} id {i}"
        for no, i, kind, key, lts, rts in examples(
            "extra", "file, aid, ak, ka, al, ar", "file, aid")])
    dup_rows, dups = 0, []
    a_rows = db.execute("SELECT count(*) FROM a").fetchone()[0]
    # Every id of x that a has, once, plus a's extra rows: more rows mean repeats.
    if a_rows > stats["expected rows"] - counts.get("missing", 0) + counts.get("extra", 0) \
            or counts.get("extra", 0):
        dup_rows = db.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM a GROUP BY id "
            "HAVING count(*) > 1)").fetchone()[0]
        dups = db.execute(
            "SELECT id, count(*) AS n, min(kind), min(key) FROM a GROUP BY id "
            "HAVING count(*) > 1 ORDER BY id LIMIT ?", [limit]).fetchall()
    check.add("duplicate_id", int(dup_rows), [
        f"id {i} appears {n} times ({kind} key {key!r})" for i, n, kind, key in dups])
    check.add("content_differs", counts.get("differs", 0), [
        f"{joined[no]} id {i}: kind {ak}/{xk} key {ka!r}/{kx!r} left_ts {al}/{xl} "
        f"right_ts {ar}/{xr} left record {'same' if lok else 'DIFFERS'} "
        f"right record {'same' if rok else 'DIFFERS'} (actual/expected)"
        for no, i, ak, xk, ka, kx, al, xl, ar, xr, lok, rok in examples(
            "differs", "file, aid, ak, xk, ka, kx, al, xl, ar, xr, "
            "alf IS NOT DISTINCT FROM xlf, arf IS NOT DISTINCT FROM xrf", "file, aid")])
    db.execute("DROP TABLE cmp")
