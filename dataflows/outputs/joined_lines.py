"""JSON Lines of joined rows, fast: each event's JSON is encoded once, not per pair.

An event joins several partners (a play matches every impression of its key in
the window), and encoding the input record is most of the cost of a joined
line. :class:`JoinedLineEncoder` caches, per event identity, the JSON fragments
of its record, eid, partition and offset, and assembles each line from them.
Events that carry their record's JSON text already (``Event.record_json``: an
ASCII JSON Lines input line as read, or the store's copy) are not encoded or
cached at all: the text goes into the line as it is.

For events without that text the output is byte for byte
``records.json_line(records.joined_record(row))`` (a test holds the two
together); with it, the same values, the record's text as the input had it.
:mod:`dataflows.outputs.records` stays the definition of the format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from hashlib import blake2b

from joins import Event, Matched, Unmatched, unmatched_id

#: The encoder of ``records.json_line`` (compact, ASCII-escaped, ``str()`` for
#: values JSON lacks); the equality test fails if the two drift apart.
json_line = json.JSONEncoder(separators=(",", ":"), default=str).encode

#: Cached events; the cache is dropped whole when it grows past this.
CACHE_EVENTS = 100_000


class JoinedLineEncoder:
    """Turns :class:`~joins.Matched` / :class:`~joins.Unmatched` rows into JSON lines."""

    def __init__(self, cache_events: int = CACHE_EVENTS) -> None:
        self._cache: dict[tuple[str, bytes], str] = {}
        self._limit = cache_events
        #: Keys and partition names as JSON strings.
        self._strings: dict[str, str] = {}

    def _record(self, e: Event) -> str:
        """The record's JSON text: carried by the event, or encoded once per event."""
        text = e.record_json
        if text is not None:
            return text
        ident = (e.side, e.identity)
        text = self._cache.get(ident)
        if text is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            text = self._cache[ident] = json_line(e.record)
        return text

    def _string(self, value: str) -> str:
        """A key or partition name as a JSON string, encoded once."""
        text = self._strings.get(value)
        if text is None:
            if len(self._strings) >= self._limit:
                self._strings.clear()
            text = self._strings[value] = json_line(value)
        return text

    def lines(self, rows: Iterable[Matched | Unmatched]) -> list[str]:
        """One line per row, without newlines."""
        out: list[str] = []
        append = out.append
        record, partition = self._record, self._string
        key_text, keys = self._string, self._strings
        # A probe's pairs come one after the other and share the probing event:
        # its parts are looked up once.
        last_left: Event | None = None
        last_right: Event | None = None
        lrec = lpart = leid = rrec = rpart = reid = ""
        lid = rid = b""
        for row in rows:
            if type(row) is Matched:
                left, right = row.left, row.right
                if left is not last_left:
                    lrec, lpart, leid = record(left), partition(left.partition), left.eid.hex()
                    lid = left.identity
                    last_left = left
                if right is not last_right:
                    rrec, rpart, reid = record(right), partition(right.partition), right.eid.hex()
                    rid = right.identity
                    last_right = right
                # ``match_id(left, right)``, inline
                mid = blake2b(b"M" + lid + b"|" + rid, digest_size=16).hexdigest()
                append(
                    f'{{"key":{keys.get(left.key) or key_text(left.key)},"kind":"match",'
                    f'"left":{lrec},'
                    f'"right":{rrec},"left_ts":{left.ts},"right_ts":{right.ts},'
                    f'"id":"{mid}","left_eid":"{leid}","right_eid":"{reid}",'
                    f'"left_partition":{lpart},"left_offset":{left.offset},'
                    f'"right_partition":{rpart},"right_offset":{right.offset}}}'
                )
                continue
            assert isinstance(row, Unmatched)  # noqa: S101 - narrows the union for mypy
            e = row.event
            rec, part, eid, off = record(e), partition(e.partition), e.eid.hex(), e.offset
            key = key_text(e.key)
            if e.side == "left":
                append(
                    f'{{"key":{key},"kind":"left_only","left":{rec},'
                    f'"right":null,"left_ts":{e.ts},"right_ts":null,'
                    f'"id":"{unmatched_id(e)}","left_eid":"{eid}","right_eid":null,'
                    f'"left_partition":{part},"left_offset":{off},'
                    f'"right_partition":null,"right_offset":null}}'
                )
            else:
                append(
                    f'{{"key":{key},"kind":"right_only","left":null,'
                    f'"right":{rec},"left_ts":null,"right_ts":{e.ts},'
                    f'"id":"{unmatched_id(e)}","left_eid":null,"right_eid":"{eid}",'
                    f'"left_partition":null,"left_offset":null,'
                    f'"right_partition":{part},"right_offset":{off}}}'
                )
        return out
