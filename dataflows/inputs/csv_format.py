"""CSV input: a header row naming the columns, then one record per row.

Every value is a string; a row becomes a record dict by the header's names, and
its key and time are taken by :mod:`dataflows.inputs.fields` (a row's single
key column and an ``ms`` time of plain ASCII digits are taken in place). Only an
empty line is blank and skipped, since ``" "`` may be a value. A header that is
not UTF-8 or lacks a configured field is an :class:`InputError` for the whole
file; a row that cannot be parsed, is not UTF-8 or has the wrong number of
columns is a dead letter.

A record's identity is ``Event.eid = joins.content_id(raw)`` where ``raw`` is
the row's bytes without the line terminator (``\\n`` or ``\\r\\n``); a row
spanning several lines inside quotes has its lines joined by ``\\n``. Its
position is the byte offset of the row's first line
(:mod:`dataflows.inputs.lines`); the header is re-read on resume.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from dataflows.errors import InputError
from dataflows.inputs.fields import BadRecord, Invalid, SourceFormat, key_of, raw_text, time_to_ms
from dataflows.inputs.lines import read_lines
from joins import Event, Side, content_id
from joins.spec import MAX_TS_MS


def _csv_header(handle: Any, path: str, fmt: SourceFormat) -> tuple[list[str], int] | None:
    head = handle.readline()
    if not head:
        return None
    try:
        header_text = head.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        msg = f"csv header of {path!r} is not UTF-8: {exc.reason}"
        raise InputError(msg) from exc
    header = next(csv.reader([header_text]), [])
    missing = [f for f in (*fmt.key_fields, fmt.time_field) if f not in header]
    if missing:
        msg = (
            f"csv header of {path!r} has no column {missing[0]!r} "
            f"(columns: {', '.join(header) or 'none'})"
        )
        raise InputError(msg)
    return header, len(head)


def read_csv(
    handle: Any, path: str, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """Batches of at most ``size`` events and dead letters of the CSV file
    ``path``, from byte offset ``start`` (a start inside the header means the
    first row), each with the offset to resume after it."""
    found = _csv_header(handle, path, fmt)
    if found is None:
        return
    header, header_end = found
    ncols = len(header)
    single_key = header.index(fmt.key_fields[0]) if len(fmt.key_fields) == 1 else -1
    ts_idx = header.index(fmt.time_field)
    fast_ms = fmt.time_unit == "ms"
    begin = max(start, header_end)

    # Lines read so far and not yet trimmed: raw bytes (no terminator) and the
    # offset after each; the csv reader pulls them lazily, and ``line_num``
    # says how many lines each row took (several when a quoted value has newlines).
    raws: list[bytes] = []
    ends: list[int] = []
    bad_utf8: set[int] = set()

    def text_lines() -> Iterator[str]:
        for lines, first, last_term in read_lines(handle, begin):
            end = first
            try:
                texts: list[str] | None = b"\n".join(lines).decode().split("\n")
            except UnicodeDecodeError:
                texts = None
            last = len(lines) - 1
            for i, line in enumerate(lines):
                end += len(line) + (1 if i < last else last_term)
                if line[-1:] == b"\r":
                    line = line[:-1]
                raws.append(line)
                ends.append(end)
                if texts is not None:
                    yield texts[i] + "\n"
                else:
                    try:
                        yield line.decode() + "\n"
                    except UnicodeDecodeError:
                        bad_utf8.add(len(raws) - 1)
                        yield line.decode("utf-8", errors="replace") + "\n"

    reader = csv.reader(text_lines())
    batch: list[Event | Invalid] = []
    consumed = 0  # lines taken by rows so far, over the whole read
    base = 0  # lines trimmed from the front of ``raws``
    row_start = begin  # offset of the next row's first line
    pos = begin
    while True:
        try:
            row = next(reader)
            error = ""
        except StopIteration:
            break
        except csv.Error as exc:
            row, error = [], f"csv: {exc}"
        n = reader.line_num - consumed
        if n <= 0:
            if error:
                break
            continue
        first, last = consumed - base, reader.line_num - base
        consumed = reader.line_num
        off = row_start
        raw = raws[first] if n == 1 else b"\n".join(raws[first:last])
        pos = row_start = ends[last - 1]
        if error:
            batch.append(Invalid(side, error, raw_text(raw), partition, off))
        elif not row:
            pass  # a blank line is not a record
        elif bad_utf8 and any(i in bad_utf8 for i in range(first, last)):
            batch.append(Invalid(side, "invalid UTF-8", raw_text(raw), partition, off))
        elif len(row) != ncols:
            reason = f"csv: expected {ncols} columns, got {len(row)}"
            batch.append(Invalid(side, reason, raw_text(raw), partition, off))
        else:
            rec = dict(zip(header, row, strict=True))
            key = row[single_key] if single_key >= 0 else ""
            try:
                if not (key and key.isascii() and "\x00" not in key):
                    key = key_of(rec, fmt)
                ts_text = row[ts_idx]
                if fast_ms and ts_text.isdigit() and ts_text.isascii():
                    ts = int(ts_text)
                    if ts > MAX_TS_MS:
                        ts = time_to_ms(ts_text, fmt.time_field, "ms")
                else:
                    ts = time_to_ms(ts_text, fmt.time_field, fmt.time_unit)
            except BadRecord as bad:
                batch.append(Invalid(side, str(bad), raw_text(raw), partition, off))
            else:
                batch.append(Event(side, key, ts, content_id(raw), rec, partition, off))
        if len(batch) >= size:
            yield batch, pos
            batch = []
            del raws[:last]
            del ends[:last]
            if bad_utf8:
                moved = {i - last for i in bad_utf8 if i >= last}
                bad_utf8.clear()
                bad_utf8.update(moved)
            base = consumed
    if batch:
        yield batch, pos
