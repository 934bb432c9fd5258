"""JSON Lines input: one JSON object per line, to events and dead letters.

Blank lines (empty, or only JSON whitespace: spaces, tabs, carriage returns)
are not records and are skipped. Every other line is a
record: a line must be UTF-8 (a UTF-8 byte-order mark at its start is ignored)
holding one JSON value (RFC 8259: ``NaN`` and ``Infinity`` are refused, and so
is a string escape of an unpaired surrogate, which is not Unicode text), and the
value must be an object. Any other value, ``null``, ``true``/``false``, a
number, a string or an array, is a dead letter (``record is not an object (got
null)``), as is a line that is not UTF-8 or not JSON.

A record's identity is ``Event.eid = joins.content_id(raw)`` where ``raw`` is
the line's bytes without its terminator (``\\n`` or ``\\r\\n``); a dead letter
holds those bytes; its position is the byte offset of the line's start
(:mod:`dataflows.inputs.lines`).

This is a measured hot path (compiled by mypyc): names are cached in locals,
and nothing may add a call per line. The common record, an ASCII line holding
a single key field with a non-empty ASCII string without NUL and an integer
``ms`` time in range, is parsed by orjson (about 2.5x as fast as ``json``),
becomes an event in place and keeps the line as its ``record_json``, with no
dict kept (``Event.record`` parses the text with ``json`` if anything asks).
orjson's result is used for the key and the time only, and only when it
parsed the line: it refuses what ``json`` refuses here (``NaN``, unpaired
surrogate escapes) and more (numbers beyond 64 bits, a depth over 1024,
``1e400``), and reads integers beyond 64 bits as floats. Everything else, and
every line orjson refuses, takes the careful path: ``json`` and
:func:`dataflows.inputs.fields.key_of` / :func:`~dataflows.inputs.fields.ts_of`,
which accept the record or give the exact reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NoReturn

import orjson

from dataflows.inputs.fields import BadRecord, Invalid, json_type_name, key_of, ts_of
from dataflows.inputs.lines import read_lines
from dataflows.inputs.source_format import SourceFormat
from joins import Event, Side, content_id
from joins.spec import MAX_TS_MS, MIN_TS_MS


def _no_constant(name: str) -> NoReturn:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


#: ``json.loads`` without the non-standard constants (a decoder built once: the
#: same C scanner, no per-call set-up).
_loads = json.JSONDecoder(parse_constant=_no_constant).decode


_SURROGATE = "invalid JSON: a string holds an unpaired surrogate escape (not Unicode text)"


def _lone_surrogate(rec: dict[str, Any]) -> bool:
    """Whether a string of ``rec`` holds a surrogate ``\\uD800``-``\\uDFFF`` escape
    that pairs with none (a pair is one character, and decodes as one)."""
    try:
        json.dumps(rec, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def read_jsonl(
    handle: Any, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """Batches of at most ``size`` events and dead letters of a JSON Lines file,
    from byte offset ``start``, each with the offset to resume after it."""
    batch: list[Event | Invalid] = []
    pos = start
    for lines, first, step in read_lines(handle, start):
        # ``step`` is 0 only for a final line without newline (alone in its chunk)
        pos = first
        records: list[tuple[int, bytes]] = []
        add = records.append
        for line in lines:
            off = pos
            pos += len(line) + step
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line or (line[:1] in b" \t\r" and not line.strip(b" \t\r")):
                continue
            add((off, line))
        done = 0
        while done < len(records):
            part = records[done : done + size - len(batch)]
            decode_json_values(part, side, fmt, partition, batch)
            done += len(part)
            if len(batch) >= size:
                yield batch, records[done][0] if done < len(records) else pos
                batch = []
    if batch:
        yield batch, pos


def decode_json_values(
    records: list[tuple[int, bytes]],
    side: Side,
    fmt: SourceFormat,
    partition: str,
    out: list[Event | Invalid],
) -> None:
    """Append to ``out`` an event or a dead letter for each ``(offset, bytes)``
    record, each one JSON object: a JSON Lines line without its terminator, or
    a Kafka message value (:mod:`dataflows.inputs.kafka_records`); the same
    rules for both."""
    loads = _loads
    fast_loads = orjson.loads
    fast_error = orjson.JSONDecodeError
    key_field = fmt.key_fields[0] if len(fmt.key_fields) == 1 else None
    time_field = fmt.time_field
    fast_ms = fmt.time_unit == "ms"
    lo, hi = MIN_TS_MS, MAX_TS_MS
    append = out.append
    for off, line in records:
        if fast_ms and key_field is not None and line.isascii():
            try:
                found = fast_loads(line)
            except fast_error:
                found = None
            if type(found) is dict:
                key = found.get(key_field)
                ts = found.get(time_field)
                if (
                    type(key) is str
                    and key
                    and type(ts) is int
                    and lo <= ts <= hi
                    and key.isascii()
                    and "\x00" not in key
                ):
                    append(Event(side, key, ts, content_id(line), None, partition, off,
                                 line.decode("ascii")))  # fmt: skip
                    continue
        try:
            text = line.decode()
            if text[:1] == "\ufeff":
                text = text[1:]
            rec = loads(text)
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8: {exc.reason} at byte {exc.start}"
            append(Invalid(side, reason, line, partition, off))
            continue
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
            append(Invalid(side, reason, line, partition, off))
            continue
        except (ValueError, RecursionError) as exc:
            reason = f"invalid JSON: {type(exc).__name__}: {exc}"
            append(Invalid(side, reason, line, partition, off))
            continue
        if type(rec) is not dict:
            reason = f"record is not an object (got {json_type_name(rec)})"
            append(Invalid(side, reason, line, partition, off))
            continue
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
            raw = text if text.isascii() else None
            if ("\\ud" in text or "\\uD" in text) and _lone_surrogate(rec):
                append(Invalid(side, _SURROGATE, line, partition, off))
            else:
                append(Event(side, key, ts, content_id(line), rec, partition, off, raw))
            continue
        try:
            event = Event(side, key_of(rec, fmt), ts_of(rec, fmt), content_id(line), rec,
                          partition, off, text if text.isascii() else None)
        except BadRecord as bad:
            append(Invalid(side, str(bad), line, partition, off))
        else:
            if ("\\ud" in text or "\\uD" in text) and _lone_surrogate(rec):
                append(Invalid(side, _SURROGATE, line, partition, off))
            else:
                append(event)
