"""Checking a run's counters (``run.json``) against its inputs and outputs.

Per side, the counters must be complete and conserve events (``events_in`` =
late + duplicates + evicted_matched + unmatched_emitted + unmatched_dropped +
retained, with ``retained`` = stored - evicted), and each must agree with what
the tables of :mod:`dataflows.validate.tables` and
:mod:`dataflows.validate.expected` hold; ``pairs`` must equal the ``match``
rows of ``joined/``, and ``invalid`` the dead letters validate found in the
inputs, per side. All disagreements are one finding, ``counter_mismatch``.
"""

from __future__ import annotations

from typing import Any

from dataflows.validate.report import FindingCollector
from dataflows.validate.tables import SIDE_NO
from joins import SIDES
from joins.counters import SideCounters

_COUNTER_NAMES = (
    "events_in", "late", "duplicates", "stored", "evicted_matched",
    "unmatched_emitted", "unmatched_dropped", "retained",
)


def check_counters(
    check: FindingCollector, run: dict[str, Any], db: Any, stats: dict[str, int]
) -> None:
    """Check ``run["counters"]`` (see the module docstring); ``stats`` must hold the
    input event and dead-letter counts per side."""
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
        s = SIDE_NO[side]
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
        n = stats[f"input invalid {side}"]
        if not isinstance(inv, dict) or inv.get(side) != n:
            got_n = inv.get(side) if isinstance(inv, dict) else inv
            bad.append(f"invalid.{side} = {got_n}, but the inputs hold {n} invalid records")
    check.add("counter_mismatch", len(bad), bad)
