"""Test throttle of the crash harness (``--read-delay``).

:class:`ThrottledSource` sleeps before each read of a source partition, so
that a small input spans many kills in the crash harness. Not for production
runs.
"""

from __future__ import annotations

import time
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition


class _ThrottledPartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any], delay_s: float) -> None:
        self._inner = inner
        self._delay_s = delay_s

    def next_batch(self) -> Any:
        time.sleep(self._delay_s)
        return self._inner.next_batch()

    def next_awake(self) -> Any:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class ThrottledSource(FixedPartitionedSource[Any, Any]):
    """A source whose partitions sleep ``delay_ms`` before each read (``--read-delay``:
    makes a small input last long enough for the crash harness; not for production)."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any], delay_ms: int) -> None:
        self._inner = inner
        self._delay_s = delay_ms / 1000.0

    def list_parts(self) -> list[str]:
        return self._inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _ThrottledPartition:
        return _ThrottledPartition(
            self._inner.build_part(step_id, for_part, resume_state), self._delay_s
        )


def throttled(source: FixedPartitionedSource[Any, Any], delay_ms: int) -> Any:
    """``source`` itself, or a :class:`ThrottledSource` when ``delay_ms > 0``."""
    return ThrottledSource(source, delay_ms) if delay_ms > 0 else source
