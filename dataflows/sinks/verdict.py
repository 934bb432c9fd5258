"""What a finished run's counters say about its inputs.

A run whose records are mostly invalid has most likely been given the wrong
settings (a time field that does not exist, the wrong format) rather than bad
data, and its outputs are then nearly empty: it should not end like a run that
went well.

- A side whose share of invalid records (dead letters) is above
  ``--max-invalid-fraction`` (default 0.5) fails the run: exit status 1, with
  one line naming the side, the share, the most common reason and the fix,
  after the outputs, ``run.json`` and the summary are written (the dead letters
  are what to look at).
- A side without a single valid event, or without any record at all, is named
  in a warning whatever the fraction (with ``--max-invalid-fraction 1`` a run
  of invalid records only still ends with status 0, but says so).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dataflows.errors import ValidationError
from dataflows.outputs import read_rows

#: Dead letters looked at for the most common reason.
REASON_SAMPLE = 10_000


@dataclass(frozen=True)
class InputVerdict:
    """Warnings (``notes``) and reasons to fail (``failures``), one line each."""

    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _common_reasons(invalid_dir: str) -> dict[str, str]:
    """The most common reason per side among the first dead letters."""
    counts: dict[str, Counter[str]] = {"left": Counter(), "right": Counter()}
    try:
        for i, row in enumerate(read_rows(invalid_dir)):
            if i >= REASON_SAMPLE:
                break
            side = row.get("side")
            if side in counts:
                counts[side][str(row.get("reason"))] += 1
    except (ValidationError, OSError, ValueError):
        pass  # the verdict stands without an example
    return {side: c.most_common(1)[0][0] for side, c in counts.items() if c}


def input_verdict(summary: dict[str, Any], max_invalid_fraction: float) -> InputVerdict:
    """The verdict on ``summary`` (``run.json``'s content)."""
    invalid = summary["counters"]["invalid"]
    read = summary["events_read"]
    verdict = InputVerdict()
    reasons: dict[str, str] | None = None
    for side in ("left", "right"):
        bad, good = int(invalid[side]), int(read[side])
        records = bad + good
        if records == 0:
            verdict.notes.append(
                f"{side} input: no records at all (empty files?): nothing of the {side} side "
                "was joined"
            )
            continue
        share = bad / records
        if good and share <= max_invalid_fraction:
            continue
        if reasons is None:
            reasons = _common_reasons(str(summary["outputs"]["invalid"]))
        example = f"; most often: {reasons[side]}" if side in reasons else ""
        where = os.path.join(str(summary["outputs"]["invalid"]), "")
        what = (
            f"{side} input: no valid events: all {records:,} records were invalid"
            if not good
            else f"{side} input: {bad:,} of {records:,} records ({share:.1%}) were invalid"
        )
        if share > max_invalid_fraction:
            verdict.failures.append(
                f"{what}, more than --max-invalid-fraction {max_invalid_fraction:g}{example} "
                f"(every one in {where}): check --{side}-format, --{side}-key-field, "
                f"--{side}-time-field and --{side}-time-unit, or raise --max-invalid-fraction"
            )
        else:
            verdict.notes.append(f"{what}{example} (every one in {where})")
    return verdict
