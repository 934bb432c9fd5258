"""Input records: raw bytes of CSV, JSON Lines and Avro files to
:class:`joins.Event` or a dead letter :class:`Invalid`. No engine here.

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

The room:

- :mod:`~dataflows.inputs.fields`: :class:`SourceFormat`, :class:`Invalid`, and
  a record's key and time (units, ranges, the exact reasons);
- :mod:`~dataflows.inputs.lines`: line framing for CSV and JSON Lines;
- :mod:`~dataflows.inputs.jsonl_format`, :mod:`~dataflows.inputs.csv_format`,
  :mod:`~dataflows.inputs.avro_format`: one reader per format, with its
  identity and position rules; :mod:`~dataflows.inputs.avro_container` (the
  container file's framing and resynchronisation) and
  :mod:`~dataflows.inputs.avro_values` (Avro types as JSON-safe values) serve
  the Avro reader;
- :mod:`~dataflows.inputs.batches`: :func:`read_batches`, a file in batches;
- :mod:`~dataflows.inputs.sample`: checks before a run (every CSV header; event
  times that suggest a wrong time unit).

Bytewax's source partitions that call these are in :mod:`dataflows.sources`.
"""

from __future__ import annotations

from dataflows.inputs.avro_format import count_records
from dataflows.inputs.batches import read_batches
from dataflows.inputs.fields import RAW_LIMIT_BYTES, Invalid, time_to_ms
from dataflows.inputs.sample import check_csv_headers, implausible_times
from dataflows.inputs.source_format import FORMATS, TIME_UNITS, Format, SourceFormat, TimeUnit

__all__ = [
    "FORMATS",
    "RAW_LIMIT_BYTES",
    "TIME_UNITS",
    "Format",
    "Invalid",
    "SourceFormat",
    "TimeUnit",
    "check_csv_headers",
    "count_records",
    "implausible_times",
    "read_batches",
    "time_to_ms",
]
