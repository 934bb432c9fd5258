"""A histogram observed a batch of values at a time: :class:`BatchHistogram`.

prometheus_client's ``Histogram.observe`` takes a lock and loops over the
buckets in Python for every value: too much for every row the join emits. This
one counts a whole batch with one ``bisect`` per value and one lock acquisition,
and is exported at scrape time (:meth:`BatchHistogram.family`) by a collector.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence

from prometheus_client.core import HistogramMetricFamily


class BatchHistogram:
    """A histogram observed a batch at a time, exported by :meth:`family`.

    ``buckets`` are upper bounds in increasing order (``+Inf`` is added).
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(set(bounds)) or not bounds:
            msg = f"buckets of {name} must be distinct and increasing, got {list(buckets)}"
            raise ValueError(msg)
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(bounds)
        self._lock = threading.Lock()
        self._counts = [0] * len(bounds)
        self._sum = 0.0

    def observe_many(self, values: Iterable[float]) -> None:
        """Count every value in its bucket (le: a value on a bound counts there)."""
        bounds = self.bounds
        index = bisect.bisect_left
        local = [0] * len(bounds)
        total = 0.0
        for v in values:
            local[index(bounds, v)] += 1
            total += v
        with self._lock:
            counts = self._counts
            for i, n in enumerate(local):
                if n:
                    counts[i] += n
            self._sum += total

    def observe_ages(self, now_s: float, times_ms: list[int], count: int | None = None) -> None:
        """Observe ``now_s - t / 1000`` for every epoch-ms time ``t`` in ``times_ms``
        (sorted in place): one C-level sort and one ``bisect`` per bucket, no
        Python per value; the counts equal :meth:`observe_many`'s.

        With ``count``, ``times_ms`` is a sample of ``count`` values: the buckets
        and the sum are scaled up to ``count`` (the count itself is exact).
        """
        if not times_ms:
            return
        times_ms.sort()
        n = len(times_ms)
        scale = 1.0 if count is None else count / n
        index = bisect.bisect_left
        local = [0] * len(self.bounds)
        below = 0  # (scaled) values <= the previous bound
        for i, bound in enumerate(self.bounds):
            # now - t / 1000 <= bound  <=>  t >= (now - bound) * 1000
            upto = n if bound == math.inf else n - index(times_ms, (now_s - bound) * 1000.0)
            upto = round(upto * scale)
            local[i] = upto - below
            below = upto
        total = (n * now_s - math.fsum(times_ms) / 1000.0) * scale
        with self._lock:
            counts = self._counts
            for i, k in enumerate(local):
                if k:
                    counts[i] += k
            self._sum += total

    def family(self) -> HistogramMetricFamily:
        """The histogram as it stands, with cumulative buckets."""
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, counts, strict=True):
            running += n
            cumulative.append((_bound_text(bound), running))
        return HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )


def _bound_text(bound: float) -> str:
    # The "le" label as prometheus_client writes it (``floatToGoString``).
    if bound == math.inf:
        return "+Inf"
    return repr(float(bound))
