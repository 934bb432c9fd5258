"""Avro inputs for validate: an object container file, framed by hand and its
records decoded with fastavro directly (DuckDB's Avro extension would need a
download), then staged for SQL (:mod:`dataflows.validate.staging`).

The container (Avro specification, "Object Container Files"): ``Obj\\x01``, a
metadata map (``avro.schema``, ``avro.codec``), a 16-byte sync marker, then
blocks of *record count* (long), *data size* (long), the data (compressed by
the codec) and the sync marker again. The rules validate expects the run to
follow (issue 10):

- an unreadable header, a schema fastavro cannot parse or a codec other than
  ``null``, ``deflate``, ``bzip2``, ``xz``: one dead letter for the whole file
  (offset 0; its first :data:`RAW_LIMIT_BYTES` bytes, the file's length as
  ``raw_bytes``);
- a block is **intact** when its count and size read as non-negative, its data
  ends inside the file and is followed by the sync marker, and its count
  **fits**: at most size / the fewest bytes a record takes (for records that can
  take no bytes, at most a million per byte). A block that is not is **damage**
  up to the end of its declared extent if that is the end of the file or an
  intact block starts there, else up to the next sync marker (included), else
  to the end of the file: one dead letter holding those bytes (its first
  :data:`RAW_LIMIT_BYTES`, ``raw_bytes`` the full length), offset = the next
  record index, which it advances by its count when the damage is exactly its
  declared extent (only the sync marker was wrong) and the count fits, else by
  one;
- an intact block whose data does not decompress, or whose ``count`` records
  do not decode from exactly its bytes, is damage too: one dead letter of the
  block's bytes (sync marker included), advancing the index by its count;
- each record of a good block is one staged record: its text is the JSON of the
  JSON-safe datum (:mod:`dataflows.validate.avro_values`), its bytes (a dead
  letter's ``raw``) are its binary encoding, and its identity is
  ``content_id`` of its canonical JSON (``json.dumps(datum, sort_keys=True,
  separators=(",", ":"))``). Its offset is its index in the file.

A ``timestamp-*`` time field states its own unit, staged with each record
(``x``) for SQL to use instead of the configured one.
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
from dataclasses import dataclass
from typing import IO, Any, Final

import fastavro

from dataflows.validate.avro_values import json_safe_schema, min_record_bytes, timestamp_unit
from dataflows.validate.staging import AVRO_RECORD, BROKEN, StageWriter, eid_of

MAGIC: Final = b"Obj\x01"
SYNC_SIZE: Final = 16
#: How much of a damaged stretch, or a whole unreadable file, its dead letter
#: holds (1 MiB).
RAW_LIMIT_BYTES: Final = 1 << 20

#: JSON encoders built once (``json.dumps`` with options builds one per call).
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_compact = json.JSONEncoder(separators=(",", ":")).encode

_CODECS: Final[dict[str, Callable[[bytes], bytes] | None]] = {
    "null": None,
    "deflate": lambda data: zlib.decompress(data, -15),
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
}


class _Unreadable(Exception):
    """The file's header, schema or codec cannot be used."""


class _Short(Exception):
    """A varint runs past the end of the bytes."""


def _varint(data: Any, pos: int, end: int) -> tuple[int, int]:
    """The zig-zag varint at ``pos`` (at most 10 bytes) and the position after it."""
    acc = shift = 0
    for i in range(pos, min(end, pos + 10)):
        byte = data[i]
        acc |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (acc >> 1) ^ -(acc & 1), i + 1
        shift += 7
    if end - pos < 10:
        raise _Short
    msg = f"a varint at byte {pos} is longer than 10 bytes"
    raise ValueError(msg)


@dataclass(frozen=True)
class _Header:
    schema: str
    codec: str
    sync: bytes
    end: int


def _header(data: Any) -> _Header:
    size = len(data)
    if data[:4] != MAGIC:
        msg = "not an Avro container file"
        raise _Unreadable(msg)
    meta: dict[str, bytes] = {}
    pos = 4
    try:
        while True:
            count, pos = _varint(data, pos, size)
            if count == 0:
                break
            if count < 0:
                count = -count
                _, pos = _varint(data, pos, size)
            for _ in range(count):
                klen, pos = _varint(data, pos, size)
                if klen < 0 or pos + klen > size:
                    raise _Short
                key = bytes(data[pos : pos + klen]).decode()
                pos += klen
                vlen, pos = _varint(data, pos, size)
                if vlen < 0 or pos + vlen > size:
                    raise _Short
                meta[key] = bytes(data[pos : pos + vlen])
                pos += vlen
        if pos + SYNC_SIZE > size or "avro.schema" not in meta:
            raise _Short
        schema = meta["avro.schema"].decode()
        codec = meta.get("avro.codec", b"null").decode() or "null"
    except (_Short, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        msg = f"unreadable header ({type(exc).__name__})"
        raise _Unreadable(msg) from exc
    return _Header(schema, codec, bytes(data[pos : pos + SYNC_SIZE]), pos + SYNC_SIZE)


@dataclass(frozen=True)
class _Block:
    """Bytes ``start..end``: an intact block (``data`` its compressed data) or,
    with ``why``, damage taking ``indexes`` record indexes."""

    start: int
    end: int
    count: int | None
    data: tuple[int, int] = (0, 0)
    why: str = ""
    fits: bool = False
    indexes: int = 1


def _block_at(data: Any, pos: int, head: _Header, min_bytes: int) -> _Block:
    """The block at ``pos``; damage has ``end`` = its declared end or -1."""
    size = len(data)
    try:
        count, p = _varint(data, pos, size)
        nbytes, p = _varint(data, p, size)
    except (_Short, ValueError):
        return _Block(pos, -1, None, why="unreadable block header")
    if count < 0 or nbytes < 0:
        return _Block(pos, -1, None, why="negative count or size")
    end = p + nbytes + SYNC_SIZE
    if end > size:
        return _Block(pos, -1, count, why="size runs past the end of the file")
    # A record that can take no bytes fits any number of times; past a million
    # a byte the count is damage, not data.
    fits = count <= (nbytes // min_bytes if min_bytes else (nbytes + 1) << 20)
    if data[end - SYNC_SIZE : end] != head.sync:
        return _Block(pos, end, count, why="no sync marker where the block ends", fits=fits)
    if not fits:
        return _Block(pos, end, count, why="more records than its size holds")
    return _Block(pos, end, count, (p, p + nbytes), fits=True)


def _blocks(data: Any, head: _Header, min_bytes: int) -> Iterator[_Block]:
    """The file's blocks and damaged stretches, in order (see the module docstring)."""
    size = len(data)
    pos = head.end
    while pos < size:
        block = _block_at(data, pos, head, min_bytes)
        if not block.why:
            yield block
            pos = block.end
            continue
        declared = block.end
        if declared >= 0 and (declared == size
                              or not _block_at(data, declared, head, min_bytes).why):
            span = block.count if block.fits and block.count else 1
            yield _Block(pos, declared, block.count, why=block.why, indexes=span)
            pos = declared
            continue
        marker = data.find(head.sync, pos)
        end = size if marker < 0 else marker + SYNC_SIZE
        yield _Block(pos, end, block.count, why=block.why)
        pos = end


def _records(plain: bytes, count: int, schema: Any) -> tuple[list[Any], list[int]] | str:
    """``count`` records decoded from exactly ``plain`` and their start offsets
    (plus the end), or why they do not decode."""
    bio = io.BytesIO(plain)
    records: list[Any] = []
    starts: list[int] = []
    try:
        for _ in range(count):
            starts.append(bio.tell())
            records.append(fastavro.schemaless_reader(bio, schema, None))
    except Exception as exc:
        return f"record {len(records)} does not decode ({type(exc).__name__})"
    starts.append(bio.tell())
    if starts[-1] != len(plain):
        return f"{len(plain) - starts[-1]} bytes left after its {count} records"
    return records, starts


def stage_avro(writer: StageWriter, src: int, handle: IO[bytes], time_field: str) -> None:
    """Stage the records and dead letters of an Avro container file."""
    length = os.fstat(handle.fileno()).st_size
    if length == 0:
        return
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            head = _header(data)
            if head.codec not in _CODECS:
                msg = f"codec {head.codec!r} not supported"
                raise _Unreadable(msg)
            try:
                writer_schema = json.loads(head.schema)
                schema = fastavro.parse_schema(json_safe_schema(writer_schema))
            except Exception as exc:
                msg = f"schema not usable ({type(exc).__name__})"
                raise _Unreadable(msg) from exc
        except _Unreadable as exc:
            writer.record(src, 0, bytes(data[:RAW_LIMIT_BYTES]), BROKEN,
                          x=f"avro: {exc}", size=length)
            return
        _stage_blocks(writer, src, data, head, writer_schema, schema, time_field)


def _stage_blocks(writer: StageWriter, src: int, data: Any, head: _Header, writer_schema: Any,
                  schema: Any, time_field: str) -> None:
    decompress = _CODECS[head.codec]
    unit = timestamp_unit(writer_schema, time_field)
    canonical, compact = _canonical, _compact
    index = 0
    for block in _blocks(data, head, min_record_bytes(writer_schema)):
        # A dead letter keeps a damaged stretch's first bytes (it may run to the
        # end of a large file) and says how long it was.
        kept = bytes(data[block.start : min(block.end, block.start + RAW_LIMIT_BYTES)])
        length = block.end - block.start
        if block.why:
            writer.record(src, index, kept, BROKEN, x=f"avro: damaged block ({block.why})",
                          n=block.count, size=length)
            index += block.indexes
            continue
        count = block.count or 0
        packed = bytes(data[block.data[0] : block.data[1]])
        try:
            plain = decompress(packed) if decompress is not None else packed
        except Exception:
            decoded: tuple[list[Any], list[int]] | str = "data does not decompress"
        else:
            decoded = _records(plain, count, schema)
        if isinstance(decoded, str):
            writer.record(src, index, kept, BROKEN, x=f"avro: damaged block ({decoded})",
                          n=count, size=length)
            index += count
            continue
        records, starts = decoded
        for i, datum in enumerate(records):
            writer.record(src, index + i, plain[starts[i] : starts[i + 1]], AVRO_RECORD,
                          eid=eid_of(canonical(datum).encode()), x=unit, text=compact(datum))
        index += count
