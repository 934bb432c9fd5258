"""The hottest keys' share of state, estimated without naming a key.

Retained entries per key are not something the store can count cheaply (that
would be a scan of the whole state), so the metrics estimate them from the
input: a key that brings ``r`` events per unit of event time holds about
``r * horizon`` entries while each is retained for ``horizon``. An exponentially
decayed count with time constant ``horizon`` converges to exactly that, so

- each side keeps a Misra-Gries summary (at most ``capacity`` keys; any key's
  count is underestimated by at most ``total / (capacity + 1)``) of decayed
  event counts, and
- decay is *forward* decay (Cormode et al., 2009): an event at ``ts`` adds
  ``exp((ts - t0) / horizon)``; reading at reference time ``t`` divides by
  ``exp((t - t0) / horizon)``. Nothing is touched when time moves, and
  ``t0`` is moved forward (all weights rescaled) before the exponent grows large.

The keys stay inside the summary; only their ranked counts leave it
(:meth:`HotKeys.top`), so no join key ever becomes a label.
:class:`SampledHotKeys` feeds both sides' summaries from a strided sample of
each batch the shard logic processes.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence

from joins import Event, JoinSpec, Side
from joins.events import SIDES
from joins.watermark import WM_MIN

#: How many of the hottest keys are exported (rank ``"1"`` is the hottest).
HOT_KEY_RANKS = 5

#: Rescale the weights when the exponent passes this (``exp(60)`` ~ 1e26:
#: far from float overflow, and the relative precision of a float is kept).
_RESCALE_AT = 60.0


class HotKeys:
    """Approximate top-k of decayed per-key event counts over one side's input.

    Thread-safe: :meth:`add` runs on a worker thread, :meth:`top` at scrape time.
    """

    def __init__(self, horizon_ms: int, *, capacity: int = 64) -> None:
        if horizon_ms <= 0:
            msg = f"horizon_ms must be > 0 ms, got {horizon_ms} ms"
            raise ValueError(msg)
        if capacity <= 0:
            msg = f"capacity must be > 0 keys, got {capacity}"
            raise ValueError(msg)
        self.horizon_ms = horizon_ms
        self.capacity = capacity
        self._lock = threading.Lock()
        self._counts: dict[str, float] = {}
        self._total = 0.0
        self._t0: int | None = None
        self._ref_ms: int | None = None

    def add(self, keys: Iterable[str], ts_ms: int, *, weight: float = 1.0) -> None:
        """Count one batch of events (their keys) at event time ``ts_ms``, each as
        ``weight`` events (a sample of one event in N counts N times).

        A batch spans little event time compared with the horizon, so one weight
        (that of the batch's newest event) serves all of its events.
        """
        batch = Counter(keys)
        if not batch:
            return
        with self._lock:
            if self._t0 is None:
                self._t0 = ts_ms
            if self._ref_ms is None or ts_ms > self._ref_ms:
                self._ref_ms = ts_ms
            exponent = (ts_ms - self._t0) / self.horizon_ms
            if exponent > _RESCALE_AT:
                self._rescale(ts_ms)
                exponent = 0.0
            weight *= math.exp(max(exponent, -_RESCALE_AT))
            counts = self._counts
            for key, n in batch.items():
                counts[key] = counts.get(key, 0.0) + n * weight
            self._total += batch.total() * weight
            if len(counts) > self.capacity:
                self._reduce()

    def _rescale(self, new_t0: int) -> None:
        if self._t0 is None:
            return
        factor = math.exp(-(new_t0 - self._t0) / self.horizon_ms)
        self._counts = {k: v * factor for k, v in self._counts.items() if v * factor > 0.0}
        self._total *= factor
        self._t0 = new_t0

    def _reduce(self) -> None:
        # Misra-Gries: subtract the (capacity + 1)-th largest count from all and
        # keep what stays positive (at most ``capacity`` keys).
        counts = self._counts
        cut = heapq.nlargest(self.capacity + 1, counts.values())[-1]
        self._counts = {k: v - cut for k, v in counts.items() if v > cut}

    def top(self, k: int) -> tuple[list[float], float]:
        """The ``k`` largest estimated entry counts (largest first, padded with
        zeros) and the estimated total, both as of the newest event time seen."""
        with self._lock:
            if self._t0 is None or self._ref_ms is None:
                return [0.0] * k, 0.0
            scale = math.exp(-(self._ref_ms - self._t0) / self.horizon_ms)
            # A key with r events per ms has a decayed count of about
            # r * horizon, the entries it holds while each is kept for horizon.
            best = heapq.nlargest(k, self._counts.values())
            total = self._total
        values = [v * scale for v in best] + [0.0] * (k - len(best))
        return values, total * scale

    def share(self, k: int) -> float:
        """Estimated share (0..1) of the ``k`` hottest keys in the side's state."""
        values, total = self.top(k)
        return min(1.0, sum(values) / total) if total > 0 else 0.0


class SampledHotKeys:
    """Both sides' :class:`HotKeys` of one process, fed a sample of each batch.

    Each side's horizon is how long ``spec`` retains its events beyond the
    watermark. One event in ``sample`` (1: all) is counted, ``sample`` times.
    """

    def __init__(self, spec: JoinSpec, sample: int) -> None:
        if sample < 1:
            msg = f"hot_key_sample must be >= 1 (one event in N), got {sample}"
            raise ValueError(msg)
        self.sample = sample
        self._offset = 0
        self.sides: dict[Side, HotKeys] = {side: HotKeys(_horizon_ms(spec, side)) for side in SIDES}

    def add_batch(self, events: Sequence[Event]) -> None:
        """Count a sample of one batch of events (both sides mixed)."""
        # A strided sample (the start rotates from batch to batch) keeps the cost
        # at a fraction of the join's; keys worth ranking are frequent enough to
        # be sampled.
        step = self.sample
        if step > 1:
            self._offset = (self._offset + 1) % step
            events = events[self._offset :: step]
        by_side: dict[Side, list[str]] = {"left": [], "right": []}
        newest: dict[Side, int] = {"left": WM_MIN, "right": WM_MIN}
        for e in events:
            by_side[e.side].append(e.key)
            if e.ts > newest[e.side]:
                newest[e.side] = e.ts
        for side, keys in by_side.items():
            if keys:
                self.sides[side].add(keys, newest[side], weight=step)


def _horizon_ms(spec: JoinSpec, side: Side) -> int:
    """How long an event of ``side`` is retained beyond the watermark, at least 1 ms."""
    span = spec.left_bound(0) if side == "left" else spec.right_bound(0)
    return max(1, span + spec.allowed_lateness_ms + spec.max_out_of_orderness_ms)
