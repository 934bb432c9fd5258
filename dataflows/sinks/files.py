"""Output files: joined rows, late events and dead letters, one file per shard.

Each output is a Bytewax *partitioned* sink whose partitions are the shard names
(``OUT/joined/s0003-1.jsonl``, ...). Its snapshot is the file's byte position
after the last complete write; a partition built with a position truncates the
file to it (issue #4's effectively-once files: a resumed run rewrites exactly
what the crashed run wrote after its last snapshot). A partition built without
one starts the file afresh.

A process lists as its partitions the shards that Bytewax runs on its own
workers, so the rows a shard produces are written by the same process, without
crossing the network. Items are *batches*: ``(shard, list[item])``, one per
shard activation; ``to_record`` turns an item into the output dict
(:mod:`dataflows.outputs.records`).

Formats: JSON Lines, or Avro object container files (one block per flush),
with the row builders and schemas of :mod:`dataflows.outputs.records`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import fastavro.write
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from dataflows.console import reports_failures
from dataflows.outputs import BUILDERS, PARSED_SCHEMAS, JoinedLineEncoder, OutputKind, write_jsonl

ToRecord = Callable[[Any], dict[str, Any]]

_EXT = {"jsonl": "jsonl", "avro": "avro"}


@contextmanager
def naming(path: str) -> Iterator[None]:
    """An ``OSError`` without a file name (a ``write`` on a full disk) gets
    ``path``, so that the failure can say which file and which flag."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise


class _RowFile(StatefulSinkPartition[list[Any], int]):
    """One output file; the snapshot is its byte length after the last flush."""

    def __init__(
        self,
        path: str,
        fmt: str,
        to_record: ToRecord,
        schema: Any,
        resume_pos: int | None,
        lines: JoinedLineEncoder | None = None,
    ) -> None:
        self._path = path
        self._fmt = fmt
        self._to_record = to_record
        self._schema = schema
        self._fo: IO[bytes] | None = None  # opened on the first write
        self._lines = lines
        self._avro: Any = None
        if resume_pos:
            # Effectively-once: drop whatever was written after the snapshot.
            self._open(resume_pos)
        elif os.path.exists(path):
            os.remove(path)

    def _open(self, resume_pos: int = 0) -> IO[bytes]:
        fo: IO[bytes]
        if resume_pos:
            fo = open(self._path, "r+b")
            fo.truncate(resume_pos)
            fo.seek(resume_pos)
        else:
            fo = open(self._path, "wb")
        self._fo = fo
        if self._fmt == "avro":
            if resume_pos:
                fo.close()
                fo = open(self._path, "a+b")
                self._fo = fo
            self._avro = fastavro.write.Writer(fo, self._schema, codec="null")
        return fo

    @reports_failures
    def write_batch(self, values: list[list[Any]]) -> None:
        with naming(self._path):
            self._write_batch(values)

    def _write_batch(self, values: list[list[Any]]) -> None:
        fo = self._fo if self._fo is not None else self._open()
        to_record = self._to_record
        if self._avro is not None:
            write = self._avro.write
            for batch in values:
                for item in batch:
                    write(to_record(item))
            return
        if self._lines is not None:
            lines = self._lines.lines([row for batch in values for row in batch])
            lines.append("")
            fo.write("\n".join(lines).encode())
            return
        write_jsonl(fo, [to_record(item) for batch in values for item in batch])

    @reports_failures
    def snapshot(self) -> int:
        if self._fo is None:
            return 0
        with naming(self._path):
            if self._avro is not None:
                self._avro.flush()
            self._fo.flush()
            return self._fo.tell()

    @reports_failures
    def close(self) -> None:
        if self._fo is None:
            return
        with naming(self._path):
            if self._avro is not None:
                self._avro.flush()
            self._fo.close()
        self._fo = None


class RowFileSink(FixedPartitionedSink[list[Any], int]):
    """Files ``directory/<shard>.<ext>``, one partition per shard of this process."""

    def __init__(
        self,
        directory: str,
        kind: OutputKind,
        fmt: str,
        all_shards: Sequence[str],
        local_shards: Sequence[str],
    ) -> None:
        if fmt not in _EXT:
            msg = f"output format must be one of {', '.join(_EXT)}, got {fmt!r}"
            raise ValueError(msg)
        self._dir = directory
        self._fmt = fmt
        self._to_record = BUILDERS[(kind, fmt)]
        self._schema = PARSED_SCHEMAS[kind] if fmt == "avro" else None
        # One cache of encoded events for all of this process's joined files.
        self._lines = JoinedLineEncoder() if kind == "joined" and fmt == "jsonl" else None
        # Bytewax wraps part_fn's value into the *sorted* global partition list.
        self._index = {name: i for i, name in enumerate(sorted(all_shards))}
        self._local = list(local_shards)

    def list_parts(self) -> list[str]:
        return self._local

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    @reports_failures
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _RowFile:
        os.makedirs(self._dir, exist_ok=True)
        path = os.path.join(self._dir, f"{for_part}.{_EXT[self._fmt]}")
        return _RowFile(
            path, self._fmt, self._to_record, self._schema, resume_state, self._lines
        )
