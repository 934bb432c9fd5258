"""The operator's terminal: log lines and one live progress line on stderr.

Every line a run shows on stderr goes through one :class:`Terminal`: the log
records of the command's own process, the relayed lines of its worker
processes, and, when stderr is a terminal, the live progress line that
:meth:`Terminal.show` redraws in place (``\\r`` and erase-to-end-of-line). A
log line first erases the live line, is written, and the live line is drawn
again below it, so the two never mix. Off a terminal there is no live line,
only log lines.

The stream is looked up at each write (``sys.stderr`` by default), so that a
test that swaps ``sys.stderr`` sees what a run writes.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable
from typing import TextIO

#: ANSI "erase from the cursor to the end of the line".
ERASE_LINE = "\x1b[K"


class Terminal:
    """stderr (or ``stream()``), shared by log lines and the live line."""

    def __init__(self, stream: Callable[[], TextIO] | None = None) -> None:
        self._stream: Callable[[], TextIO] = stream if stream is not None else _stderr
        self._lock = threading.RLock()
        self._live = ""

    @property
    def stream(self) -> TextIO:
        return self._stream()

    def is_terminal(self) -> bool:
        """Whether the stream is a terminal (a live line can be drawn on it)."""
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):  # closed, or not a real stream
            return False

    def write_lines(self, text: str) -> None:
        """Write ``text`` (one or more lines, without the final newline) above
        the live line, which is drawn again after it."""
        with self._lock:
            out = self.stream
            if self._live:
                out.write("\r" + ERASE_LINE)
            out.write(text + "\n")
            if self._live:
                out.write(self._live)
            out.flush()

    def show(self, line: str) -> None:
        """Draw ``line`` as the live line, in place of the previous one (cut to
        the terminal's width: a wrapped line could not be redrawn in place)."""
        width = shutil.get_terminal_size((100, 24)).columns
        line = line[: max(width - 1, 10)]
        with self._lock:
            self._live = line
            out = self.stream
            out.write("\r" + line + ERASE_LINE)
            out.flush()

    def clear(self) -> None:
        """Erase the live line (before the summary, or at exit)."""
        with self._lock:
            if self._live:
                self._live = ""
                out = self.stream
                out.write("\r" + ERASE_LINE)
                out.flush()


def _stderr() -> TextIO:
    return sys.stderr


#: The terminal of this process.
TERMINAL = Terminal()
