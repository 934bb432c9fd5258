"""Final counters of a run: what every shard and source partition reports at
its end, left in ``OUT/.stats/`` (:func:`stats_dir`) for the parent to sum.

Without recovery, each worker writes one JSON Lines file
(:class:`StatsSink`, ``worker-<index>.jsonl``) and :func:`read_stats` reads
them all. A recovering run (``--recovery-dir``) writes one file per execution
and worker, ``ex-<start ns>-w<worker>.jsonl`` (:class:`ExecutionStatsSink`);
:func:`run_stats` keeps, per shard and per source partition, the item of the
newest execution (a shard or source that reached its end after the resume
epoch re-emits its totals in the next execution; totals of those that finished
before it are kept from the older file) and skips a line torn by a kill.
Sources snapshot their totals with their read position, shards with their
joiner state, so the kept items are the totals of the whole logical run.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.config import RunConfig
from dataflows.console import reports_failures
from dataflows.sinks.files import naming

#: Stats files of recovering runs: ``ex-<20-digit start ns>-w<3-digit worker>.jsonl``.
STATS_PREFIX = "ex-"


def stats_dir(out_dir: str) -> str:
    """Where the workers of a run leave their final counters."""
    return os.path.join(out_dir, ".stats")


class _StatsFile(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, path: str) -> None:
        self._path = path

    @reports_failures
    def write_batch(self, items: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(item, sort_keys=True) + "\n" for item in items)
        with naming(self._path), open(self._path, "a", encoding="utf-8") as f:
            f.write(text)


class ExecutionStatsSink(DynamicSink[dict[str, Any]]):
    """Final counters, one file per execution and worker (see :func:`run_stats`)."""

    def __init__(self, directory: str) -> None:
        self._dir = directory
        self._started_ns = time.time_ns()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StatsFile:
        os.makedirs(self._dir, exist_ok=True)
        name = f"{STATS_PREFIX}{self._started_ns:020d}-w{worker_index:03d}.jsonl"
        return _StatsFile(os.path.join(self._dir, name))


def _stats_key(item: dict[str, Any]) -> tuple[str, str] | None:
    kind = item.get("kind")
    if kind == "shard":
        return ("shard", str(item.get("shard")))
    if kind == "source":
        return ("source", str(item.get("partition")))
    return None


def run_stats(cfg: RunConfig) -> list[dict[str, Any]]:
    """The final counters of a run: per shard and source partition, the newest
    execution's item (recovering runs), or every item (runs without recovery)."""
    directory = stats_dir(cfg.out_dir)
    if not cfg.recovery_dir:
        return read_stats(directory)
    newest: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    others: list[dict[str, Any]] = []
    if not os.path.isdir(directory):
        return []
    for name in sorted(os.listdir(directory)):
        order = name.split("-w", 1)[0] if name.startswith(STATS_PREFIX) else ""
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            for line in f:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill (its execution re-emits it)
                key = _stats_key(item)
                if key is None:
                    others.append(item)
                    continue
                seen = newest.get(key)
                if seen is None or order >= seen[0]:
                    newest[key] = (order, item)
    return [item for _, item in newest.values()] + others


class StatsSink(DynamicSink[dict[str, Any]]):
    """Final counters of shards and sources, one JSON Lines file per worker.

    The parent process sums them into ``run.json`` (:mod:`dataflows.run`).
    """

    def __init__(self, directory: str) -> None:
        self._dir = directory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StatsFile:
        os.makedirs(self._dir, exist_ok=True)
        return _StatsFile(os.path.join(self._dir, f"worker-{worker_index:03d}.jsonl"))


def read_stats(directory: str) -> list[dict[str, Any]]:
    """Every item the :class:`StatsSink` files of a run hold."""
    items: list[dict[str, Any]] = []
    if not os.path.isdir(directory):
        return items
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            items.extend(json.loads(line) for line in f if line.strip())
    return items
