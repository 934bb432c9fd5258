"""CSV input: a header row naming the columns, then one record per row.

Every value is a string; a row becomes a record dict by the header's names, and
its key and time are taken by :mod:`dataflows.inputs.fields` (a row's single
key column and an ``ms`` time of plain ASCII digits are taken in place). Only an
empty line is blank and skipped, since ``" "`` may be a value. A header that is
not UTF-8, names a column twice or lacks a configured field is an
:class:`InputError` for the whole file (the run checks every CSV file's header
before it starts, :mod:`dataflows.inputs.sample`); a row that cannot be
parsed, is not UTF-8 or has the wrong number of columns is a dead letter.

Quoting is RFC 4180 and strict (Python's ``csv`` with ``strict=True``): a quoted
value may hold commas, doubled quotes and line breaks; a quote inside an
unquoted value is a plain character; text after a closing quote other than a
comma or the line end is an error. **A record spans at most**
:data:`MAX_RECORD_LINES` **lines**: a quote left open longer than that, or to
the end of the file, and a record of several lines that does not parse or has
the wrong number of columns, make **its first line alone** a dead letter, and
reading goes on at the next line. So one stray quote costs one line, never the
rest of the file.

A record's identity is ``Event.eid = joins.content_id(raw)`` where ``raw`` is
the record's bytes as the file holds them, without the final line terminator
(``\\n`` or ``\\r\\n``; the line breaks inside a quoted value are kept as they
are); a dead letter holds those bytes. Its position is the byte offset of the
record's first line (:mod:`dataflows.inputs.lines`); the header is re-read on
resume.

This is a measured hot path (compiled by mypyc): the ``csv`` module parses
lines pulled lazily from decoded chunks, and a record of one line costs no
more than a slice. Each event carries its record as JSON text
(``Event.record_json``, what the state and the outputs write), made once here:
for a record of plain ASCII (no quote, backslash or control character) by
filling a template made from the header, else by ``json``; no dict is kept
(``Event.record`` parses the text if anything asks).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import Any

from dataflows.errors import InputError
from dataflows.inputs.fields import BadRecord, Invalid, key_of, time_to_ms
from dataflows.inputs.lines import read_lines
from dataflows.inputs.source_format import SourceFormat
from joins import Event, Side, content_id
from joins.spec import MAX_TS_MS

#: The most lines one record may span (a quoted value with line breaks).
MAX_RECORD_LINES = 100


_OPEN_AT_END = "csv: a quote opened on this line is not closed before the end of the file"
_OPEN_TOO_LONG = f"csv: a quote opened on this line is not closed within {MAX_RECORD_LINES} lines"


#: A record's bytes hold something JSON would escape (or a quote, which CSV
#: may be using for quoting): its text is made by ``json``, not the template.
_NOT_PLAIN = re.compile(rb'[^\x20-\x7e]|["\\]')
#: The encoder of the state codec and the outputs (compact, ASCII-escaped).
_record_json = json.JSONEncoder(separators=(",", ":")).encode


def record_template(header: list[str]) -> str:
    """A ``%``-template of a record's JSON text with the values left out:
    ``{"name":"%s",...}``. Filled with plain values (nothing JSON escapes), it
    is byte for byte ``json`` 's compact text of the record dict."""
    fields = [_record_json(name).replace("%", "%%") + ':"%s"' for name in header]
    return "{" + ",".join(fields) + "}"


class _TooLong(Exception):
    """Raised into the csv reader: the record has reached ``MAX_RECORD_LINES``."""


def csv_header(
    handle: Any, path: str, fmt: SourceFormat, side: Side
) -> tuple[list[str], int] | None:
    """The column names of the CSV file open as ``handle`` (read from its
    start) and the header's length in bytes; ``None`` for an empty file.

    Raises :class:`InputError` naming the file and the fix when the header is
    not UTF-8, names a column twice (a record could hold only one of the two
    values) or lacks a configured field.
    """
    head = handle.readline()
    if not head:
        return None
    try:
        header_text = head.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        msg = f"csv header of {path!r} is not UTF-8: {exc.reason}"
        raise InputError(msg) from exc
    header = next(csv.reader([header_text]), [])
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        msg = (
            f"csv header of {path!r} names the column {twice[0]!r} more than once (columns: "
            f"{', '.join(header)}): a record could keep only one of its values; rename the "
            "columns so that each name is unique"
        )
        raise InputError(msg)
    missing = [f for f in (*fmt.key_fields, fmt.time_field) if f not in header]
    if missing:
        setting = "time-field" if missing[0] == fmt.time_field else "key-field"
        msg = (
            f"csv header of {path!r} has no column {missing[0]!r} "
            f"(columns: {', '.join(header) or 'none'}): set --{side}-{setting} to the "
            "column that holds it, or fix the file"
        )
        raise InputError(msg)
    return header, len(head)


class _Lines:
    """The file's lines after the header, buffered from the oldest unfinished
    record on: raw bytes (``\\r`` kept), text for the csv reader, end offsets."""

    def __init__(self, handle: Any, begin: int) -> None:
        self._chunks = read_lines(handle, begin)
        self.raws: list[bytes] = []
        self.texts: list[str] = []
        self.ends: list[int] = []
        #: Indexes (into the lists) of lines that are not UTF-8.
        self.bad_utf8: set[int] = set()
        self.begin = begin

    def fill(self) -> bool:
        """Append the next chunk of lines; False at the end of the file."""
        try:
            lines, first, last_term = next(self._chunks)
        except StopIteration:
            return False
        base = len(self.raws)
        try:
            texts = b"\n".join(lines).decode().split("\n")
        except UnicodeDecodeError:
            texts = []
            for i, line in enumerate(lines):
                try:
                    texts.append(line.decode())
                except UnicodeDecodeError:
                    self.bad_utf8.add(base + i)
                    texts.append(line.decode("utf-8", errors="replace"))
        self.raws.extend(lines)
        self.texts.extend([t + "\n" for t in texts])
        end = first
        ends = self.ends
        for line in lines:
            end += len(line) + 1
            ends.append(end)
        if last_term == 0:
            ends[-1] -= 1
        return True

    def raw(self, first: int, last: int) -> bytes:
        """The bytes of lines ``first..last-1`` as the file holds them, without
        the last line's terminator."""
        raw = self.raws[first] if last - first == 1 else b"\n".join(self.raws[first:last])
        return raw[:-1] if raw[-1:] == b"\r" else raw

    def drop(self, n: int) -> None:
        """Forget the first ``n`` lines (finished records)."""
        if n <= 0:
            return
        self.begin = self.ends[n - 1]
        del self.raws[:n]
        del self.texts[:n]
        del self.ends[:n]
        if self.bad_utf8:
            moved = {i - n for i in self.bad_utf8 if i >= n}
            self.bad_utf8.clear()
            self.bad_utf8.update(moved)


def read_csv(
    handle: Any, path: str, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """Batches of at most ``size`` events and dead letters of the CSV file
    ``path``, from byte offset ``start`` (a start inside the header means the
    first row), each with the offset to resume after it."""
    found = csv_header(handle, path, fmt, side)
    if found is None:
        return
    header, header_end = found
    ncols = len(header)
    single_key = header.index(fmt.key_fields[0]) if len(fmt.key_fields) == 1 else -1
    ts_idx = header.index(fmt.time_field)
    fast_ms = fmt.time_unit == "ms"
    template = record_template(header)
    not_plain = _NOT_PLAIN.search
    buf = _Lines(handle, max(start, header_end))
    texts, raws, ends = buf.texts, buf.raws, buf.ends  # lists kept (and trimmed) in place
    # ``cursor``: the next line to give the csv reader; ``rec``: the first line
    # of the record it is reading (both index ``buf``'s lists).
    cursor = rec = 0

    def feed() -> Iterator[str]:
        nonlocal cursor
        while True:
            if cursor == len(texts) and not buf.fill():
                return
            if cursor - rec >= MAX_RECORD_LINES:
                raise _TooLong
            cursor += 1
            yield texts[cursor - 1]

    reader = csv.reader(feed(), strict=True)
    batch: list[Event | Invalid] = []
    while True:
        try:
            row = next(reader)
            error = ""
        except StopIteration:
            break
        except csv.Error as exc:
            error = f"csv: {exc}" if str(exc) != "unexpected end of data" else _OPEN_AT_END
            row = []
        except _TooLong:
            error = _OPEN_TOO_LONG
            row = []
        first, last = rec, cursor
        n = last - first
        if n <= 0:
            break  # an error at the end of the file, with no line left
        off = ends[first - 1] if first else buf.begin
        if n > 1 and (error or len(row) != ncols):
            # A record of several lines that does not hold together (often a stray
            # quote): its first line alone is the dead letter; go on at the next.
            if not error:
                error = (f"csv: the record from this line spans {n} lines and has "
                         f"{len(row)} columns, not {ncols}")
            elif not error.startswith("csv: a quote"):
                error = f"{error} (in the record from this line, spanning {n} lines)"
            batch.append(Invalid(side, error, buf.raw(first, first + 1), partition, off))
            cursor = rec = first + 1
            reader = csv.reader(feed(), strict=True)
        else:
            rec = last
            if error:
                batch.append(Invalid(side, error, buf.raw(first, last), partition, off))
                reader = csv.reader(feed(), strict=True)
            elif not row:
                pass  # a blank line is not a record
            elif buf.bad_utf8 and any(i in buf.bad_utf8 for i in range(first, last)):
                batch.append(Invalid(side, "invalid UTF-8", buf.raw(first, last), partition, off))
            elif len(row) != ncols:
                reason = f"csv: expected {ncols} columns, got {len(row)}"
                batch.append(Invalid(side, reason, buf.raw(first, last), partition, off))
            else:
                key = row[single_key] if single_key >= 0 else ""
                raw = raws[first] if n == 1 else b"\n".join(raws[first:last])
                if raw[-1:] == b"\r":
                    raw = raw[:-1]
                try:
                    if not (key and key.isascii() and "\x00" not in key):
                        key = key_of(dict(zip(header, row, strict=True)), fmt)
                    ts_text = row[ts_idx]
                    if fast_ms and ts_text.isdigit() and ts_text.isascii():
                        ts = int(ts_text)
                        if ts > MAX_TS_MS:
                            ts = time_to_ms(ts_text, fmt.time_field, "ms")
                    else:
                        ts = time_to_ms(ts_text, fmt.time_field, fmt.time_unit)
                except BadRecord as bad:
                    batch.append(Invalid(side, str(bad), raw, partition, off))
                else:
                    if not_plain(raw) is None:
                        text = template % tuple(row)
                    else:
                        text = _record_json(dict(zip(header, row, strict=True)))
                    batch.append(Event(side, key, ts, content_id(raw), None, partition, off, text))
        if len(batch) >= size:
            yield batch, ends[rec - 1] if rec else buf.begin
            batch = []
            buf.drop(rec)
            cursor -= rec
            rec = 0
    if batch:
        yield batch, ends[rec - 1] if rec else buf.begin
