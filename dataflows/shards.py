"""Virtual shards: which shard owns a join key, and which worker owns a shard.

The join's state is cut into a fixed number ``S`` of virtual shards (chosen at
the first start and recorded in ``run.json``, like Flink's key groups). A key
belongs to shard ``stable_hash(key) mod S``: a stable hash (8 bytes of
BLAKE2b), never Python's salted :func:`hash`, so every process and every run
agrees.

Bytewax routes a string key to worker ``SipHash-1-3(key bytes + 0xFF) mod
workers`` (Rust's ``DefaultHasher`` with zero keys over a ``String``, whose
``Hash`` impl writes its bytes and then a ``0xFF`` terminator; see
``src/operators.rs`` and ``src/timely.rs`` of Bytewax 0.21.1). That cannot be
configured, so the shard *names* are chosen instead: :func:`shard_names` picks,
for each shard index, a name such that the shards spread as evenly as possible
over every worker count from 1 to :data:`BALANCED_UP_TO`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

#: Shard names are chosen to balance for every worker count up to this one.
BALANCED_UP_TO = 8

_MASK = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 of ``data`` with key ``(k0, k1)``, as Rust's ``DefaultHasher``."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    n = len(data)
    end = n - (n % 8)
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def bytewax_worker(key: str, workers: int) -> int:
    """The worker index Bytewax 0.21.1 routes the state key ``key`` to."""
    return siphash13(key.encode() + b"\xff") % workers


def stable_hash(key: str) -> int:
    """A hash of ``key`` that is the same in every process and run (64 bits)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def shard_of(key: str, shards: int) -> int:
    """The shard index that owns the join key ``key``."""
    return stable_hash(key) % shards


@lru_cache(maxsize=16)
def shard_names(shards: int, balanced_up_to: int = BALANCED_UP_TO) -> tuple[str, ...]:
    """Names of the shards ``0 .. shards-1``, balanced over worker counts 1..N.

    Greedy and deterministic: for shard ``i``, the candidates ``f"s{i:04d}-{j}"``
    for ``j = 0, 1, ...`` are tried, and the first one is taken that keeps every
    worker count's load within the best spread reachable (``ceil`` of the
    ideal); after a bounded search the least bad candidate wins.
    """
    if shards <= 0:
        msg = f"shards must be > 0, got {shards}"
        raise ValueError(msg)
    counts = {w: [0] * w for w in range(1, balanced_up_to + 1)}
    names: list[str] = []
    for i in range(shards):
        best: tuple[int, str] | None = None
        for j in range(4096):
            name = f"s{i:04d}-{j}"
            h = siphash13(name.encode() + b"\xff")
            # The worst excess over the ideal ceiling, over all worker counts.
            excess = 0
            for w, c in counts.items():
                ceiling = -(-(i + 1) // w)
                excess += max(0, c[h % w] + 1 - ceiling)
            if best is None or excess < best[0]:
                best = (excess, name)
            if excess == 0:
                break
        if best is None:  # pragma: no cover - the loop runs at least once
            msg = "no shard name candidate"
            raise RuntimeError(msg)
        name = best[1]
        h = siphash13(name.encode() + b"\xff")
        for w, c in counts.items():
            c[h % w] += 1
        names.append(name)
    return tuple(names)


def shards_of_worker(shards: int, worker: int, workers: int) -> list[str]:
    """The names of the shards that Bytewax runs on ``worker`` of ``workers``."""
    return [n for n in shard_names(shards) if bytewax_worker(n, workers) == worker]
