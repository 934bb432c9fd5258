"""File sources of both join sides, one Bytewax partition per file.

Each read yields one :class:`~dataflows.sources.marks.SourceBatch`: the decoded
events and invalid records of up to ``batch_size`` input records, plus the
partition's mark (:mod:`dataflows.sources.marks`).

Both sides are one Bytewax input, so that Bytewax spreads all files of both
sides evenly over the workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflows.config import InputConfig, RunConfig
from dataflows.config.source_budget import partition_batch_size
from dataflows.console import reports_failures
from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.sources.marks import Clock, MarkStamper, PartitionRead, SourceBatch, wall_ms
from joins import Event, Side


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where a file partition resumes: the decoder's position and the largest
    event time read before it (so the watermark does not restart from -inf)."""

    resume_pos: Any
    max_ts: int | None
    events: int = 0
    invalid: int = 0


# The recovery format: Bytewax pickles a file partition's snapshot, naming the
# class by module, and stores written before the sources became a package name
# ``dataflows.sources.FilePosition`` (re-exported there), so it keeps that name.
FilePosition.__module__ = "dataflows.sources"


class FilePartition(StatefulSourcePartition[SourceBatch, FilePosition]):
    """One input file of one side, read in batches through :mod:`dataflows.inputs`."""

    def __init__(
        self,
        side: Side,
        path: str,
        fmt: SourceFormat,
        partition: str,
        batch_size: int,
        heartbeat_ms: int,
        resume: FilePosition | None,
        clock: Clock = wall_ms,
    ) -> None:
        start = resume.resume_pos if resume is not None else 0
        self._side: Side = side
        self._batches: Iterator[tuple[list[Event | Invalid], Any]] = read_batches(
            path, side, fmt, partition, start=start, batch_size=batch_size
        )
        self._pos = start
        self._stamper = MarkStamper(
            partition, resume.max_ts if resume else None, heartbeat_ms, clock
        )
        self._events = resume.events if resume else 0
        self._invalid = resume.invalid if resume else 0
        self._done = False

    @reports_failures
    def next_batch(self) -> list[SourceBatch]:
        if self._done:
            raise StopIteration
        try:
            items, self._pos = next(self._batches)
        except StopIteration:
            self._done = True
            mark, _ = self._stamper.stamp([], closed=True)
            totals = {
                "kind": "source",
                "partition": mark.partition,
                "side": self._side,
                "events": self._events,
                "invalid": self._invalid,
            }
            read = PartitionRead(self._pos, self._events, self._invalid)
            return [SourceBatch(self._side, [], [], mark, True, totals, read)]
        events: list[Event] = []
        invalid: list[Invalid] = []
        for item in items:
            (events if type(item) is Event else invalid).append(item)  # type: ignore[arg-type]
        self._events += len(events)
        self._invalid += len(invalid)
        mark, broadcast = self._stamper.stamp(events)
        read = PartitionRead(self._pos, self._events, self._invalid)
        return [SourceBatch(self._side, events, invalid, mark, broadcast, None, read)]

    @reports_failures
    def snapshot(self) -> FilePosition:
        return FilePosition(self._pos, self._stamper.max_ts, self._events, self._invalid)


def source_format(cfg: InputConfig) -> SourceFormat:
    """The decoder settings of one side."""
    return SourceFormat(cfg.format, cfg.key_fields, cfg.time_field, cfg.time_unit)


class FileSource(FixedPartitionedSource[SourceBatch, FilePosition]):
    """The files of both sides as one partitioned source (partition = one file)."""

    def __init__(self, cfg: RunConfig, clock: Clock = wall_ms) -> None:
        self._parts: dict[str, tuple[Side, str, SourceFormat]] = {}
        for side_cfg in (cfg.left, cfg.right):
            fmt = source_format(side_cfg)
            for name, path in zip(side_cfg.partition_names(), side_cfg.paths, strict=True):
                self._parts[name] = (side_cfg.side, path, fmt)
        # Cut to a share of the process's budget with many partitions.
        self._batch_size = partition_batch_size(cfg.batch_size, len(self._parts), cfg.processes)
        self._heartbeat_ms = cfg.heartbeat_ms
        self._clock = clock

    def list_parts(self) -> list[str]:
        return list(self._parts)

    @reports_failures
    def build_part(
        self, step_id: str, for_part: str, resume_state: FilePosition | None
    ) -> FilePartition:
        side, path, fmt = self._parts[for_part]
        return FilePartition(
            side,
            path,
            fmt,
            for_part,
            self._batch_size,
            self._heartbeat_ms,
            resume_state,
            self._clock,
        )
