"""Output records (``shared/design/semantics.md``, "Output records"): how joined
rows, late events and dead letters look, how they are encoded (JSON Lines,
Avro) and how an output directory is read back. No engine here.

- :mod:`~dataflows.outputs.records`: the row dicts of the three outputs, their
  Avro schemas (``dataflows/schemas/``) and encodings;
- :mod:`~dataflows.outputs.dead_letters`: the dead-letter row, with the
  record's exact bytes (text or base64) and how to get them back;
- :mod:`~dataflows.outputs.joined_lines`: :class:`JoinedLineEncoder`, JSON
  Lines of joined rows with each event's JSON encoded once;
- :mod:`~dataflows.outputs.readback`: every row of an output directory
  (:func:`read_rows`), for ``validate`` and tests.

Bytewax's sinks that write them are in :mod:`dataflows.sinks`.
"""

from __future__ import annotations

from dataflows.outputs.dead_letters import encode_raw, invalid_record, raw_bytes_of
from dataflows.outputs.joined_lines import JoinedLineEncoder
from dataflows.outputs.readback import output_files, read_file_rows, read_rows
from dataflows.outputs.records import (
    BUILDERS,
    OUTPUT_KINDS,
    PARSED_SCHEMAS,
    SCHEMAS,
    OutputKind,
    joined_record,
    json_line,
    late_record,
    write_avro,
    write_jsonl,
)

__all__ = [
    "BUILDERS",
    "OUTPUT_KINDS",
    "PARSED_SCHEMAS",
    "SCHEMAS",
    "JoinedLineEncoder",
    "OutputKind",
    "encode_raw",
    "invalid_record",
    "joined_record",
    "json_line",
    "late_record",
    "output_files",
    "raw_bytes_of",
    "read_file_rows",
    "read_rows",
    "write_avro",
    "write_jsonl",
]
