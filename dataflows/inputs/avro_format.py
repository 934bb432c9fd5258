"""Avro input: the records of an Avro object container file.

The file is framed by hand (:mod:`dataflows.inputs.avro_container`), and each
intact block's records are decoded one by one with fastavro under the writer
schema rewritten to JSON-safe values (:mod:`dataflows.inputs.avro_values`:
timestamps as integers, decimals as exact strings, bytes as base64). A record
whose time field is a ``timestamp-*`` type takes its event time in that type's
unit, whatever the configured ``--time-unit``.

What becomes a dead letter, and what it holds (always written as base64):

- a record that decodes but is no valid event (not a record, a bad key or
  time): its binary encoding under the writer schema, exactly (``avro_schema``
  is the writer schema as the header holds it);
- a **damaged block** (its framing is broken, or its records do not decode
  from exactly its bytes): the block's bytes as they lie in the file, sync
  marker included (compressed by ``avro_codec``); the reason says where it is
  and how many records its header gives. Reading goes on at the next intact
  block, so one bad byte costs one block;
- an unreadable header, a schema fastavro cannot parse or a codec this reader
  lacks (it has ``null``, ``deflate``, ``bzip2`` and ``xz``): the whole file,
  one dead letter (its first 1 MiB, as ``raw_bytes`` says).

Identity: ``Event.eid = joins.content_id(raw)`` where ``raw`` is the canonical
JSON of the record as decoded
(``json.dumps(record, sort_keys=True, separators=(",", ":"))``), so equal
records are duplicates whichever schema wrote them. Position (``offset``, and
the resume position): the record's index in the file, counting each intact
block's records as its header gives them (a block that turns out not to decode
included), a block whose only damage is its sync marker likewise, and any
other damaged stretch as one.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import mmap
import os
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import fastavro

from dataflows.inputs.avro_container import Damage, Frame, Header, HeaderError, frames, read_header
from dataflows.inputs.avro_values import json_safe_schema, min_record_bytes, timestamp_unit
from dataflows.inputs.fields import (
    RAW_LIMIT_BYTES,
    BadRecord,
    Invalid,
    json_type_name,
    key_of,
    ts_of,
)
from dataflows.inputs.source_format import SourceFormat
from joins import Event, Side, content_id

Batches = Iterator[tuple[list[Event | Invalid], int]]

#: Block decompressors per codec (raw deflate, as the specification says).
_CODECS: dict[str, Callable[[bytes], bytes] | None] = {
    "null": None,
    "deflate": lambda data: zlib.decompress(data, -15),
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
}


class _FileError(Exception):
    """The whole file is unreadable (header, schema or codec)."""


def _open(header: Header) -> tuple[Any, Any]:
    """The writer schema (JSON) and the JSON-safe schema fastavro decodes with."""
    if header.codec not in _CODECS:
        msg = (f"codec {header.codec!r} is not supported here "
               f"(supported: {', '.join(_CODECS)})")
        raise _FileError(msg)
    try:
        writer = json.loads(header.schema_text)
        parsed = fastavro.parse_schema(json_safe_schema(writer))
    except Exception as exc:
        msg = f"the writer schema is not valid ({type(exc).__name__}: {exc})"
        raise _FileError(msg) from exc
    return writer, parsed


def read_avro(
    handle: Any, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Batches:
    """Batches of at most ``size`` events and dead letters of an Avro file, from
    record index ``start``, each with the index to resume after it."""
    length = os.fstat(handle.fileno()).st_size
    if length == 0:
        return
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            header = read_header(data)
            writer, parsed = _open(header)
        except (HeaderError, _FileError) as exc:
            if start == 0:
                reason = f"avro: cannot read the file ({exc}); file skipped"
                raw = bytes(data[:RAW_LIMIT_BYTES])
                yield [Invalid(side, reason, raw, partition, 0, raw_bytes=length, binary=True)], 1
            return
        yield from _records(data, header, writer, parsed, side, fmt, partition, start, size)


def _records(
    data: Any, header: Header, writer: Any, parsed: Any, side: Side, fmt: SourceFormat,
    partition: str, start: int, size: int,
) -> Batches:
    decompress = _CODECS[header.codec]
    unit = timestamp_unit(writer, fmt.time_field)
    schema_text, codec = header.schema_text, header.codec
    decode = fastavro.schemaless_reader
    dumps = json.dumps
    batch: list[Event | Invalid] = []
    index = 0
    for frame in frames(data, header, min_record_bytes(parsed)):
        if isinstance(frame, Damage):
            if index >= start:
                held = (f"its header says {frame.count} records" if frame.count is not None
                        else "its record count is unreadable")
                reason = (f"avro: damaged block at byte {frame.start} ({frame.why}); {held}; "
                          f"reading goes on at byte {frame.end}")
                batch.append(_block_letter(side, reason, data, frame.start, frame.end,
                                           partition, index, schema_text, codec))
            index += frame.indexes
        elif index + frame.count <= start:
            index += frame.count  # read before the resume position: not even decompressed
            continue
        else:
            decoded = _decode_block(data, frame, decompress, parsed, decode)
            if isinstance(decoded, str):
                if index >= start:
                    reason = (f"avro: damaged block at byte {frame.start} (its records do not "
                              f"decode: {decoded}); the block held {frame.count} records")
                    batch.append(_block_letter(side, reason, data, frame.start, frame.end,
                                               partition, index, schema_text, codec))
                index += frame.count
            else:
                plain, records, bounds = decoded
                for i, datum in enumerate(records):
                    at = index + i
                    if at < start:
                        continue
                    if type(datum) is not dict:
                        reason = f"record is not an object (got {json_type_name(datum)})"
                        bad = Invalid(side, reason, plain[bounds[i] : bounds[i + 1]], partition,
                                      at, avro_schema=schema_text, binary=True)
                        batch.append(bad)
                    else:
                        canon = dumps(datum, sort_keys=True, separators=(",", ":"))
                        try:
                            event = Event(side, key_of(datum, fmt), ts_of(datum, fmt, unit),
                                          content_id(canon.encode()), datum, partition, at)
                        except BadRecord as exc:
                            batch.append(Invalid(side, str(exc), plain[bounds[i] : bounds[i + 1]],
                                                 partition, at, avro_schema=schema_text,
                                                 binary=True))
                        else:
                            batch.append(event)
                    if len(batch) >= size:
                        yield batch, at + 1
                        batch = []
                index += frame.count
                continue
        if len(batch) >= size:
            yield batch, index
            batch = []
    if batch:
        yield batch, index


def _block_letter(
    side: Side, reason: str, data: Any, start: int, end: int, partition: str, index: int,
    schema_text: str, codec: str,
) -> Invalid:
    """The dead letter of the damaged bytes ``start..end``: never more of them
    copied than a dead letter keeps (damage can run to the end of a large file)."""
    raw = data[start : min(end, start + RAW_LIMIT_BYTES)]
    return Invalid(side, reason, raw, partition, index, raw_bytes=end - start,
                   avro_schema=schema_text, avro_codec=codec, binary=True)


def _decode_block(
    data: Any, frame: Frame, decompress: Callable[[bytes], bytes] | None, parsed: Any,
    decode: Callable[..., Any],
) -> tuple[bytes, list[Any], list[int]] | str:
    """The block's plain bytes, its records and their start offsets (plus the end),
    or why they do not decode from exactly its bytes."""
    raw = data[frame.data_start : frame.data_end]  # a slice of an mmap is bytes
    try:
        plain = decompress(raw) if decompress is not None else raw
    except Exception as exc:
        return f"cannot decompress ({type(exc).__name__}: {exc})"
    bio = io.BytesIO(plain)
    tell = bio.tell
    records: list[Any] = []
    bounds: list[int] = []
    try:
        for _ in range(frame.count):
            bounds.append(tell())
            records.append(decode(bio, parsed, None))
    except Exception as exc:
        return f"record {len(records)}: {type(exc).__name__}: {exc}"
    end = tell()
    if end != len(plain):
        return f"{len(plain) - end} bytes left after its {frame.count} records"
    bounds.append(end)
    return plain, records, bounds


def count_records(path: str) -> int:
    """The position :func:`read_avro` reaches at the end of the Avro file
    ``path``: its record indexes (each damaged stretch counted as the reader
    counts it), from the blocks' headers alone. The run's progress line
    compares a partition's position with it."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                header = read_header(data)
                _writer, parsed = _open(header)
            except (HeaderError, _FileError):
                return 1  # the whole file is one dead letter
            return sum(
                frame.indexes if isinstance(frame, Damage) else frame.count
                for frame in frames(data, header, min_record_bytes(parsed))
            )
