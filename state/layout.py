"""Byte layouts of the RocksDB state: pure functions whose docstring is the format.

All integers are big-endian so that byte order equals numeric order; signed
times are offset by ``2**63`` so that negative times sort before positive ones.
Three key families share one keyspace, told apart by their first byte:

- entries ``L``/``R`` (the side):
  ``side | crc32(key utf-8) | u16 key length | key utf-8 | ts | eid``.
  All entries of one (side, key) are contiguous and ordered by ``(ts, eid)``,
  so ``[lo_ts, hi_ts]`` is one range seek. The first :data:`PREFIX_BYTES`
  (side and key hash) are RocksDB's fixed prefix: prefix bloom filters answer
  a seek for a key without entries (the common case: most keys have no partner
  yet) without reading a data block. Different keys with the same hash are still
  told apart by the length and key that follow.
- expiry index ``X``: ``X | side | bound | entry key``, ordered by eviction bound,
  then by entry key. The value is ``01`` once the entry has matched, else
  empty (state written before the flag was kept here has only empty values:
  eviction then reads the entry's own flags byte), so that eviction counts
  matched entries without reading their values.
- meta ``M``: ``M | name`` (counts, writer schemas).
"""

from __future__ import annotations

import struct
import zlib

from joins.events import Side
from state.errors import StateError

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_OFFSET = 2**63
_MAX_KEY_BYTES = 0xFFFF
_U32 = struct.Struct(">I")
#: Bytes of the fixed prefix RocksDB's prefix extractor takes: side and key hash.
PREFIX_BYTES = 5
#: Bytes of an entry key before the key's UTF-8: side, hash, length.
_HEAD_BYTES = 7

SIDE_BYTE: dict[Side, bytes] = {"left": b"L", "right": b"R"}
BYTE_SIDE: dict[int, Side] = {ord("L"): "left", ord("R"): "right"}
EXPIRY = b"X"
#: Bytes of an expiry key before its entry key: ``X``, side, bound.
EXPIRY_HEAD_BYTES = 10
META = b"M"


def encode_time(ts: int) -> bytes:
    """``u64 big-endian of ts + 2**63``: 8 bytes whose byte order is time order."""
    try:
        return _U64.pack(ts + _OFFSET)
    except struct.error as exc:
        msg = f"time {ts} ms is outside the signed 64-bit range of the state layout"
        raise StateError(msg) from exc


def decode_time(data: bytes, offset: int = 0) -> int:
    """Inverse of :func:`encode_time`, reading 8 bytes at ``offset``."""
    value: int = _U64.unpack_from(data, offset)[0]
    return value - _OFFSET


def key_body(key: str) -> bytes:
    """``u32 crc32 of key utf-8 | u16 length | key utf-8``: :func:`key_prefix` after
    the side byte (the same for both sides, so callers may cache it per key)."""
    raw = key.encode()
    if len(raw) > _MAX_KEY_BYTES:
        msg = f"join key is {len(raw)} bytes in UTF-8; the state layout holds at most 65535"
        raise StateError(msg)
    return _U32.pack(zlib.crc32(raw)) + _U16.pack(len(raw)) + raw


def key_prefix(side: Side, key: str) -> bytes:
    """``side byte | u32 crc32 of key utf-8 | u16 length of key utf-8 | key utf-8``:
    the common start of all entries of a key."""
    return SIDE_BYTE[side] + key_body(key)


def entry_key(side: Side, key: str, ts: int, eid: bytes) -> bytes:
    """``side | crc32 | u16 key length | key utf-8 | ts (8, offset) | eid (rest)``."""
    return key_prefix(side, key) + encode_time(ts) + eid


def _time_from(ts: int) -> bytes:
    """:func:`encode_time` of ``ts``, raised to the smallest time the layout holds."""
    return _U64.pack(ts + _OFFSET) if ts > -_OFFSET else b"\x00" * 8


def _time_after(ts: int) -> bytes:
    """The exclusive upper end, after a key prefix, of entries with time ``<= ts``:
    :func:`encode_time` of ``ts + 1``, or ``0xFF`` * 9 past the largest time."""
    if ts >= _OFFSET - 1:
        return b"\xff" * 9
    return _U64.pack(ts + 1 + _OFFSET) if ts + 1 > -_OFFSET else b"\x00" * 8


def scan_bounds(prefix: bytes, lo_ts: int, hi_ts: int) -> tuple[bytes, bytes]:
    """``[lower, upper)`` entry keys covering ``lo_ts <= ts <= hi_ts`` of the key
    whose :func:`key_prefix` is ``prefix``.

    ``upper`` is the prefix with ``hi_ts + 1``; when ``hi_ts`` is the largest time
    the layout holds, it is the prefix followed by ``0xFF`` * 9 instead.
    """
    return prefix + _time_from(lo_ts), prefix + _time_after(hi_ts)


def decode_entry_key(data: bytes) -> tuple[Side, str, int, bytes]:
    """Inverse of :func:`entry_key`: ``(side, key, ts, eid)``."""
    try:
        side = BYTE_SIDE[data[0]]
        (length,) = _U16.unpack_from(data, 5)
        end = _HEAD_BYTES + length
        if len(data) < end + 8:
            raise IndexError(end)
        key = data[_HEAD_BYTES:end].decode()
        ts = decode_time(data, end)
    except (KeyError, IndexError, struct.error, UnicodeDecodeError) as exc:
        msg = f"not an entry key: {data[:40]!r}"
        raise StateError(msg) from exc
    return side, key, ts, data[end + 8 :]


def prefix_length(key: str) -> int:
    """Length of :func:`key_prefix` for ``key``."""
    return _HEAD_BYTES + len(key.encode())


def expiry_key(side: Side, bound: int, entry: bytes) -> bytes:
    """``X | side | bound (8, offset) | entry key``."""
    return EXPIRY + SIDE_BYTE[side] + encode_time(bound) + entry


def expiry_prefix(side: Side) -> bytes:
    """``X | side``: the start of a side's expiry index."""
    return EXPIRY + SIDE_BYTE[side]


def expiry_upper(side: Side, below: int) -> bytes:
    """The first expiry key of ``side`` whose bound is ``>= below`` (exclusive end)."""
    if below > _OFFSET - 1:
        return EXPIRY + SIDE_BYTE[side] + b"\xff" * 9
    return EXPIRY + SIDE_BYTE[side] + encode_time(max(below, -_OFFSET))


def decode_expiry_key(data: bytes) -> tuple[Side, int, bytes]:
    """Inverse of :func:`expiry_key`: ``(side, bound, entry key)``."""
    if len(data) < EXPIRY_HEAD_BYTES or data[:1] != EXPIRY or data[1] not in BYTE_SIDE:
        msg = f"not an expiry key: {data[:40]!r}"
        raise StateError(msg)
    return BYTE_SIDE[data[1]], decode_time(data, 2), data[EXPIRY_HEAD_BYTES:]


def count_key(side: Side) -> bytes:
    """``M | count | side``: value is :func:`encode_count`."""
    return META + b"count" + SIDE_BYTE[side]


def schema_key(fingerprint: bytes) -> bytes:
    """``M | schema | 8-byte fingerprint``: value is the writer schema's JSON (utf-8)."""
    return META + b"schema" + fingerprint


def encode_count(n: int) -> bytes:
    """``u64 big-endian``."""
    return _U64.pack(n)


def decode_count(data: bytes) -> int:
    """Inverse of :func:`encode_count`."""
    value: int = _U64.unpack(data)[0]
    return value
