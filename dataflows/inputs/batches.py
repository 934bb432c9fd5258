"""Raw input (CSV, JSON Lines, Avro files) to :class:`joins.Event` or :class:`Invalid`.

Every record read becomes exactly one of the two: a valid event, or a dead
letter whose ``reason`` says exactly what was wrong and whose ``raw`` holds the
record's exact bytes. Nothing crashes on bad records and nothing is dropped
silently, except **blank lines**, which are not records (an empty line, or one
of only spaces, tabs and carriage returns in JSON Lines; in CSV only an empty
line, since ``" "`` may be a value). Damage is confined: a stray CSV quote
costs its line, a corrupt Avro block its block.

Identity: ``Event.eid = joins.content_id(raw)`` where ``raw`` is the record's
bytes without the line terminator for CSV and JSON Lines, and the canonical JSON
of the decoded record for Avro. Positions (for :func:`read_batches` resume): CSV
and JSON Lines use byte offsets of line starts (the CSV header is re-read on
resume); Avro uses record indexes.

This module is the entry point; the parts live in

- :mod:`dataflows.inputs.fields`: :class:`SourceFormat`, :class:`Invalid`, and
  a record's key and time (units, ranges, the exact reasons);
- :mod:`dataflows.inputs.lines`: line framing for CSV and JSON Lines;
- :mod:`dataflows.inputs.jsonl_format`, :mod:`dataflows.inputs.csv_format`,
  :mod:`dataflows.inputs.avro_format`: one reader per format, with its identity and
  position rules; :mod:`dataflows.inputs.avro_container` (the container file's
  framing and resynchronisation) and :mod:`dataflows.inputs.avro_values` (Avro
  types as JSON-safe values) serve the Avro reader.
"""

from __future__ import annotations

from collections.abc import Iterator

from dataflows.errors import ConfigError, InputError
from dataflows.inputs.avro_format import read_avro
from dataflows.inputs.csv_format import read_csv
from dataflows.inputs.fields import Invalid, time_to_ms
from dataflows.inputs.jsonl_format import read_jsonl
from dataflows.inputs.source_format import FORMATS, TIME_UNITS, Format, SourceFormat, TimeUnit
from joins import Event, Side

__all__ = [
    "FORMATS",
    "TIME_UNITS",
    "Format",
    "Invalid",
    "SourceFormat",
    "TimeUnit",
    "read_batches",
    "time_to_ms",
]


def read_batches(
    path: str,
    side: Side,
    fmt: SourceFormat,
    partition: str,
    start: int = 0,
    batch_size: int = 1000,
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """Read ``path`` from position ``start`` in batches of at most ``batch_size``.

    Yields ``(batch, position)``; ``position`` is where to resume after the batch
    (a byte offset for CSV and JSON Lines, a record index for Avro). An empty file
    yields nothing. Raises :class:`InputError` only when the file cannot be opened
    (or a CSV header is not UTF-8 or lacks a configured field).
    """
    if batch_size <= 0:
        msg = f"batch_size must be > 0, got {batch_size}"
        raise ConfigError(msg)
    if start < 0:
        msg = f"start position must be >= 0, got {start}"
        raise ConfigError(msg)
    try:
        handle = open(path, "rb")  # closed in the finally below
    except OSError as exc:
        msg = f"cannot read input {path!r}: {exc.strerror or exc}"
        raise InputError(msg) from exc
    try:
        if fmt.format == "jsonl":
            yield from read_jsonl(handle, side, fmt, partition, start, batch_size)
        elif fmt.format == "csv":
            yield from read_csv(handle, path, side, fmt, partition, start, batch_size)
        else:
            yield from read_avro(handle, side, fmt, partition, start, batch_size)
    finally:
        handle.close()
