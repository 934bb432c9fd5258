"""Line framing for the line-based inputs (CSV and JSON Lines).

Their positions (for :func:`dataflows.inputs.read_batches` resume) are byte
offsets of line starts. The file is read in chunks of ``_CHUNK_BYTES`` and split
at ``\\n`` only; a ``\\r`` before it is left on the line for the reader to strip
(the record's bytes, its identity, exclude the ``\\n`` or ``\\r\\n`` terminator).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_CHUNK_BYTES = 1 << 20


def read_lines(handle: Any, start: int) -> Iterator[tuple[list[bytes], int, int]]:
    """Chunks of whole lines (without ``\\n``), the offset of the first one, and
    the terminator length of the last one (0 for a final line without newline)."""
    handle.seek(start)
    pos = start
    buf = b""
    while True:
        chunk = handle.read(_CHUNK_BYTES)
        if not chunk:
            if buf:
                yield [buf], pos, 0
            return
        data = buf + chunk if buf else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            buf = data
            continue
        buf = data[cut + 1 :]
        yield data[:cut].split(b"\n"), pos, 1
        pos += cut + 1

