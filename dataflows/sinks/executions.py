"""The executions of a run: how long each worked, so that a resumed run's
summary counts all of them.

A run with ``--recovery-dir`` may take several executions: a crash (or a stop)
and the same command again, resuming from the last snapshot. Its counters are
cumulative (shards and sources restore theirs from the snapshot), so its
throughput must be measured over the time of *all* executions, not the last
one's. The parent records each execution in ``OUT/.run/execution-<start
ns>.json``: ``{"started_at" (epoch s), "mode" ("fresh", "resume" or "off"),
"active_s"}``, written at its start and rewritten while it runs
(:data:`RECORD_INTERVAL_S`) and at its end, so that an execution killed with
SIGKILL still counts up to its last record. A fresh run's output directory
starts without any (:mod:`dataflows.sinks.out_dir` deletes them with the
previous run's files); a resume keeps them.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

#: How often a running execution's record is rewritten.
RECORD_INTERVAL_S = 2.0
_NAME = re.compile(r"execution-([0-9]{20})\.json")


@dataclass(frozen=True)
class Executions:
    """What the records of a run's executions add up to."""

    count: int
    resumes: int
    active_s: float


class ExecutionRecord:
    """This execution's record (see the module docstring)."""

    def __init__(self, out_dir: str, mode: str) -> None:
        self._started_ns = time.time_ns()
        self._t0 = time.monotonic()
        self._mode = mode
        self.path = os.path.join(out_dir, ".run", f"execution-{self._started_ns:020d}.json")
        self._last = 0.0

    def write(self, active_s: float | None = None) -> None:
        """Record the time worked so far (``active_s``; default: since the start)."""
        active = time.monotonic() - self._t0 if active_s is None else active_s
        record = {"started_at": self._started_ns / 1e9, "mode": self._mode,
                  "active_s": round(active, 3)}
        tmp = f"{self.path}.tmp"
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, self.path)
        self._last = time.monotonic()

    def tick(self) -> None:
        """Rewrite the record if :data:`RECORD_INTERVAL_S` has passed (never fails:
        the summary at the end writes it again, and reports a disk that is full)."""
        if time.monotonic() - self._last >= RECORD_INTERVAL_S:
            try:
                self.write()
            except OSError:
                pass


def read_executions(out_dir: str) -> Executions:
    """The executions recorded in ``OUT/.run``."""
    directory = os.path.join(out_dir, ".run")
    records: list[dict[str, Any]] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    for name in names:
        if not _NAME.fullmatch(name):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                records.append(json.load(f))
        except (OSError, ValueError):
            continue
    return Executions(
        count=len(records),
        resumes=sum(1 for r in records if r.get("mode") == "resume"),
        active_s=sum(float(r.get("active_s", 0.0)) for r in records),
    )
