"""Raw input (CSV, JSON Lines, Avro files) to :class:`joins.Event` or :class:`Invalid`.

Every record read becomes exactly one of the two: a valid event, or a dead
letter whose ``reason`` says exactly what was wrong. Nothing crashes on bad
records and nothing is dropped silently, except **blank lines**, which are not
records (an empty line, or one of only whitespace in JSON Lines; in CSV only an
empty line, since ``" "`` may be a value).

Identity: ``Event.eid = joins.content_id(raw)`` where ``raw`` is the record's
bytes without the line terminator (``\\n`` or ``\\r\\n``) for CSV and JSON Lines
(a CSV record spanning several lines inside quotes: its lines joined by
``\\n``), and the canonical JSON of the datum for Avro
(``json.dumps(datum, sort_keys=True, separators=(",", ":"), default=str)``).

Time is converted once, here, into integer epoch milliseconds:

- ``ms``: an integer (JSON ``int``, an integral float such as ``1.7e12``, or a
  string of an integer; CSV values are strings);
- ``s`` / ``us``: the same forms, whole seconds / microseconds (``us`` is
  floored to the millisecond); fractional seconds are refused;
- ``iso``: ISO-8601 text as :meth:`datetime.fromisoformat` reads it; naive means
  UTC; sub-millisecond digits are floored;
- a ``datetime`` value (an Avro ``timestamp-*`` logical type) is accepted in any
  unit. The result must lie in ``joins.spec.MIN_TS_MS..MAX_TS_MS``.

Keys: each key field must be a non-empty string or an integer (``str()`` of it);
several fields are joined with ``key_separator``. A key may not contain NUL or
unpaired surrogates (they would break the byte identity).

Positions (for :func:`read_batches` resume): CSV and JSON Lines use byte offsets
of line starts (the CSV header is re-read on resume); Avro uses record indexes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, get_args

import fastavro

from dataflows.errors import ConfigError, InputError
from joins import Event, Side, content_id
from joins.spec import MAX_TS_MS, MIN_TS_MS

Format = Literal["csv", "jsonl", "avro"]
TimeUnit = Literal["ms", "s", "us", "iso"]
FORMATS: tuple[Format, ...] = get_args(Format)
TIME_UNITS: tuple[TimeUnit, ...] = get_args(TimeUnit)

_CHUNK_BYTES = 1 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MISSING = object()
_RAW_LIMIT = 10_000


@dataclass(frozen=True)
class SourceFormat:
    """How to read one input: its format, key fields, time field and unit."""

    format: Format
    key_fields: tuple[str, ...] = ("key",)
    time_field: str = "ts"
    time_unit: TimeUnit = "ms"
    key_separator: str = "|"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            msg = f"unknown input format {self.format!r}: expected one of {', '.join(FORMATS)}"
            raise ConfigError(msg)
        if isinstance(self.key_fields, str) or not isinstance(self.key_fields, tuple | list):
            msg = f"key_fields must be a tuple of field names, got {self.key_fields!r}"
            raise ConfigError(msg)
        object.__setattr__(self, "key_fields", tuple(self.key_fields))
        if not self.key_fields or not all(isinstance(f, str) and f for f in self.key_fields):
            msg = f"key_fields must be one or more non-empty names, got {self.key_fields!r}"
            raise ConfigError(msg)
        if not isinstance(self.time_field, str) or not self.time_field:
            msg = f"time_field must be a non-empty name, got {self.time_field!r}"
            raise ConfigError(msg)
        if self.time_unit not in TIME_UNITS:
            msg = f"unknown time unit {self.time_unit!r}: expected one of {', '.join(TIME_UNITS)}"
            raise ConfigError(msg)
        if not isinstance(self.key_separator, str):
            msg = f"key_separator must be a string, got {self.key_separator!r}"
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A record that could not become an event: a dead letter.

    ``raw`` is the input as text (bytes decoded with ``errors='replace'``; for
    Avro the canonical JSON of the datum or the error), cut at 10,000 chars.
    """

    side: Side
    reason: str
    raw: str
    partition: str
    offset: int


class _Bad(Exception):
    """A record-level problem; its message becomes ``Invalid.reason``."""


def _fail(reason: str) -> NoReturn:
    raise _Bad(reason)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def time_to_ms(value: Any, field: str, unit: str) -> int:
    """Convert one time value in ``unit`` to epoch ms (raises ``_Bad`` with the reason)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        ms = (aware - _EPOCH) // _MS
    elif value is None:
        _fail(f"{field} is null")
    elif unit == "iso":
        if not isinstance(value, str):
            _fail(f"{field} is not an ISO-8601 string: {_short(value)}")
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            _fail(f"{field} is not an ISO-8601 timestamp: {_short(value)}")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = (parsed - _EPOCH) // _MS
    else:
        if type(value) is int:
            n = value
        elif type(value) is float and value.is_integer():
            n = int(value)
        elif type(value) is str:
            if not value.strip():
                _fail(f"{field} is empty")
            try:
                n = int(value)
            except ValueError:
                _fail(f"{field} is not an integer: {_short(value)}")
        else:
            _fail(f"{field} is not an integer: {_short(value)}")
        ms = n * 1000 if unit == "s" else n // 1000 if unit == "us" else n
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        _fail(f"{field} out of range: {_short(value)} is {ms} ms, "
              f"outside {MIN_TS_MS}..{MAX_TS_MS}")
    return ms


def _key_part(value: Any, field: str) -> str:
    if value is _MISSING:
        _fail(f"missing field {field!r}")
    if type(value) is str:
        if not value:
            _fail(f"key field {field!r} is empty")
        return value
    if type(value) is int:
        return str(value)
    if value is None:
        _fail(f"key field {field!r} is null")
    _fail(f"key field {field!r} is not a string or an integer: {_short(value)}")


def _check_key(key: str) -> None:
    if "\x00" in key:
        _fail(f"key contains a NUL character: {_short(key)}")
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:
            _fail(f"key is not valid Unicode text: {_short(key)}")


def _key_of(record: dict[str, Any], fmt: SourceFormat) -> str:
    parts = [_key_part(record.get(f, _MISSING), f) for f in fmt.key_fields]
    key = parts[0] if len(parts) == 1 else fmt.key_separator.join(parts)
    _check_key(key)
    return key


def _ts_of(record: dict[str, Any], fmt: SourceFormat) -> int:
    value = record.get(fmt.time_field, _MISSING)
    if value is _MISSING:
        _fail(f"missing field {fmt.time_field!r}")
    return time_to_ms(value, fmt.time_field, fmt.time_unit)


def _text(raw: bytes) -> str:
    return raw[:_RAW_LIMIT].decode("utf-8", errors="replace")


def read_batches(
    path: str,
    side: Side,
    fmt: SourceFormat,
    partition: str,
    start: int = 0,
    batch_size: int = 1000,
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """Read ``path`` from position ``start`` in batches of at most ``batch_size``.

    Yields ``(batch, position)``; ``position`` is where to resume after the batch
    (a byte offset for CSV and JSON Lines, a record index for Avro). An empty file
    yields nothing. Raises :class:`InputError` only when the file cannot be opened
    (or a CSV header lacks a configured field).
    """
    if batch_size <= 0:
        msg = f"batch_size must be > 0, got {batch_size}"
        raise ConfigError(msg)
    if start < 0:
        msg = f"start position must be >= 0, got {start}"
        raise ConfigError(msg)
    try:
        handle = open(path, "rb")  # closed in the finally below
    except OSError as exc:
        msg = f"cannot read input {path!r}: {exc.strerror or exc}"
        raise InputError(msg) from exc
    try:
        if fmt.format == "jsonl":
            yield from _jsonl(handle, side, fmt, partition, start, batch_size)
        elif fmt.format == "csv":
            yield from _csv(handle, path, side, fmt, partition, start, batch_size)
        else:
            yield from _avro(handle, side, fmt, partition, start, batch_size)
    finally:
        handle.close()


def _read_lines(handle: Any, start: int) -> Iterator[tuple[list[bytes], int, int]]:
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


def _jsonl(
    handle: Any, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Iterator[tuple[list[Event | Invalid], int]]:
    loads = json.loads
    key_field = fmt.key_fields[0] if len(fmt.key_fields) == 1 else None
    time_field = fmt.time_field
    fast_ms = fmt.time_unit == "ms"
    lo, hi = MIN_TS_MS, MAX_TS_MS
    batch: list[Event | Invalid] = []
    pos = start
    for lines, first, step in _read_lines(handle, start):
        # ``step`` is 0 only for a final line without newline (alone in its chunk)
        pos = first
        for line in lines:
            off = pos
            pos += len(line) + step
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line or line.isspace():
                continue
            text = None
            try:
                if line[:1] == b"{" and line[1:2] != b"\x00":
                    # what json.loads detects for such bytes, minus the detection
                    text = line.decode("utf-8", "surrogatepass")
                    rec = loads(text)
                else:
                    rec = loads(line)
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
                batch.append(Invalid(side, reason, _text(line), partition, off))
                rec = None
            except UnicodeDecodeError as exc:
                reason = f"invalid UTF-8: {exc.reason} at byte {exc.start}"
                batch.append(Invalid(side, reason, _text(line), partition, off))
                rec = None
            except (ValueError, RecursionError) as exc:
                reason = f"invalid JSON: {type(exc).__name__}: {exc}"
                batch.append(Invalid(side, reason, _text(line), partition, off))
                rec = None
            if rec is None:
                pass
            elif type(rec) is not dict:
                reason = f"record is not an object (got {type(rec).__name__})"
                batch.append(Invalid(side, reason, _text(line), partition, off))
            else:
                key = rec.get(key_field) if key_field is not None else None
                ts = rec.get(time_field)
                if (
                    type(key) is str
                    and key
                    and fast_ms
                    and type(ts) is int
                    and lo <= ts <= hi
                    and key.isascii()
                    and "\x00" not in key
                ):
                    # An ASCII line is the record's JSON text as it stands: state and
                    # outputs carry it as is instead of encoding the record again.
                    raw = text if text is not None and text.isascii() else None
                    batch.append(Event(side, key, ts, content_id(line), rec, partition, off, raw))
                else:
                    try:
                        event = Event(side, _key_of(rec, fmt), _ts_of(rec, fmt),
                                      content_id(line), rec, partition, off)
                    except _Bad as bad:
                        batch.append(Invalid(side, str(bad), _text(line), partition, off))
                    else:
                        batch.append(event)
            if len(batch) >= size:
                yield batch, pos
                batch = []
    if batch:
        yield batch, pos


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


def _csv(
    handle: Any, path: str, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Iterator[tuple[list[Event | Invalid], int]]:
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
        for lines, first, last_term in _read_lines(handle, begin):
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
            batch.append(Invalid(side, error, _text(raw), partition, off))
        elif not row:
            pass  # a blank line is not a record
        elif bad_utf8 and any(i in bad_utf8 for i in range(first, last)):
            batch.append(Invalid(side, "invalid UTF-8", _text(raw), partition, off))
        elif len(row) != ncols:
            reason = f"csv: expected {ncols} columns, got {len(row)}"
            batch.append(Invalid(side, reason, _text(raw), partition, off))
        else:
            rec = dict(zip(header, row, strict=True))
            key = row[single_key] if single_key >= 0 else ""
            try:
                if not (key and key.isascii() and "\x00" not in key):
                    key = _key_of(rec, fmt)
                ts_text = row[ts_idx]
                if fast_ms and ts_text.isdigit() and ts_text.isascii():
                    ts = int(ts_text)
                    if ts > MAX_TS_MS:
                        ts = time_to_ms(ts_text, fmt.time_field, "ms")
                else:
                    ts = time_to_ms(ts_text, fmt.time_field, fmt.time_unit)
            except _Bad as bad:
                batch.append(Invalid(side, str(bad), _text(raw), partition, off))
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


def _broken_tail(
    side: Side, partition: str, start: int, index: int, batch: list[Event | Invalid],
    what: str, exc: Exception,
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """The last batch of an Avro file that broke at record ``index``: what was read
    so far and, unless the break lies before the resume position ``start`` (it was
    reported before the resume), one dead letter for the rest of the file."""
    if index >= start:
        reason = f"avro: {what} ({type(exc).__name__}: {exc}); rest of file skipped"
        batch.append(Invalid(side, reason, repr(exc), partition, index))
        yield batch, index + 1
    elif batch:
        yield batch, index


def _avro(
    handle: Any, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Iterator[tuple[list[Event | Invalid], int]]:
    dumps = json.dumps
    batch: list[Event | Invalid] = []
    index = 0
    try:
        blocks = iter(fastavro.block_reader(handle))
    except Exception as exc:  # fastavro raises many types on bad bytes
        if start == 0:
            reason = (f"avro: cannot read the file header ({type(exc).__name__}: {exc}); "
                      "file skipped")
            yield [Invalid(side, reason, repr(exc), partition, 0)], 1
        return
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            break
        except Exception as exc:  # see above
            yield from _broken_tail(side, partition, start, index, batch,
                                    f"corrupt block after record {index}", exc)
            return
        n = block.num_records
        if index + n <= start:
            index += n
            continue
        records = iter(block)
        while True:
            try:
                datum = next(records)
            except StopIteration:
                break
            except Exception as exc:  # see above
                yield from _broken_tail(side, partition, start, index, batch,
                                        f"corrupt record {index}", exc)
                return
            if index < start:
                index += 1
                continue
            canon = dumps(datum, sort_keys=True, separators=(",", ":"), default=str)
            if type(datum) is not dict:
                batch.append(Invalid(side, f"record is not an object (got {type(datum).__name__})",
                                     canon[:_RAW_LIMIT], partition, index))
            else:
                try:
                    event = Event(side, _key_of(datum, fmt), _ts_of(datum, fmt),
                                  content_id(canon.encode()), datum, partition, index)
                except _Bad as bad:
                    batch.append(Invalid(side, str(bad), canon[:_RAW_LIMIT], partition, index))
                else:
                    batch.append(event)
            index += 1
            if len(batch) >= size:
                yield batch, index
                batch = []
    if batch:
        yield batch, index
