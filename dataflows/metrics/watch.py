"""The run's progress, drawn by the parent from its workers' status files.

:class:`ProgressWatch` runs in the parent of ``streamjoin run``. It reads the
status every worker rewrites (:mod:`dataflows.metrics.status`), adds the
state's size on disk (the parent samples it anyway), and says where the run
is in one line:

    read 45.1%, ETA 12s | left 120,000 right 36,012 | 41,230 ev/s |
    W 2023-11-14 22:15:03 (lag 5.0s) | late 0/13 | invalid 0/2 | state 57.7 MiB

- for bounded inputs, the share read and an ETA at the current pace: each
  file's position against its size (CSV, JSON Lines: bytes; Avro: records,
  counted from the blocks' headers at the start), weighted by file size;
- events in per side (valid and invalid records read, over all executions of a
  resumed run) and the rate over the last seconds;
- the watermark ``W`` (the lowest over the shards that have not ended) and how
  far it is behind the newest event read; ``W end`` once every shard ended;
- late and invalid counts per side (left/right), the state on disk;
- a Kafka source's consumer lag (records behind the partitions' ends), shown
  as ``kafka lag N`` once a source reports a ``backlog``
  (:class:`~dataflows.sources.PartitionRead`).

On a terminal the line is redrawn in place twice a second
(:meth:`dataflows.console.Terminal.show`); off a terminal it is logged every
``--progress-interval`` as ``progress: ...``. ``--quiet`` starts no watch.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dataflows.config import RunConfig, format_duration
from dataflows.console import TERMINAL, Terminal, logger
from dataflows.inputs import count_records
from dataflows.metrics.status import read_statuses

#: How often the live line is redrawn on a terminal.
LIVE_INTERVAL_S = 0.5
#: Rates and the ETA are measured over this many seconds.
RATE_WINDOW_S = 5.0
_MIB = 1024 * 1024
_log = logger("progress")


@dataclass(frozen=True)
class InputSize:
    """A bounded input partition: its size in bytes and where its reader ends
    (bytes for CSV and JSON Lines, record indexes for Avro)."""

    size_bytes: int
    end_position: int


def input_sizes(cfg: RunConfig) -> dict[str, InputSize]:
    """The size and end position of every input file of ``cfg``, by partition."""
    sizes: dict[str, InputSize] = {}
    for side in (cfg.left, cfg.right):
        for name, path in zip(side.partition_names(), side.paths, strict=True):
            try:
                size = os.path.getsize(path)
                end = count_records(path) if side.format == "avro" else size
            except OSError:
                continue  # the run reports unreadable inputs itself
            sizes[name] = InputSize(size, end)
    return sizes


@dataclass(frozen=True)
class RunProgress:
    """The run's figures at one moment (see the module docstring)."""

    events: Mapping[str, int]
    invalid: Mapping[str, int]
    late: Mapping[str, int]
    #: The lowest watermark of the shards that have not ended; None: none yet.
    watermark_ms: int | None
    #: Every shard of every process has ended (end of input).
    ended: bool
    newest_ms: int | None
    state_bytes: int
    #: Share of the bounded inputs read (0..1); None: nothing to measure.
    read_share: float | None
    #: Records behind the ends of Kafka partitions; None: no source reports it.
    backlog: int | None

    @property
    def records(self) -> int:
        return sum(self.events.values()) + sum(self.invalid.values())


def aggregate(
    statuses: Iterable[Mapping[str, Any]],
    sizes: Mapping[str, InputSize],
    state_bytes: int,
) -> RunProgress:
    """One :class:`RunProgress` from the processes' statuses."""
    events = {"left": 0, "right": 0}
    invalid = {"left": 0, "right": 0}
    late = {"left": 0, "right": 0}
    watermarks: list[int] = []
    newest: int | None = None
    done: dict[str, float] = {}
    backlog: int | None = None
    statuses = list(statuses)
    for status in statuses:
        for side in late:
            late[side] += int(status.get("late", {}).get(side, 0))
        if status.get("watermark_ms") is not None:
            watermarks.append(int(status["watermark_ms"]))
        for name, part in status.get("partitions", {}).items():
            side = part.get("side", "left")
            events[side] = events.get(side, 0) + int(part.get("events", 0))
            invalid[side] = invalid.get(side, 0) + int(part.get("invalid", 0))
            if part.get("max_ts_ms") is not None:
                ts = int(part["max_ts_ms"])
                newest = ts if newest is None else max(newest, ts)
            if part.get("backlog") is not None:
                backlog = (backlog or 0) + int(part["backlog"])
            size = sizes.get(name)
            if size is not None:
                if part.get("closed") or size.end_position <= 0:
                    done[name] = 1.0
                else:
                    done[name] = min(1.0, int(part.get("position", 0)) / size.end_position)
    total = sum(s.size_bytes for s in sizes.values())
    share = None
    if sizes:
        read = sum(sizes[name].size_bytes * frac for name, frac in done.items())
        share = read / total if total else (1.0 if len(done) == len(sizes) else 0.0)
    ended = bool(statuses) and all(s.get("done") for s in statuses)
    return RunProgress(
        events=events,
        invalid=invalid,
        late=late,
        watermark_ms=min(watermarks) if watermarks else None,
        ended=ended,
        newest_ms=newest,
        state_bytes=state_bytes,
        read_share=share,
        backlog=backlog,
    )


def _when(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def _span(ms: float) -> str:
    """A duration for the eye: ``0.4s``, ``12s``, ``9m41s``, ``2h5m``."""
    if ms < 10_000:
        return f"{ms / 1000:.1f}s"
    if ms < 60_000:
        return f"{ms / 1000:.0f}s"
    whole = int(ms // 1000) * 1000
    if ms >= 3_600_000:
        whole = int(ms // 60_000) * 60_000
    return format_duration(whole)


def format_progress(p: RunProgress, rate: float | None, eta_s: float | None) -> str:
    """The progress line (see the module docstring); the figures that matter
    most come first, as a narrow terminal cuts the line's end."""
    parts = []
    if p.read_share is not None:
        read = f"read {p.read_share * 100:.1f}%"
        if p.read_share < 1.0:
            read += ", ETA " + ("-" if eta_s is None else _span(eta_s * 1000))
        parts.append(read)
    parts.append(f"left {p.events['left']:,} right {p.events['right']:,}")
    parts.append("- ev/s" if rate is None else f"{rate:,.0f} ev/s")
    if p.ended:
        parts.append("W end")
    elif p.watermark_ms is None:
        parts.append("W -")
    else:
        lag = ""
        if p.newest_ms is not None:
            lag = f" (lag {_span(max(0, p.newest_ms - p.watermark_ms))})"
        parts.append(f"W {_when(p.watermark_ms)}{lag}")
    if p.backlog is not None:
        parts.append(f"kafka lag {p.backlog:,}")
    parts.append(f"late {p.late['left']:,}/{p.late['right']:,}")
    parts.append(f"invalid {p.invalid['left']:,}/{p.invalid['right']:,}")
    parts.append(f"state {p.state_bytes / _MIB:,.1f} MiB")
    return " | ".join(parts)


class _Pace:
    """Records and share read over the last :data:`RATE_WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, int, float]] = deque()

    def add(
        self, now: float, records: int, share: float | None
    ) -> tuple[float | None, float | None]:
        """Add a point; the rate (records/s) and the ETA (s), when known."""
        self._points.append((now, records, share or 0.0))
        while len(self._points) > 2 and now - self._points[1][0] >= RATE_WINDOW_S:
            self._points.popleft()
        t0, r0, s0 = self._points[0]
        if now - t0 < 0.2:
            return None, None
        rate = max(0.0, (records - r0) / (now - t0))
        eta = None
        if share is not None and share > s0:
            eta = (1.0 - share) * (now - t0) / (share - s0)
        return rate, eta


class ProgressWatch(threading.Thread):
    """Draws (``live``) or logs the run's progress until :meth:`stop`.

    ``state_bytes`` returns the state's size on disk now; statuses written
    before ``since`` (epoch s: an earlier execution's) are ignored.
    """

    def __init__(
        self,
        cfg: RunConfig,
        *,
        live: bool,
        state_bytes: Callable[[], int],
        since: float,
        terminal: Terminal = TERMINAL,
    ) -> None:
        super().__init__(name="progress", daemon=True)
        self._cfg = cfg
        self._live = live
        self._state_bytes = state_bytes
        self._since = since
        self._terminal = terminal
        self._halt = threading.Event()
        self._pace = _Pace()
        self._sizes: dict[str, InputSize] | None = None
        self.lines = 0

    @property
    def interval_s(self) -> float:
        return LIVE_INTERVAL_S if self._live else self._cfg.progress_interval_ms / 1000.0

    def run(self) -> None:
        self._sizes = input_sizes(self._cfg)
        while not self._halt.wait(self.interval_s):
            self.tick()

    def tick(self) -> str | None:
        """Read the statuses and show (or log) the line; returns it."""
        statuses = [
            s
            for s in read_statuses(self._cfg.out_dir, self._cfg.processes)
            if float(s.get("time", 0)) >= self._since
        ]
        if not statuses:
            return None
        progress = aggregate(statuses, self._sizes or {}, self._state_bytes())
        rate, eta = self._pace.add(time.monotonic(), progress.records, progress.read_share)
        line = format_progress(progress, rate, eta)
        if self._live:
            self._terminal.show(line)
        else:
            _log.info("progress: %s", line)
        self.lines += 1
        return line

    def stop(self) -> None:
        """Stop drawing, and erase the live line."""
        self._halt.set()
        if self.is_alive():
            self.join()
        if self._live:
            self._terminal.clear()
