"""An in-memory filter of the join keys held by one bucket of one side.

A probe seeks once per live bucket of the other side that its interval
overlaps (three on W-2M, where the plays file runs ahead in event time), and
most of those seeks find nothing: RocksDB's prefix bloom filter answers them
without a data block, but the seek through the Python binding still costs a
few microseconds. :class:`KeyFilter` answers the same question in memory,
before the seek: a Bloom filter over the keys' hashes, with no false negatives,
so a bucket it rules out holds no entry of the key, in the DB or in the
store's overlay, and the seek is skipped. The duplicate check uses it too: an
event whose key a bucket does not hold cannot be in it.

Sizing: a bucket's key count is not known when it opens. The filter starts
with room for ``capacity`` keys (the store passes the count of the side's
newest bucket, which has about the same) and, each time it is full, adds a
new part twice as large; a lookup checks every part (a scalable Bloom filter,
at most about 1% false positives per part).

Hashes are Python's ``hash()`` of the key: salted per process, which is fine
for a filter that lives in memory only. A store opened on existing state (a
resume) has no filter for the buckets it finds (it would have to read them
all): those buckets are probed by seeks until they are evicted, and every
bucket opened afterwards has a filter.
"""

from __future__ import annotations

#: Bits per key: with :data:`_PROBES` probes about 1% false positives when full.
_BITS_PER_KEY = 10
_PROBES = 3
#: The smallest part, in keys.
MIN_CAPACITY = 1024
#: Hashes are cut to 62 bits: compiled code keeps such integers unboxed.
_M62 = (1 << 62) - 1


class _Part:
    """One Bloom filter of a fixed size: ``2**n`` bits."""

    __slots__ = ("bits", "capacity", "count", "mask")

    def __init__(self, capacity: int) -> None:
        size = 1 << max(13, (capacity * _BITS_PER_KEY - 1).bit_length())
        self.bits = bytearray(size >> 3)
        self.mask = size - 1
        self.capacity = capacity
        self.count = 0

    def add(self, h: int) -> None:
        bits, mask = self.bits, self.mask
        step = (h >> 31) | 1
        for _ in range(_PROBES):
            i = h & mask
            bits[i >> 3] |= 1 << (i & 7)
            h = (h + step) & _M62
        self.count += 1

    def holds(self, h: int) -> bool:
        bits, mask = self.bits, self.mask
        step = (h >> 31) | 1
        for _ in range(_PROBES):
            i = h & mask
            if not bits[i >> 3] & (1 << (i & 7)):
                return False
            h = (h + step) & _M62
        return True


class KeyFilter:
    """The keys added to one bucket of one side (no false negatives)."""

    __slots__ = ("_last", "_parts")

    def __init__(self, capacity: int = MIN_CAPACITY) -> None:
        self._last = _Part(max(MIN_CAPACITY, capacity))
        self._parts = [self._last]

    def add(self, key: str) -> None:
        """Remember ``key``."""
        last = self._last
        if last.count >= last.capacity:
            last = self._last = _Part(last.capacity * 2)
            self._parts.append(last)
        last.add(hash(key) & _M62)

    def may_hold(self, key: str) -> bool:
        """False only if ``key`` was never added."""
        h = hash(key) & _M62
        for part in self._parts:
            if part.holds(h):
                return True
        return False

    @property
    def bytes(self) -> int:
        """Memory held by the bit arrays."""
        return sum(len(p.bits) for p in self._parts)
