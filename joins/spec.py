"""The join's parameters (:class:`JoinSpec`), as in ``shared/design/semantics.md``.

A pair ``(l, r)`` matches iff ``l.key == r.key`` and
``l.ts + lower_ms <= r.ts <= l.ts + upper_ms``.

Retained events are evicted by whole event-time buckets of
:attr:`JoinSpec.bucket_ms` (``eviction_bucket_ms``, or a width chosen from the
interval): eviction may lag an event's retention bound by less than one bucket,
which the contract allows; matching is unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from joins.errors import JoinSpecError

How = Literal["inner", "left", "right", "full"]
HOWS: tuple[How, ...] = get_args(How)

#: Event times must lie in this range (epoch milliseconds, about +-292 million
#: years), so that every bound the join computes fits the 8-byte state layout.
MIN_TS_MS = -(2**61)
MAX_TS_MS = 2**61

#: The eviction bucket when the interval is empty or tiny (see :attr:`JoinSpec.bucket_ms`).
MIN_AUTO_BUCKET_MS = 1_000
#: Buckets per interval width when the width is chosen from the interval: a
#: probe then reads at most ``BUCKETS_PER_INTERVAL + 1`` buckets of the other
#: side, and eviction lags by less than ``1 / BUCKETS_PER_INTERVAL`` of the
#: interval (measured on W-2M: README "Performance").
BUCKETS_PER_INTERVAL = 3


@dataclass(frozen=True, slots=True)
class JoinSpec:
    """What to join and how long to wait: the algorithm's parameters.

    All durations are integer milliseconds.
    """

    lower_ms: int = 0
    upper_ms: int = 30 * 60 * 1000
    how: How = "left"
    max_out_of_orderness_ms: int = 5_000
    allowed_lateness_ms: int = 0
    idle_timeout_ms: int = 30_000
    #: Width of the event-time buckets state is evicted by; ``None`` chooses it
    #: from the interval (:attr:`bucket_ms`).
    eviction_bucket_ms: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "lower_ms",
            "upper_ms",
            "max_out_of_orderness_ms",
            "allowed_lateness_ms",
            "idle_timeout_ms",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                msg = f"{name} must be an integer number of milliseconds, got {value!r}"
                raise JoinSpecError(msg)
        if self.lower_ms > self.upper_ms:
            msg = (
                f"lower_ms ({self.lower_ms} ms) must not exceed upper_ms "
                f"({self.upper_ms} ms): the interval would be empty"
            )
            raise JoinSpecError(msg)
        bound = MAX_TS_MS // 2
        if abs(self.lower_ms) > bound or abs(self.upper_ms) > bound:
            msg = f"interval bounds must lie within +-{bound} ms"
            raise JoinSpecError(msg)
        for name in ("max_out_of_orderness_ms", "allowed_lateness_ms"):
            if getattr(self, name) < 0:
                msg = f"{name} must be >= 0 ms, got {getattr(self, name)} ms"
                raise JoinSpecError(msg)
        if self.idle_timeout_ms <= 0:
            msg = f"idle_timeout_ms must be > 0 ms, got {self.idle_timeout_ms} ms"
            raise JoinSpecError(msg)
        b = self.eviction_bucket_ms
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or b <= 0):
            msg = f"eviction_bucket_ms must be a positive integer number of milliseconds, got {b!r}"
            raise JoinSpecError(msg)
        if self.how not in HOWS:
            msg = f"how must be one of {', '.join(HOWS)}, got {self.how!r}"
            raise JoinSpecError(msg)

    @property
    def outer_left(self) -> bool:
        """Whether unmatched left events are emitted as ``left_only`` rows."""
        return self.how in ("left", "full")

    @property
    def outer_right(self) -> bool:
        """Whether unmatched right events are emitted as ``right_only`` rows."""
        return self.how in ("right", "full")

    @property
    def bucket_ms(self) -> int:
        """The eviction bucket width: ``eviction_bucket_ms``, else a third of the
        interval's width ``upper_ms - lower_ms`` (at least 1 s)."""
        if self.eviction_bucket_ms is not None:
            return self.eviction_bucket_ms
        return max(MIN_AUTO_BUCKET_MS, (self.upper_ms - self.lower_ms) // BUCKETS_PER_INTERVAL)

    def retention_ms(self, side: str) -> int:
        """How long after its own time an event of ``side`` is retained:
        ``bound - ts`` (see :meth:`left_bound`, :meth:`right_bound`)."""
        return max(self.upper_ms, 0) if side == "left" else max(-self.lower_ms, 0)

    def left_bound(self, ts: int) -> int:
        """Eviction bound of a left event: retained while ``W - A <= bound``.

        ``ts + upper_ms`` is the last watermark at which a right partner can still
        be on time; ``ts`` itself keeps the event as long as a duplicate of it
        could be on time, so that a duplicate is always recognised or late.
        """
        return ts + max(self.upper_ms, 0)

    def right_bound(self, ts: int) -> int:
        """Eviction bound of a right event (see :meth:`left_bound`)."""
        return ts + max(-self.lower_ms, 0)
