"""Each worker's progress as a small status file the parent reads: ``OUT/.run/status-<i>.json``.

The parent of a run draws one progress line for all its processes
(:mod:`dataflows.metrics.watch`). Scraping every worker's ``/metrics`` for it
would count as scrapes (and make workers linger at the end for a final one,
:mod:`dataflows.metrics.wiring`) and cost a text exposition a second; instead
each worker rewrites one small JSON file twice a second from what its metrics
already hold (:meth:`~dataflows.metrics.progress.ProcessProgress.status`), by
writing a temporary file and renaming it over the old one, so a reader never
sees half a file. The file stays after the run: ``cat OUT/.run/status-0.json``
shows how far a process got.

Content: ``{"process", "pid", "time" (epoch s), "partitions": {name: {"side",
"position", "events", "invalid", "max_ts_ms", "closed", "backlog"}}, "late":
{"left", "right"}, "watermark_ms", "shards", "done"}``; ``done`` is written
once, when the process's flow has ended.

Writing never fails the worker: a status file that cannot be written (a full
disk is reported by the outputs themselves) is skipped until it can.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from dataflows.console import logger
from dataflows.metrics.progress import ProcessProgress

#: How often a worker rewrites its status file.
STATUS_INTERVAL_S = 0.5
_log = logger("metrics")


def status_path(out_dir: str, process_id: int) -> str:
    """Where process ``process_id`` of a run keeps its status."""
    return os.path.join(out_dir, ".run", f"status-{process_id}.json")


class StatusWriter(threading.Thread):
    """Rewrites a process's status file every ``interval_s`` until :meth:`finish`."""

    def __init__(
        self,
        out_dir: str,
        process_id: int,
        progress: ProcessProgress,
        interval_s: float = STATUS_INTERVAL_S,
    ) -> None:
        super().__init__(name="status-writer", daemon=True)
        self.path = status_path(out_dir, process_id)
        self._process_id = process_id
        self._progress = progress
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._failed = False

    def run(self) -> None:
        while not self._halt.wait(self._interval_s):
            self.write()

    def write(self, *, done: bool = False) -> None:
        """Write the status now (``done``: the flow has ended)."""
        status: dict[str, Any] = {
            "process": self._process_id,
            "pid": os.getpid(),
            "time": time.time(),
            **self._progress.status(),
            "done": done,
        }
        tmp = f"{self.path}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(status, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failed:  # say it once; the outputs report a full disk themselves
                _log.debug("cannot write the status file %s: %s", self.path, exc)
            self._failed = True
            return
        self._failed = False

    def finish(self) -> None:
        """Stop rewriting; write the final status (``done``)."""
        self._halt.set()
        if self.is_alive():
            self.join()
        self.write(done=True)


def read_statuses(out_dir: str, processes: int) -> list[dict[str, Any]]:
    """The statuses the processes of a run wrote (missing or unreadable ones
    left out: a process that has not written yet)."""
    found = []
    for i in range(processes):
        try:
            with open(status_path(out_dir, i), encoding="utf-8") as f:
                found.append(json.load(f))
        except (OSError, ValueError):
            continue
    return found
