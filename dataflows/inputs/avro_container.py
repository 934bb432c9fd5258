"""The framing of an Avro object container file, read by hand so that damage
is confined to the block it hits.

The format (Avro specification, "Object Container Files")::

    header: b"Obj\\x01", metadata (a map of bytes: "avro.schema", "avro.codec"),
            16-byte sync marker
    block:  record count (long), data size (long), data (size bytes,
            compressed by the codec), the sync marker again
    long:   zig-zag varint, at most 10 bytes

:func:`read_header` reads the header (a :class:`HeaderError` says why it cannot);
:func:`frames` walks the blocks after it and yields, in file order, each intact
:class:`Frame` and each :class:`Damage`, a stretch of bytes that is not one:

- a block is intact when its count and size read, ``count`` records could fit
  in ``size`` bytes (:func:`dataflows.inputs.avro_values.min_record_bytes`),
  and the sync marker follows its data;
- otherwise the damage starts at the block's first byte and ends
  (**resynchronisation**) right after its declared extent if only its sync
  marker is wrong and an intact block (or the end of the file) follows there;
  else after the next sync marker in the file; else at the end of the file.
  A damage takes one record index, or its header's count when it is exactly
  the block its header declares (only the sync marker was wrong) and the count
  fits.

A block can also be intact here and still not decode (a damaged byte inside
its data); :mod:`dataflows.inputs.avro_format` finds that out and treats the
block as damaged too. Framing reads only the block headers, so a resume skips
the blocks before its position without decompressing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

MAGIC: Final = b"Obj\x01"
SYNC_SIZE: Final = 16
_MAX_VARINT_BYTES: Final = 10


class HeaderError(Exception):
    """The file header cannot be read; the message says why."""


class _Cut(Exception):
    """A varint runs past the end of the data."""


def _long(data: Any, pos: int, end: int) -> tuple[int, int]:
    """The zig-zag varint long at ``pos`` and the position after it."""
    n = shift = 0
    for i in range(pos, min(end, pos + _MAX_VARINT_BYTES)):
        b = data[i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), i + 1
        shift += 7
    if end - pos < _MAX_VARINT_BYTES:
        raise _Cut
    msg = f"a varint at byte {pos} is longer than {_MAX_VARINT_BYTES} bytes"
    raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Header:
    """What the header says: the writer schema (JSON text, as written), the codec,
    the sync marker, and where the first block starts."""

    schema_text: str
    codec: str
    sync: bytes
    end: int


def read_header(data: Any) -> Header:
    """The header of the container file ``data`` (bytes or an mmap)."""
    size = len(data)
    if data[:4] != MAGIC:
        msg = f"not an Avro container file (starts {bytes(data[:4])!r}, not {MAGIC!r})"
        raise HeaderError(msg)
    meta: dict[str, bytes] = {}
    pos = 4
    try:
        while True:
            count, pos = _long(data, pos, size)
            if count == 0:
                break
            if count < 0:  # a block of the map that gives its size in bytes too
                count = -count
                _, pos = _long(data, pos, size)
            for _ in range(count):
                klen, pos = _long(data, pos, size)
                if klen < 0 or pos + klen > size:
                    raise _Cut
                key = bytes(data[pos : pos + klen]).decode()
                pos += klen
                vlen, pos = _long(data, pos, size)
                if vlen < 0 or pos + vlen > size:
                    raise _Cut
                meta[key] = bytes(data[pos : pos + vlen])
                pos += vlen
    except _Cut:
        msg = "the metadata map is cut off by the end of the file"
        raise HeaderError(msg) from None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"the metadata map is damaged ({exc})"
        raise HeaderError(msg) from exc
    if pos + SYNC_SIZE > size:
        msg = "the sync marker is cut off by the end of the file"
        raise HeaderError(msg)
    if "avro.schema" not in meta:
        msg = "the metadata has no avro.schema"
        raise HeaderError(msg)
    try:
        schema_text = meta["avro.schema"].decode()
        codec = meta.get("avro.codec", b"null").decode() or "null"
    except UnicodeDecodeError as exc:
        msg = f"the schema or codec is not UTF-8 ({exc.reason})"
        raise HeaderError(msg) from exc
    return Header(schema_text, codec, bytes(data[pos : pos + SYNC_SIZE]), pos + SYNC_SIZE)


@dataclass(frozen=True, slots=True)
class Frame:
    """An intact block: bytes ``start..end`` (sync marker included), ``count``
    records in the codec-compressed data at ``data_start..data_end``."""

    start: int
    end: int
    count: int
    data_start: int
    data_end: int


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes ``start..end`` that are not an intact block: ``why``, the record
    count its header gave if it could be read (not to be trusted), and how many
    record indexes it takes: that count when the damage is exactly the extent
    its header declares and the count fits in it, else 1."""

    start: int
    end: int
    count: int | None
    why: str
    indexes: int = 1


@dataclass(frozen=True, slots=True)
class _Bad:
    why: str
    count: int | None
    #: Where the block would end (after its sync marker) if its header is right.
    declared_end: int | None = None
    #: Whether ``count`` records could fit in the declared size.
    fits: bool = False


def _frame(data: Any, pos: int, size: int, sync: bytes, min_bytes: int) -> Frame | _Bad:
    try:
        count, p = _long(data, pos, size)
        nbytes, p = _long(data, p, size)
    except _Cut:
        return _Bad("its header is cut off by the end of the file", None, None)
    except ValueError as exc:
        return _Bad(f"its header is unreadable: {exc}", None, None)
    if count < 0 or nbytes < 0:
        return _Bad(f"its header gives a negative count or size ({count}, {nbytes})", None, None)
    end = p + nbytes + SYNC_SIZE
    if end > size:
        return _Bad(f"its size, {nbytes} bytes, runs past the end of the file", count, None)
    # Records of a schema that can take 0 bytes (a record of nulls) fit any
    # number, but a count past a million per byte is damage, not data: it
    # would only keep the decoder busy.
    fits = count <= (nbytes // min_bytes if min_bytes else (nbytes + 1) << 20)
    if data[end - SYNC_SIZE : end] != sync:
        why = "the sync marker is not where its size says the block ends"
        return _Bad(why, count, end, fits)
    if not fits:
        return _Bad(f"{count} records cannot fit in its {nbytes} bytes", count, end)
    return Frame(pos, end, count, p, p + nbytes)


def frames(data: Any, header: Header, min_bytes: int = 0) -> Iterator[Frame | Damage]:
    """The intact blocks and damaged stretches of ``data`` after ``header``, in
    file order (see the module docstring); ``min_bytes`` is the fewest bytes a
    record of the writer schema takes."""
    size, sync = len(data), header.sync
    pos = header.end
    while pos < size:
        found = _frame(data, pos, size, sync, min_bytes)
        if isinstance(found, Frame):
            yield found
            pos = found.end
            continue
        nxt = found.declared_end
        if nxt is not None and (
            nxt == size or isinstance(_frame(data, nxt, size, sync, min_bytes), Frame)
        ):
            span = found.count if found.fits and found.count else 1  # count may be 0
            yield Damage(pos, nxt, found.count, found.why, span)
            pos = nxt
            continue
        marker = data.find(sync, pos)
        if marker < 0:
            yield Damage(pos, size, found.count, f"{found.why}; no sync marker follows")
            return
        yield Damage(pos, marker + SYNC_SIZE, found.count, found.why)
        pos = marker + SYNC_SIZE
