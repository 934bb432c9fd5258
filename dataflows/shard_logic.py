"""The stateful operator's logic: one :class:`ShardLogic` per virtual shard.

Bytewax keeps one logic object per state key in memory, so the key is the
*shard* (see :mod:`dataflows.shards`), never the join key. A logic wraps an
:class:`~joins.IntervalJoiner` over the shard's store and turns each batch that
``stateful_batch`` hands it into one call of the joiner: all events of the
activation plus the partition marks stamped on them (or, for a heartbeat, only
marks). Outputs are returned as one :class:`ShardOutput` per call, lists of the
joiner's values, so downstream steps see one item per batch, not per row.

The joiner evicts in committed chunks of at most ``eviction_chunk`` entries
(:meth:`~joins.IntervalJoiner.process_chunks`); each chunk becomes its own
:class:`ShardOutput`, so that no downstream item (and no sink write) holds more
than one chunk of unmatched rows.

At end of input :meth:`ShardLogic.on_eof` closes the joiner (``W = +inf``: all
state is evicted, chunk by chunk, and the outer rows emitted) and emits the
shard's final counters.

``snapshot()`` runs at every epoch close for every shard touched, even when
recovery is off: it returns ``None`` then (no work at all). Recovery (issue #4)
plugs in a ``snapshotter`` that returns a small frozen, versioned value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bytewax.operators import StatefulBatchLogic

from dataflows.console import reports_failures
from joins import (
    Event,
    IntervalJoiner,
    JoinOutput,
    JoinSpec,
    JoinStore,
    Late,
    Matched,
    PartitionMark,
    Unmatched,
)

if TYPE_CHECKING:
    from dataflows.metrics import JoinMetrics

#: What the router sends to a shard: the shard's name, events (possibly none)
#: and the marks of the partitions they came from (or heartbeat marks).
ShardInput = tuple[str, list[Event], list[PartitionMark]]

JoinedRow = Matched | Unmatched


@dataclass(frozen=True, slots=True)
class ShardOutput:
    """What one activation of a shard produced."""

    joined: list[JoinedRow] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    #: Final counters (``JoinCounters.to_dict()`` plus state size), at end of input only.
    final: dict[str, Any] | None = None


def _no_close(store: JoinStore) -> None:
    """Stores that hold nothing outside the process need no closing."""


@dataclass(frozen=True)
class ShardRuntime:
    """Worker-wide resources and parameters every shard logic of a flow shares.

    ``open_store(shard, resume)`` opens a shard's store (``resume`` is the
    snapshot it resumes from, ``None`` for a fresh start; issue #4);
    ``size_probe`` reads a store's size in bytes (or ``None``); ``snapshotter``
    returns a shard's snapshot, ``None`` keeps snapshots free (recovery off).
    """

    spec: JoinSpec
    partitions: tuple[str, ...]
    clock: Callable[[], int]
    open_store: Callable[[str, Any], JoinStore]
    close_store: Callable[[JoinStore], None] = _no_close
    size_probe: Callable[[JoinStore], int | None] | None = None
    snapshotter: Callable[[ShardLogic], Any] | None = None
    #: For a resumed shard: its name and the joiner's state (watermarks and
    #: counters, :meth:`~joins.IntervalJoiner.to_state`) held by the snapshot.
    resume_shard: Callable[[Any], str] | None = None
    resume_joiner_state: Callable[[Any], dict[str, Any] | None] | None = None
    #: The process's metrics (``None``: none); see :meth:`ShardLogic.report_snapshot`.
    metrics: JoinMetrics | None = None
    #: Entries evicted (and unmatched rows emitted) per chunk, each committed.
    eviction_chunk: int = 10_000


class ShardLogic(StatefulBatchLogic[ShardInput, ShardOutput, Any]):
    """An interval joiner over one shard's store, driven by Bytewax.

    Bytewax's builder does not say which key it builds for, so a fresh logic
    opens its shard on the first batch (every item names its shard).
    """

    @reports_failures
    def __init__(self, runtime: ShardRuntime, resume: Any = None) -> None:
        self.runtime = runtime
        self.shard = ""
        self.peak_state_bytes = 0
        self._batches = 0
        self._resume = resume
        self.store: JoinStore | None = None
        self.joiner: IntervalJoiner | None = None
        #: Held while the store is in use, so that a metrics scrape (another
        #: thread) reads the store between batches; snapshots take it too.
        self.state_lock = threading.RLock()
        if resume is not None and runtime.resume_shard is not None:
            # Bytewax builds resumed logics eagerly: open the shard now, so that
            # end of input closes it even if no item arrives.
            self._open(runtime.resume_shard(resume))

    def _open(self, shard: str) -> IntervalJoiner:
        rt = self.runtime
        self.shard = shard
        self.store = rt.open_store(shard, self._resume)
        state = None
        if self._resume is not None and rt.resume_joiner_state is not None:
            state = rt.resume_joiner_state(self._resume)
        self.joiner = IntervalJoiner(
            rt.spec,
            self.store,
            rt.partitions,
            rt.clock,
            eviction_chunk=rt.eviction_chunk,
            state=state,
        )
        if rt.metrics is not None:
            rt.metrics.state.register(shard, self.store, lock=self.state_lock)
        return self.joiner

    @reports_failures
    def on_batch(self, values: list[ShardInput]) -> tuple[list[ShardOutput], bool]:
        joiner = self.joiner
        if joiner is None:
            joiner = self._open(values[0][0])
        if len(values) == 1:
            _, events, marks = values[0]
        else:
            events, marks = [], []
            for _, evs, mks in values:
                events.extend(evs)
                marks.extend(mks)
        chunks = joiner.process_chunks(events, marks) if events else joiner.advance_chunks(marks)
        emitted = self._run(joiner, chunks, events)
        self._batches += 1
        if self.runtime.size_probe is not None and self._batches % 256 == 0:
            self._probe_size()
        return emitted, StatefulBatchLogic.RETAIN

    def _run(
        self, joiner: IntervalJoiner, chunks: Iterator[JoinOutput], events: list[Event]
    ) -> list[ShardOutput]:
        """Drain the joiner's ``chunks`` (under the state lock when metrics may
        scrape), one :class:`ShardOutput` per non-empty chunk; metrics see the
        call as one batch."""
        metrics = self.runtime.metrics
        emitted: list[ShardOutput] = []
        if metrics is None:
            for out in chunks:
                emitted.extend(self._emit(out))
            return emitted
        whole = JoinOutput()
        t0 = time.perf_counter()
        with self.state_lock:
            for out in chunks:
                emitted.extend(self._emit(out))
                whole.extend(out)
        metrics.observe_batch(
            self.shard, whole, joiner.counters, time.perf_counter() - t0, events
        )
        return emitted

    @reports_failures
    def on_eof(self) -> tuple[list[ShardOutput], bool]:
        joiner = self.joiner
        if joiner is None or self.store is None:
            return [], StatefulBatchLogic.DISCARD
        emitted = self._run(joiner, joiner.close_chunks(), [])
        self._probe_size()
        final: dict[str, Any] = joiner.counters.to_dict()
        final["kind"] = "shard"
        final["shard"] = self.shard
        final["peak_state_bytes"] = self.peak_state_bytes
        final["watermark_ms"] = joiner.watermark
        emitted.append(ShardOutput(final=final))
        metrics = self.runtime.metrics
        if metrics is not None:
            with self.state_lock:  # a scrape in progress skips it from here on
                metrics.forget_shard(self.shard)
        self.runtime.close_store(self.store)
        return emitted, StatefulBatchLogic.DISCARD

    @reports_failures
    def snapshot(self) -> Any:
        snapshotter = self.runtime.snapshotter
        if snapshotter is None:
            return None
        with self.state_lock:
            return snapshotter(self)

    def report_snapshot(self, seconds: float, size_bytes: int) -> None:
        """Recovery's hook: this shard's snapshot took ``seconds`` and wrote
        ``size_bytes`` (``streamjoin_snapshot_*``); a no-op without metrics."""
        if self.runtime.metrics is not None:
            self.runtime.metrics.observe_snapshot(seconds, size_bytes)

    def report_resume(self, seconds: float) -> None:
        """Recovery's hook: restoring this shard from its snapshot took
        ``seconds`` (``streamjoin_resume_duration_seconds``, resumed shards)."""
        if self.runtime.metrics is not None:
            self.runtime.metrics.observe_resume(seconds)

    def _probe_size(self) -> None:
        probe = self.runtime.size_probe
        if probe is None or self.store is None:
            return
        with self.state_lock:
            size = probe(self.store)
        if size is not None and size > self.peak_state_bytes:
            self.peak_state_bytes = size

    @staticmethod
    def _emit(out: JoinOutput) -> list[ShardOutput]:
        if not out.matched and not out.unmatched and not out.late:
            return []
        joined: list[JoinedRow] = []
        joined.extend(out.matched)
        joined.extend(out.unmatched)
        return [ShardOutput(joined, out.late)]
