"""CSV framing for validate: where each record of a CSV file starts and ends,
and the header's column names. Fields are split in SQL
(:mod:`dataflows.validate.records`); this module only finds record boundaries,
which a record's bytes, offset and identity need.

The rules (the decoder's, written down independently):

- The **header** is the first line; a UTF-8 byte-order mark and the trailing
  ``\\r``/``\\n`` are dropped and its names are read with lenient quoting
  (text after a closing quote is kept). Rows start after it.
- Quoting is RFC 4180, **strict**, as Python's ``csv`` module reads it with
  ``strict=True``: a quoted value may hold commas, doubled quotes and line
  breaks; a quote inside an unquoted value is a plain character; after a closing
  quote only a comma, a quote or the line end may follow; a ``\\r`` that is not
  at the end of a line, outside quotes, is an error; a value of more than
  131,072 characters is an error.
- A line that holds only carriage returns (or nothing) is blank: no record.
- A record spans at most :data:`MAX_RECORD_LINES` lines. A record that would
  span several lines but does not hold together (an error on a later line, a
  quote still open after ``MAX_RECORD_LINES`` lines or at the end of the file,
  or the wrong number of columns) makes **its first line alone** a dead letter,
  and reading goes on at the next line. A record of one line is staged as it is,
  whatever it holds: SQL judges it.
- A record's bytes are its lines as the file holds them (inner line breaks
  kept), without the final ``\\n`` or ``\\r\\n``; its offset is its first line's.

:class:`CsvMachine` is the quoting state machine (CPython's ``_csv.c``, excel
dialect) that finds where a record ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Final

from dataflows.errors import ValidationError
from dataflows.validate.staging import BROKEN, StageWriter, line_blocks

#: The most lines one record may span (the decoder's bound for a stray quote).
MAX_RECORD_LINES: Final = 100
#: The longest value Python's ``csv`` module reads (``csv.field_size_limit()``).
FIELD_LIMIT: Final = 131_072

_START_RECORD, _START_FIELD, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED, _EAT_CRNL = range(6)


class CsvError(Exception):
    """The state machine met an error (the message says which)."""


class CsvMachine:
    """The quoting state of one record being read, a character at a time."""

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.state = _START_RECORD
        self.fields: list[str] = []
        self._field: list[str] = []

    def _add(self, c: str) -> None:
        if len(self._field) >= FIELD_LIMIT:
            msg = f"field larger than field limit ({FIELD_LIMIT})"
            raise CsvError(msg)
        self._field.append(c)

    def _save(self) -> None:
        self.fields.append("".join(self._field))
        self._field = []

    def feed(self, text: str) -> None:
        """Process ``text`` (a line and its ``\\n``); raises :class:`CsvError`."""
        for c in text:
            state = self.state
            if state == _START_RECORD:
                if c in "\r\n":
                    self.state = _EAT_CRNL
                    continue
                state = self.state = _START_FIELD
            if state == _START_FIELD:
                if c in "\r\n":
                    self._save()
                    self.state = _EAT_CRNL
                elif c == '"':
                    self.state = _IN_QUOTED
                elif c == ",":
                    self._save()
                else:
                    self._add(c)
                    self.state = _IN_FIELD
            elif state == _IN_FIELD:
                if c in "\r\n":
                    self._save()
                    self.state = _EAT_CRNL
                elif c == ",":
                    self._save()
                    self.state = _START_FIELD
                else:
                    self._add(c)
            elif state == _IN_QUOTED:
                if c == '"':
                    self.state = _QUOTE_IN_QUOTED
                else:
                    self._add(c)
            elif state == _QUOTE_IN_QUOTED:
                if c == '"':
                    self._add(c)
                    self.state = _IN_QUOTED
                elif c == ",":
                    self._save()
                    self.state = _START_FIELD
                elif c in "\r\n":
                    self._save()
                    self.state = _EAT_CRNL
                elif not self.strict:
                    self._add(c)
                    self.state = _IN_FIELD
                else:
                    msg = "',' expected after '\"'"
                    raise CsvError(msg)
            elif c not in "\r\n":  # _EAT_CRNL
                msg = "new-line character seen in unquoted field"
                raise CsvError(msg)

    def end_of_line(self) -> bool:
        """The end of a fed line: True when the record is complete."""
        if self.state == _IN_QUOTED:
            return False
        if self.state in (_START_FIELD, _IN_FIELD, _QUOTE_IN_QUOTED):
            self._save()
        self.state = _START_RECORD
        return True

    def end_of_data(self) -> None:
        """No more lines: finish a lenient record's open value."""
        if self.state != _START_RECORD:
            self._save()
            self.state = _START_RECORD


def read_header(line: bytes, path: str) -> list[str]:
    """The column names of a CSV file's first line (see the module docstring)."""
    try:
        text = line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        msg = f"csv header of {path!r} is not UTF-8: {exc.reason}"
        raise ValidationError(msg) from exc
    machine = CsvMachine(strict=False)
    if text:
        machine.feed(text)
    machine.end_of_data()
    return machine.fields


@dataclass(frozen=True)
class CsvFile:
    """What framing learned of a CSV file: its column names (empty for an empty
    file)."""

    header: tuple[str, ...]


class _Lines:
    """The lines of a CSV file after its header, with lookahead: each line's
    bytes (``\\r`` kept, ``\\n`` cut) and start offset."""

    def __init__(self, handle: IO[bytes], start: int) -> None:
        self._blocks = line_blocks(handle, start)
        self.lines: list[bytes] = []
        self.starts: list[int] = []

    def have(self, i: int) -> bool:
        """Whether line ``i`` exists (reading more blocks as needed)."""
        while i >= len(self.lines):
            block = next(self._blocks, None)
            if block is None:
                return False
            data, pos = block
            for line in data.split(b"\n"):
                self.lines.append(line)
                self.starts.append(pos)
                pos += len(line) + 1
        return True

    def drop(self, n: int) -> None:
        del self.lines[:n]
        del self.starts[:n]


def _raw(lines: list[bytes]) -> bytes:
    raw = lines[0] if len(lines) == 1 else b"\n".join(lines)
    return raw[:-1] if raw[-1:] == b"\r" else raw


def _multi_line(buf: _Lines, i: int, first: CsvMachine, ncols: int) -> tuple[int, str]:
    """Follow a record whose line ``i`` left a quote open: the number of lines
    it spans, or ``(1, reason)`` when its first line alone is a dead letter."""
    machine = first
    n = 1
    while True:
        if not buf.have(i + n):
            return 1, "csv: a quote opened on this line is not closed before the end of the file"
        if n >= MAX_RECORD_LINES:
            return 1, (f"csv: a quote opened on this line is not closed within "
                       f"{MAX_RECORD_LINES} lines")
        line = buf.lines[i + n]
        n += 1
        try:
            machine.feed(line.decode(errors="replace") + "\n")
        except CsvError as exc:
            return 1, f"csv: {exc} (in the record from this line, spanning {n} lines)"
        if machine.end_of_line():
            if len(machine.fields) != ncols:
                return 1, (f"csv: the record from this line spans {n} lines and has "
                           f"{len(machine.fields)} columns, not {ncols}")
            return n, ""


def stage_csv(writer: StageWriter, src: int, handle: IO[bytes], path: str,
              needed: tuple[str, ...]) -> CsvFile:
    """Stage the records of a CSV file (see the module docstring); its header
    must name every column in ``needed`` (the run would have refused it)."""
    head = handle.readline()
    if not head:
        return CsvFile(())
    header = read_header(head, path)
    missing = [f for f in needed if f not in header]
    if missing:
        msg = (f"csv header of {path!r} has no column {missing[0]!r} "
               f"(columns: {', '.join(header) or 'none'})")
        raise ValidationError(msg)
    buf = _Lines(handle, len(head))
    i = 0
    while buf.have(i):
        line = buf.lines[i]
        n, reason = 1, ""
        if b'"' in line:
            machine = CsvMachine()
            try:
                machine.feed(line.decode(errors="replace") + "\n")
                complete = machine.end_of_line()
            except CsvError:
                complete = True  # an error on the record's only line: SQL's to judge
            if not complete:
                n, reason = _multi_line(buf, i, machine, len(header))
        if reason:
            writer.record(src, buf.starts[i], _raw(buf.lines[i : i + 1]), BROKEN, x=reason)
        elif line.strip(b"\r"):
            writer.record(src, buf.starts[i], _raw(buf.lines[i : i + n]))
        i += n
        if i >= 4096:
            buf.drop(i)
            i = 0
    return CsvFile(tuple(header))
