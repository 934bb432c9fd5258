"""Events that enter the join and the outputs it returns, as plain values.

An :class:`Event` is one valid input event of either side. Its identity is
``(side, key, ts, eid)``: ``eid`` is a short digest of the event's content that
the source computes (:func:`content_id`), so two copies of the same event are
recognised as duplicates wherever they come from.

Output ids are deterministic functions of the identities involved: the same
pair or unmatched row gets the same id in any run, interleaving or replay.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["left", "right"]
SIDES: tuple[Side, Side] = ("left", "right")

_TS = struct.Struct(">q")


def other_side(side: Side) -> Side:
    """The side an event of ``side`` joins against."""
    return "right" if side == "left" else "left"


def content_id(raw: bytes) -> bytes:
    """The 8-byte content digest of an event's raw bytes (its ``eid``)."""
    return hashlib.blake2b(raw, digest_size=8).digest()


@dataclass(frozen=True, slots=True)
class Event:
    """One valid input event.

    ``ts`` is event time in epoch milliseconds; ``partition`` and ``offset`` say
    where the event was read (they are not part of its identity).
    ``record_json``, when a store has it at hand, is ``record`` as compact
    ASCII JSON text (``separators=(",", ":")``, NaN allowed), so that outputs
    need not encode the record again; it takes no part in equality.
    """

    side: Side
    key: str
    ts: int
    eid: bytes
    record: dict[str, Any]
    partition: str = ""
    offset: int = 0
    record_json: str | None = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> bytes:
        """Bytes that identify the event within its side: key, time and content."""
        return self.key.encode() + b"\x00" + _TS.pack(self.ts) + self.eid


def match_id(left: Event, right: Event) -> str:
    """Deterministic id of the pair ``(left, right)``."""
    digest = hashlib.blake2b(b"M" + left.identity + b"|" + right.identity, digest_size=16)
    return digest.hexdigest()


def unmatched_id(event: Event) -> str:
    """Deterministic id of the unmatched row of ``event``."""
    tag = b"L" if event.side == "left" else b"R"
    return hashlib.blake2b(tag + event.identity, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Matched:
    """A pair that satisfies the interval condition, emitted once."""

    left: Event
    right: Event

    @property
    def key(self) -> str:
        return self.left.key

    @property
    def id(self) -> str:
        return match_id(self.left, self.right)


@dataclass(frozen=True, slots=True)
class Unmatched:
    """An outer-side event evicted without ever matching (the other side null)."""

    event: Event

    @property
    def key(self) -> str:
        return self.event.key

    @property
    def kind(self) -> Literal["left_only", "right_only"]:
        return "left_only" if self.event.side == "left" else "right_only"

    @property
    def id(self) -> str:
        return unmatched_id(self.event)


@dataclass(frozen=True, slots=True)
class Late:
    """An event that arrived behind the watermark; it joins nothing and is not stored.

    ``lateness_ms = watermark_ms - allowed_lateness_ms - event.ts`` (> 0).
    """

    event: Event
    watermark_ms: int
    lateness_ms: int
