"""How to read an input and what a record must hold: :class:`SourceFormat`, a
record's key and time, and the dead letter :class:`Invalid` for one that fails.

The readers (:mod:`dataflows.inputs.jsonl_format`, :mod:`dataflows.inputs.csv_format`,
:mod:`dataflows.inputs.avro_format`) turn each record into a dict and take its key and
time here; a problem raises :class:`BadRecord`, whose message becomes
``Invalid.reason``.

Time is converted once, here, into integer epoch milliseconds:

- ``ms``: an integer (JSON ``int``, an integral float such as ``1.7e12``, or a
  string of an integer; CSV values are strings);
- ``s`` / ``us``: the same forms, whole seconds / microseconds (``us`` is
  floored to the millisecond); fractional seconds are refused;
- ``iso``: ISO-8601 text as :meth:`datetime.fromisoformat` reads it; naive means
  UTC; sub-millisecond digits are floored;
- a ``datetime`` value (an Avro ``timestamp-*`` logical type) is accepted in any
  unit. The result must lie in ``joins.spec.MIN_TS_MS..MAX_TS_MS``.

Keys: each key field must be a non-empty string or an integer (``str()`` of it);
several fields are joined with ``key_separator``. A key may not contain NUL or
unpaired surrogates (they would break the byte identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, get_args

from dataflows.errors import ConfigError
from joins import Side
from joins.spec import MAX_TS_MS, MIN_TS_MS

Format = Literal["csv", "jsonl", "avro"]
TimeUnit = Literal["ms", "s", "us", "iso"]
FORMATS: tuple[Format, ...] = get_args(Format)
TIME_UNITS: tuple[TimeUnit, ...] = get_args(TimeUnit)

#: How much of a bad record ``Invalid.raw`` keeps: bytes of a CSV or JSON Lines
#: record, characters of an Avro datum's JSON.
RAW_LIMIT = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MISSING = object()


@dataclass(frozen=True)
class SourceFormat:
    """How to read one input: its format, key fields, time field and unit."""

    format: Format
    key_fields: tuple[str, ...] = ("key",)
    time_field: str = "ts"
    time_unit: TimeUnit = "ms"
    key_separator: str = "|"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            msg = f"unknown input format {self.format!r}: expected one of {', '.join(FORMATS)}"
            raise ConfigError(msg)
        if isinstance(self.key_fields, str) or not isinstance(self.key_fields, tuple | list):
            msg = f"key_fields must be a tuple of field names, got {self.key_fields!r}"
            raise ConfigError(msg)
        object.__setattr__(self, "key_fields", tuple(self.key_fields))
        if not self.key_fields or not all(isinstance(f, str) and f for f in self.key_fields):
            msg = f"key_fields must be one or more non-empty names, got {self.key_fields!r}"
            raise ConfigError(msg)
        if not isinstance(self.time_field, str) or not self.time_field:
            msg = f"time_field must be a non-empty name, got {self.time_field!r}"
            raise ConfigError(msg)
        if self.time_unit not in TIME_UNITS:
            msg = f"unknown time unit {self.time_unit!r}: expected one of {', '.join(TIME_UNITS)}"
            raise ConfigError(msg)
        if not isinstance(self.key_separator, str):
            msg = f"key_separator must be a string, got {self.key_separator!r}"
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A record that could not become an event: a dead letter.

    ``raw`` is the input as text (bytes decoded with ``errors='replace'``; for
    Avro the canonical JSON of the datum or the error), cut at 10,000 chars.
    """

    side: Side
    reason: str
    raw: str
    partition: str
    offset: int


class BadRecord(Exception):
    """A record-level problem; its message becomes ``Invalid.reason``."""


def _fail(reason: str) -> NoReturn:
    raise BadRecord(reason)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def time_to_ms(value: Any, field: str, unit: str) -> int:
    """Convert one time value in ``unit`` to epoch ms (raises ``BadRecord`` with the reason)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        ms = (aware - _EPOCH) // _MS
    elif value is None:
        _fail(f"{field} is null")
    elif unit == "iso":
        if not isinstance(value, str):
            _fail(f"{field} is not an ISO-8601 string: {_short(value)}")
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            _fail(f"{field} is not an ISO-8601 timestamp: {_short(value)}")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = (parsed - _EPOCH) // _MS
    else:
        if type(value) is int:
            n = value
        elif type(value) is float and value.is_integer():
            n = int(value)
        elif type(value) is str:
            if not value.strip():
                _fail(f"{field} is empty")
            try:
                n = int(value)
            except ValueError:
                _fail(f"{field} is not an integer: {_short(value)}")
        else:
            _fail(f"{field} is not an integer: {_short(value)}")
        ms = n * 1000 if unit == "s" else n // 1000 if unit == "us" else n
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        _fail(f"{field} out of range: {_short(value)} is {ms} ms, "
              f"outside {MIN_TS_MS}..{MAX_TS_MS}")
    return ms


def _key_part(value: Any, field: str) -> str:
    if value is _MISSING:
        _fail(f"missing field {field!r}")
    if type(value) is str:
        if not value:
            _fail(f"key field {field!r} is empty")
        return value
    if type(value) is int:
        return str(value)
    if value is None:
        _fail(f"key field {field!r} is null")
    _fail(f"key field {field!r} is not a string or an integer: {_short(value)}")


def _check_key(key: str) -> None:
    if "\x00" in key:
        _fail(f"key contains a NUL character: {_short(key)}")
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:
            _fail(f"key is not valid Unicode text: {_short(key)}")


def key_of(record: dict[str, Any], fmt: SourceFormat) -> str:
    """The join key of ``record`` under ``fmt`` (raises ``BadRecord`` with the reason)."""
    parts = [_key_part(record.get(f, _MISSING), f) for f in fmt.key_fields]
    key = parts[0] if len(parts) == 1 else fmt.key_separator.join(parts)
    _check_key(key)
    return key


def ts_of(record: dict[str, Any], fmt: SourceFormat) -> int:
    """The event time of ``record`` in epoch ms (raises ``BadRecord`` with the reason)."""
    value = record.get(fmt.time_field, _MISSING)
    if value is _MISSING:
        _fail(f"missing field {fmt.time_field!r}")
    return time_to_ms(value, fmt.time_field, fmt.time_unit)


def raw_text(raw: bytes) -> str:
    """``raw`` as ``Invalid.raw``: its first ``RAW_LIMIT`` bytes, decoded as UTF-8
    with replacement characters."""
    return raw[:RAW_LIMIT].decode("utf-8", errors="replace")
