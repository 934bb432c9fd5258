"""Reading an output directory back: every ``*.jsonl`` and ``*.avro`` file in it.

For ``validate`` and tests. Rows come back as dicts of the shape the JSON Lines
output has: in Avro files the input records (``left``, ``right``, ``record``)
are JSON text (see :mod:`dataflows.outputs.records`) and are parsed back into objects.
Files are read in name order (sub-directories included, hidden files skipped).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro

from dataflows.errors import ValidationError

_RECORD_FIELDS = ("left", "right", "record")


def output_files(dir_path: str | Path) -> list[Path]:
    """The ``*.jsonl`` and ``*.avro`` files under ``dir_path``, in name order."""
    root = Path(dir_path)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in (".jsonl", ".avro")
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def read_rows(dir_path: str | Path) -> Iterator[dict[str, Any]]:
    """Every row of every output file under ``dir_path``.

    Raises :class:`ValidationError` (file and line or record) on a file that is
    not valid JSON Lines or Avro.
    """
    for path in output_files(dir_path):
        yield from read_file_rows(path)


def read_file_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Every row of one output file (``.jsonl`` or ``.avro``)."""
    if path.suffix == ".jsonl":
        yield from _jsonl_rows(path)
    else:
        yield from _avro_rows(path)


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    loads = json.loads
    with path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as fo:
        for number, line in enumerate(fo, 1):
            if not line.strip():
                continue
            try:
                row = loads(line)
            except ValueError as exc:
                msg = f"{path}:{number}: not a JSON line ({exc})"
                raise ValidationError(msg) from exc
            if type(row) is not dict:
                msg = f"{path}:{number}: not a JSON object"
                raise ValidationError(msg)
            yield row


def _avro_rows(path: Path) -> Iterator[dict[str, Any]]:
    loads = json.loads
    index = 0
    with path.open("rb") as fo:
        try:
            for row in fastavro.reader(fo):
                if not isinstance(row, dict):
                    msg = f"{path}: record {index}: not an Avro record"
                    raise ValidationError(msg)
                for name in _RECORD_FIELDS:
                    value = row.get(name)
                    if type(value) is str:
                        row[name] = loads(value)
                yield row
                index += 1
        except (ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
            msg = f"{path}: record {index}: cannot read Avro ({type(exc).__name__}: {exc})"
            raise ValidationError(msg) from exc
