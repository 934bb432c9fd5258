"""Staging: the records of one input file, cut out of its bytes, in a file that
DuckDB reads (``read_csv``) into the table ``r``.

Validate interprets every record in SQL (:mod:`dataflows.validate.records`).
DuckDB's file readers cannot say where a record starts or give its exact bytes,
which a dead letter (``raw``, ``offset``) and an event's identity (``eid =
joins.content_id(raw bytes)``; DuckDB has no BLAKE2) need. So Python only
*frames* records here: it finds where each one starts and ends, hashes its
bytes, and writes one staged row per record. It parses nothing: JSON, CSV
fields, keys and times are SQL's.

A staged row is one line of fields separated by ``\\x1f`` (no quoting)::

    src  off  eid  kind  t  b  x  n  size

- ``src``: the input file's number; ``off``: the record's position (byte offset
  of its first line; an Avro record's index);
- ``eid``: ``joins.content_id`` of the record's identity bytes, as a signed
  big-endian int64;
- ``kind``: :data:`RECORD` (a JSON Lines line or a CSV record),
  :data:`AVRO_RECORD` (:mod:`dataflows.validate.avro_reading`) or
  :data:`BROKEN` (a stretch the framing itself refuses: a dead letter whose
  reason ``x`` is given here);
- ``t``: the record's text, when its bytes are UTF-8 that fits a staged line
  (no ``\\x1f``, line break or NUL); otherwise empty, and
- ``b``: the record's exact bytes in base64, when ``t`` is not them (DuckDB
  decodes them: bytes that are not UTF-8 stay ``NULL`` text, a dead letter);
- ``x``: a reason (``BROKEN``) or an Avro record's time unit; ``n``: how many
  records a damaged Avro block held; ``size``: the full length of a record
  whose ``b`` holds only its first bytes (an unreadable Avro file).

JSON Lines framing (the decoder's rules): a record is a line without its
``\\n`` or ``\\r\\n`` terminator; a line of only spaces, tabs and carriage
returns is blank, no record. CSV framing is :mod:`dataflows.validate.csv_framing`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from hashlib import blake2b
from typing import IO, Final

RECORD: Final = 0
AVRO_RECORD: Final = 2
BROKEN: Final = 3

#: The columns of the table ``r`` that DuckDB reads staged files into.
COLUMNS: Final = {
    "src": "INTEGER", "off": "BIGINT", "eid": "BIGINT", "kind": "TINYINT",
    "t": "VARCHAR", "b": "VARCHAR", "x": "VARCHAR", "n": "BIGINT", "size": "BIGINT",
}

_CHUNK_BYTES = 1 << 20
_UNSAFE = (b"\x1f", b"\x00", b"\r", b"\n")


def eid_of(raw: bytes) -> int:
    """``joins.content_id(raw)`` as a signed big-endian int64 (recomputed here:
    BLAKE2b with an 8-byte digest)."""
    return int.from_bytes(blake2b(raw, digest_size=8).digest(), "big", signed=True)


def _one_line(text: str) -> bytes:
    """``text`` (a reason) as a staged field: its separators become spaces."""
    for u in ("\x1f", "\x00", "\r", "\n"):
        text = text.replace(u, " ")
    return text.encode()


def _inline(raw: bytes) -> bool:
    if any(u in raw for u in _UNSAFE):
        return False
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


class StageWriter:
    """Writes staged rows to a binary file (see the module docstring)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._rows: list[bytes] = []
        self.count = 0

    def record(self, src: int, off: int, raw: bytes, kind: int = RECORD, eid: int | None = None,
               x: str = "", n: int | None = None, text: str | None = None,
               size: int | None = None) -> None:
        """Stage one record whose exact bytes are ``raw`` (its first bytes when
        ``size``, its full length, is given); its identity is ``eid`` (default:
        of ``raw``) and its text ``text`` (default: ``raw`` as UTF-8)."""
        if eid is None:
            eid = eid_of(raw)
        if text is not None:
            t, b = text.encode(), base64.b64encode(raw)
        elif _inline(raw):
            t, b = raw, b""
        else:
            t, b = b"", base64.b64encode(raw)
        self._rows.append(b"%d\x1f%d\x1f%d\x1f%d\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\n" % (
            src, off, eid, kind, t, b, _one_line(x) if x else b"", b"" if n is None else b"%d" % n,
            b"" if size is None else b"%d" % size))
        self.count += 1
        if len(self._rows) >= 10_000:
            self.flush()

    def lines(self, src: int, block: bytes, pos: int) -> None:
        """Stage every JSON Lines record of ``block``: whole lines, each ended by
        a ``\\n`` (the last one too, unless it ends the file), starting at byte
        offset ``pos``."""
        self.flush()
        lines = block.split(b"\n")
        safe = b"\x1f" not in block and b"\x00" not in block and b"\r" not in block
        if safe:
            try:
                block.decode()
            except UnicodeDecodeError:
                safe = False
        rows: list[bytes] = []
        blank = b" \t\r"
        for line in lines:
            off = pos
            pos += len(line) + 1
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line or (line[0] in blank and not line.strip(blank)):
                continue
            if safe:
                rows.append(b"%d\x1f%d\x1f%d\x1f0\x1f%s\x1f\x1f\x1f\x1f\n" % (
                    src, off, eid_of(line), line))
            else:
                self.record(src, off, line)
        self.count += len(rows)
        self._out.write(b"".join(rows))
        self.flush()

    def flush(self) -> None:
        if self._rows:
            self._out.write(b"".join(self._rows))
            self._rows = []


def line_blocks(handle: IO[bytes], start: int = 0) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines of ``handle`` from byte ``start`` (each line but
    the file's last ends in ``\\n``; the block's final ``\\n`` is cut off), with
    the offset of each block's first byte."""
    handle.seek(start)
    pos = start
    buf = b""
    while True:
        chunk = handle.read(_CHUNK_BYTES)
        if not chunk:
            if buf:
                yield buf, pos
            return
        data = buf + chunk if buf else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            buf = data
            continue
        buf = data[cut + 1 :]
        yield data[:cut], pos
        pos += cut + 1


def stage_jsonl(writer: StageWriter, src: int, handle: IO[bytes]) -> None:
    """Stage the records of a JSON Lines file (see the module docstring)."""
    for block, pos in line_blocks(handle):
        writer.lines(src, block, pos)
