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
import json
import struct
from dataclasses import dataclass
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


class Event:
    """One valid input event (immutable by convention; a plain slots class, since
    millions are made per second and a frozen dataclass costs twice as much).

    ``ts`` is event time in epoch milliseconds; ``partition`` and ``offset`` say
    where the event was read (they are not part of its identity).
    ``record_json``, when at hand, is ``record`` as JSON text, so that outputs
    need not encode the record again; it takes no part in equality, and it is
    the one field set after construction (a store that encodes the record fills
    it in, a cache of what the record already says). An event
    made with ``record=None`` and its ``record_json`` parses the text on first
    read of :attr:`record` (stores do this: a probe hit is mostly written out as
    text and never needs the dict).
    """

    __slots__ = ("_identity", "_record", "eid", "key", "offset", "partition", "record_json",
                 "side", "ts")  # fmt: skip

    def __init__(
        self,
        side: Side,
        key: str,
        ts: int,
        eid: bytes,
        record: dict[str, Any] | None,
        partition: str = "",
        offset: int = 0,
        record_json: str | None = None,
    ) -> None:
        if record is None and record_json is None:
            msg = "an Event needs its record or its record's JSON text"
            raise ValueError(msg)
        self.side = side
        self.key = key
        self.ts = ts
        self.eid = eid
        self._record = record
        self.partition = partition
        self.offset = offset
        self.record_json = record_json
        self._identity: bytes | None = None

    @property
    def record(self) -> dict[str, Any]:
        """The event's record (parsed from :attr:`record_json` on first read)."""
        rec = self._record
        if rec is None:
            rec = self._record = json.loads(self.record_json)  # type: ignore[arg-type]
        return rec

    @property
    def identity(self) -> bytes:
        """Bytes that identify the event within its side: key, time and content."""
        ident = self._identity
        if ident is None:
            ident = self._identity = self.key.encode() + b"\x00" + _TS.pack(self.ts) + self.eid
        return ident

    def __reduce__(self) -> tuple[type[Event], tuple[object, ...]]:
        # Events cross process boundaries (Bytewax pickles exchanged items); a
        # class compiled by mypyc has no default pickling, so say how.
        return (Event, (self.side, self.key, self.ts, self.eid, self._record, self.partition,
                        self.offset, self.record_json))  # fmt: skip

    def _fields(self) -> tuple[object, ...]:
        return (self.side, self.key, self.ts, self.eid, self.record, self.partition, self.offset)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Event:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.side, self.key, self.ts, self.eid))

    def __repr__(self) -> str:
        return (
            f"Event(side={self.side!r}, key={self.key!r}, ts={self.ts!r}, eid={self.eid!r}, "
            f"record={self.record!r}, partition={self.partition!r}, offset={self.offset!r})"
        )


def match_id(left: Event, right: Event) -> str:
    """Deterministic id of the pair ``(left, right)``."""
    digest = hashlib.blake2b(b"M" + left.identity + b"|" + right.identity, digest_size=16)
    return digest.hexdigest()


def unmatched_id(event: Event) -> str:
    """Deterministic id of the unmatched row of ``event``."""
    tag = b"L" if event.side == "left" else b"R"
    return hashlib.blake2b(tag + event.identity, digest_size=16).hexdigest()


@dataclass(slots=True)
class Matched:
    """A pair that satisfies the interval condition, emitted once (not frozen:
    millions are made, and a frozen dataclass's ``__init__`` is twice as slow)."""

    left: Event
    right: Event

    def __reduce__(self) -> tuple[type[Matched], tuple[Event, Event]]:
        return (Matched, (self.left, self.right))  # (see Event.__reduce__)

    @property
    def key(self) -> str:
        return self.left.key

    @property
    def id(self) -> str:
        return match_id(self.left, self.right)


@dataclass(slots=True)
class Unmatched:
    """An outer-side event evicted without ever matching (the other side null)."""

    event: Event

    def __reduce__(self) -> tuple[type[Unmatched], tuple[Event]]:
        return (Unmatched, (self.event,))  # (see Event.__reduce__)

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

    def __reduce__(self) -> tuple[type[Late], tuple[Event, int, int]]:
        return (Late, (self.event, self.watermark_ms, self.lateness_ms))  # (see Event.__reduce__)
