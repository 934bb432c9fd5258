"""Byte layouts of the RocksDB state: pure functions whose docstring is the format.

Layout version 2 (:data:`LAYOUT_VERSION`): entries grouped by event-time bucket.
All integers are big-endian so that byte order equals numeric order; signed
times and bucket numbers are offset by ``2**63`` so that negative ones sort
before positive ones. Three key families share one keyspace (one column
family), told apart by their first byte:

- entries ``L``/``R`` (the side):
  ``side | bucket | crc32(key utf-8) | u16 key length | key utf-8 | ts | eid``,
  where ``bucket = ts // bucket_ms`` (floor) and ``eid`` is exactly
  :data:`EID_BYTES` bytes. The value is the codec's (:mod:`state.codec`).

  - A whole bucket of a side is one contiguous key range
    (:func:`bucket_range`): eviction scans it once and removes it with one
    ``delete_range``; no per-entry delete, no expiry index.
  - Within a bucket, all entries of one key are contiguous and ordered by
    ``(ts, eid)``, so ``[lo_ts, hi_ts]`` is one range seek per bucket it
    overlaps (:func:`scan_bounds`).
  - The first :data:`PREFIX_BYTES` (side, bucket, key hash) are RocksDB's fixed
    prefix: prefix bloom filters answer a seek for a key without entries in a
    bucket (the common case) without reading a data block. Keys with the same
    hash are told apart by the length and key that follow.
- matched flags: the entry key followed by one ``00`` byte, value empty
  (:func:`flag_key`). Written once, when a retained entry first matches (an
  entry that matched on arrival has bit 0 of its value's flags byte set
  instead). Since ``eid`` has a fixed length, no key sorts between an entry and
  its flag: a scan meets the flag right after the entry, and a bucket's
  ``delete_range`` removes both.
- meta ``M``: ``M | name``: the layout version and bucket width
  (:func:`version_key`, :func:`bucket_width_key`, u64 values), the writer
  schemas (:func:`schema_key`) and one key per live bucket of each side
  (:func:`bucket_meta_key`) whose value is the bucket's entry count
  (:func:`encode_bucket_meta`).

Layout version 1 (before event-time buckets: ``side | crc32 | ...`` entries and
an ``X | side | bound | entry key`` expiry index, no version key) is not read:
opening such state raises :class:`~state.errors.StateError` naming both versions.
"""

from __future__ import annotations

import struct
import zlib

from joins.events import Side
from state.errors import StateError

#: The layout this code writes and reads.
LAYOUT_VERSION = 2
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_OFFSET = 2**63
_MAX_KEY_BYTES = 0xFFFF
_U32 = struct.Struct(">I")
#: Bytes of the fixed prefix RocksDB's prefix extractor takes: side, bucket, key hash.
PREFIX_BYTES = 13
#: Bytes of an entry key before the key's UTF-8: side, bucket, hash, length.
_HEAD_BYTES = 15
#: Bytes of a bucket's head: side and bucket number.
BUCKET_HEAD_BYTES = 9
#: Length of an event id (:func:`joins.events.content_id`).
EID_BYTES = 8
#: What follows an entry key to make its matched flag's key.
FLAG_SUFFIX = b"\x00"

SIDE_BYTE: dict[Side, bytes] = {"left": b"L", "right": b"R"}
BYTE_SIDE: dict[int, Side] = {ord("L"): "left", ord("R"): "right"}
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


def bucket_head(side: Side, bucket: int) -> bytes:
    """``side | u64 of bucket + 2**63``: the first bytes of every entry of a
    side's bucket (also of its flags)."""
    return SIDE_BYTE[side] + encode_time(bucket)


def bucket_range(side: Side, bucket: int) -> tuple[bytes, bytes]:
    """``[begin, end)`` covering exactly the entries and flags of ``bucket``."""
    return bucket_head(side, bucket), bucket_head(side, bucket + 1)


def key_body(key: str) -> bytes:
    """``u32 crc32 of key utf-8 | u16 length | key utf-8``: :func:`key_prefix`
    after the bucket head (the same for both sides and all buckets, so callers
    may cache it per key)."""
    raw = key.encode()
    if len(raw) > _MAX_KEY_BYTES:
        msg = f"join key is {len(raw)} bytes in UTF-8; the state layout holds at most 65535"
        raise StateError(msg)
    return _U32.pack(zlib.crc32(raw)) + _U16.pack(len(raw)) + raw


def key_prefix(side: Side, bucket: int, key: str) -> bytes:
    """``bucket_head | u32 crc32 | u16 length | key utf-8``: the common start of
    all entries of a key in a bucket."""
    return bucket_head(side, bucket) + key_body(key)


def entry_key(side: Side, bucket: int, key: str, ts: int, eid: bytes) -> bytes:
    """``side | bucket | crc32 | u16 key length | key utf-8 | ts | eid`` (8 bytes)."""
    if len(eid) != EID_BYTES:
        msg = f"an event id is {EID_BYTES} bytes in the state layout, got {len(eid)}"
        raise StateError(msg)
    return key_prefix(side, bucket, key) + encode_time(ts) + eid


def flag_key(entry: bytes) -> bytes:
    """``entry key | 00``: the key whose presence (empty value) says the entry
    has matched since it was stored."""
    return entry + FLAG_SUFFIX


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
    (in one bucket) whose :func:`key_prefix` is ``prefix``. Flags of those
    entries lie inside too.

    ``upper`` is the prefix with ``hi_ts + 1``; when ``hi_ts`` is the largest time
    the layout holds, it is the prefix followed by ``0xFF`` * 9 instead.
    """
    return prefix + _time_from(lo_ts), prefix + _time_after(hi_ts)


def decode_entry_key(data: bytes) -> tuple[Side, int, str, int, bytes]:
    """Inverse of :func:`entry_key`: ``(side, bucket, key, ts, eid)``."""
    try:
        side = BYTE_SIDE[data[0]]
        bucket = decode_time(data, 1)
        (length,) = _U16.unpack_from(data, 13)
        end = _HEAD_BYTES + length
        if len(data) != end + 8 + EID_BYTES:
            raise IndexError(end)
        key = data[_HEAD_BYTES:end].decode()
        ts = decode_time(data, end)
    except (KeyError, IndexError, struct.error, UnicodeDecodeError) as exc:
        msg = f"not an entry key: {data[:40]!r}"
        raise StateError(msg) from exc
    return side, bucket, key, ts, data[end + 8 :]


def prefix_length(key: str) -> int:
    """Length of :func:`key_prefix` for ``key``."""
    return _HEAD_BYTES + len(key.encode())


def version_key() -> bytes:
    """``M | layout``: value ``u64`` :data:`LAYOUT_VERSION`."""
    return META + b"layout"


def bucket_width_key() -> bytes:
    """``M | bucket_ms``: value ``u64``, the bucket width the state was written with."""
    return META + b"bucket_ms"


def schema_key(fingerprint: bytes) -> bytes:
    """``M | schema | 8-byte fingerprint``: value is the writer schema's JSON (utf-8)."""
    return META + b"schema" + fingerprint


#: ``M | live``: the start of the live-bucket keys.
BUCKET_META_PREFIX = META + b"live"


def bucket_meta_key(side: Side, bucket: int) -> bytes:
    """``M | live | side | bucket (8, offset)``: present while the bucket holds
    entries; value :func:`encode_bucket_meta`."""
    return BUCKET_META_PREFIX + bucket_head(side, bucket)


def decode_bucket_meta_key(data: bytes) -> tuple[Side, int]:
    """Inverse of :func:`bucket_meta_key`: ``(side, bucket)``."""
    n = len(BUCKET_META_PREFIX)
    if len(data) != n + BUCKET_HEAD_BYTES or data[n] not in BYTE_SIDE:
        msg = f"not a bucket meta key: {data[:40]!r}"
        raise StateError(msg)
    return BYTE_SIDE[data[n]], decode_time(data, n + 1)


def encode_bucket_meta(count: int, min_ts: int) -> bytes:
    """``u64 entries | time (8, offset)`` of the bucket's oldest entry ever stored."""
    return _U64.pack(count) + encode_time(min_ts)


def decode_bucket_meta(data: bytes) -> tuple[int, int]:
    """Inverse of :func:`encode_bucket_meta`: ``(count, min_ts)``."""
    if len(data) != 16:
        msg = f"bucket meta value of {len(data)} bytes, expected 16"
        raise StateError(msg)
    count: int = _U64.unpack_from(data, 0)[0]
    return count, decode_time(data, 8)


def encode_u64(n: int) -> bytes:
    """``u64 big-endian``."""
    return _U64.pack(n)


def decode_u64(data: bytes) -> int:
    """Inverse of :func:`encode_u64`."""
    value: int = _U64.unpack(data)[0]
    return value
