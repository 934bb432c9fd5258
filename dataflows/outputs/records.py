"""Output records (``shared/design/semantics.md``, "Output records") and their encodings.

Three outputs, each a dict per row:

- joined: :func:`joined_record` -> ``key, kind, left, right, left_ts, right_ts,
  id`` plus extras ``left_eid``/``right_eid`` (hex content ids),
  ``left_partition``/``left_offset``/``right_partition``/``right_offset``;
- late: :func:`late_record` -> ``side, reason="late", watermark_ms, lateness_ms,
  record`` plus extras ``key, ts, partition, offset, eid`` (so that ``validate``
  can subtract late events exactly by identity);
- invalid: :func:`invalid_record` -> ``side, reason, raw, partition, offset``
  plus ``raw_encoding``, ``raw_bytes``, ``raw_truncated``, ``avro_schema``,
  ``avro_codec``: the record's exact bytes (:mod:`dataflows.outputs.dead_letters`).

Encodings: JSON Lines (:func:`json_line`: compact, ASCII-escaped so that any
input text, even lone surrogates, encodes; values JSON lacks, such as ``bytes``
or ``datetime`` from Avro inputs, become ``str()``), or Avro container files
with the schemas in ``dataflows/outputs/schemas/`` (``JOINED_SCHEMA`` ...). In Avro the
input records (``left``, ``right``, ``record``) are **JSON text**: inputs are
arbitrary (CSV rows, JSON objects, Avro datums of any schema), and a string is
the one Avro type that holds them all. :func:`avro_datum` converts a row dict
to its Avro datum; :func:`dataflows.outputs.read_rows` parses them back, so a
reader sees the same shape from either format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, Literal

import fastavro

from dataflows.outputs.dead_letters import invalid_record
from joins import Late, Matched, Unmatched, match_id, unmatched_id

OutputKind = Literal["joined", "late", "invalid"]
OUTPUT_KINDS: tuple[OutputKind, ...] = ("joined", "late", "invalid")

_SCHEMA_DIR = Path(__file__).parent / "schemas"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_SCHEMA_DIR / name).read_text())
    return data


#: The Avro schemas of the three outputs, as JSON-able dicts (not parsed).
JOINED_SCHEMA: dict[str, Any] = _load("joined_row.avsc")
LATE_SCHEMA: dict[str, Any] = _load("late_event.avsc")
INVALID_SCHEMA: dict[str, Any] = _load("invalid_input.avsc")
SCHEMAS: dict[str, dict[str, Any]] = {
    "joined": JOINED_SCHEMA,
    "late": LATE_SCHEMA,
    "invalid": INVALID_SCHEMA,
}
#: Parsed once, for fastavro's writer and reader.
PARSED_SCHEMAS: dict[str, Any] = {
    kind: fastavro.parse_schema(json.loads(json.dumps(schema)))
    for kind, schema in SCHEMAS.items()
}
#: Fields that hold input records: objects in JSON Lines, JSON text in Avro.
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "joined": ("left", "right"),
    "late": ("record",),
    "invalid": (),
}

_record_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


def json_line(row: dict[str, Any]) -> str:
    """One compact JSON line (no newline) of a row dict."""
    return _record_json(row)


def joined_record(row: Matched | Unmatched) -> dict[str, Any]:
    """The joined-output dict of a matched pair or an unmatched row."""
    if type(row) is Matched:
        left, right = row.left, row.right
        return {
            "key": left.key,
            "kind": "match",
            "left": left.record,
            "right": right.record,
            "left_ts": left.ts,
            "right_ts": right.ts,
            "id": match_id(left, right),
            "left_eid": left.eid.hex(),
            "right_eid": right.eid.hex(),
            "left_partition": left.partition,
            "left_offset": left.offset,
            "right_partition": right.partition,
            "right_offset": right.offset,
        }
    assert isinstance(row, Unmatched)  # noqa: S101 - narrows the union for mypy
    event = row.event
    if event.side == "left":
        return {
            "key": event.key,
            "kind": "left_only",
            "left": event.record,
            "right": None,
            "left_ts": event.ts,
            "right_ts": None,
            "id": unmatched_id(event),
            "left_eid": event.eid.hex(),
            "right_eid": None,
            "left_partition": event.partition,
            "left_offset": event.offset,
            "right_partition": None,
            "right_offset": None,
        }
    return {
        "key": event.key,
        "kind": "right_only",
        "left": None,
        "right": event.record,
        "left_ts": None,
        "right_ts": event.ts,
        "id": unmatched_id(event),
        "left_eid": None,
        "right_eid": event.eid.hex(),
        "left_partition": None,
        "left_offset": None,
        "right_partition": event.partition,
        "right_offset": event.offset,
    }


def late_record(late: Late) -> dict[str, Any]:
    """The late-output dict of a late event."""
    event = late.event
    return {
        "side": event.side,
        "reason": "late",
        "watermark_ms": late.watermark_ms,
        "lateness_ms": late.lateness_ms,
        "record": event.record,
        "key": event.key,
        "ts": event.ts,
        "partition": event.partition,
        "offset": event.offset,
        "eid": event.eid.hex(),
    }


def avro_datum(kind: OutputKind, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` (from the builders above) as a datum of ``SCHEMAS[kind]``:
    the input records become JSON text."""
    fields = RECORD_FIELDS[kind]
    if not fields:
        return row
    datum = dict(row)
    for name in fields:
        value = datum.get(name)
        if value is not None:
            datum[name] = _record_json(value)
    return datum


def avro_joined_record(row: Matched | Unmatched) -> dict[str, Any]:
    """:func:`joined_record` as an Avro datum (for a sink that writes Avro directly)."""
    return avro_datum("joined", joined_record(row))


def avro_late_record(late: Late) -> dict[str, Any]:
    """:func:`late_record` as an Avro datum."""
    return avro_datum("late", late_record(late))


#: Row builder per (output kind, output format); Avro ones return Avro datums.
BUILDERS: dict[tuple[str, str], Callable[[Any], dict[str, Any]]] = {
    ("joined", "jsonl"): joined_record,
    ("late", "jsonl"): late_record,
    ("invalid", "jsonl"): invalid_record,
    ("joined", "avro"): avro_joined_record,
    ("late", "avro"): avro_late_record,
    ("invalid", "avro"): invalid_record,
}


def write_jsonl(fo: IO[bytes], rows: Iterable[dict[str, Any]]) -> None:
    """Append ``rows`` to a JSON Lines file, one line each."""
    lines = [_record_json(row) for row in rows]
    if lines:
        lines.append("")
        fo.write("\n".join(lines).encode())


def write_avro(fo: IO[bytes], kind: OutputKind, rows: Iterable[dict[str, Any]]) -> None:
    """Write row dicts as an Avro container file (or append to one opened ``a+b``)."""
    fastavro.writer(fo, PARSED_SCHEMAS[kind], (avro_datum(kind, r) for r in rows))
