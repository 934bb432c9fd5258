"""A tiny progress bar on stderr, without dependencies.

``with Progress(total, "generate") as bar: bar.advance(n)``. Silent when
disabled or when stderr is not a terminal (CI logs, pipes); redraws at most ten
times a second, so calling :meth:`Progress.advance` often costs next to nothing.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_WIDTH = 30
_INTERVAL_S = 0.1


class Progress:
    """A progress bar over ``total`` units of work, labelled ``label``."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled and self._stream.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0

    @property
    def enabled(self) -> bool:
        return self._enabled

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units done (and redraw if due)."""
        self.done += n
        if self._enabled:
            now = time.monotonic()
            if now - self._last_draw >= _INTERVAL_S:
                self._last_draw = now
                self._draw()

    def render(self) -> str:
        """The bar's current text (without the leading carriage return)."""
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(frac * _WIDTH)
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        bar = "#" * filled + "-" * (_WIDTH - filled)
        return (
            f"{self.label} [{bar}] {frac * 100:5.1f}% {self.done:,}/{self.total:,} "
            f"{rate:,.0f}/s"
        )

    def _draw(self) -> None:
        self._stream.write("\r" + self.render())
        self._stream.flush()
