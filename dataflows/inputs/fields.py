"""What a record must hold: a record's key and time, and the dead letter
:class:`Invalid` for one that fails (how to read an input, :class:`SourceFormat`,
is in :mod:`dataflows.inputs.source_format`).

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
- an Avro ``timestamp-*`` / ``local-timestamp-*`` time field states its own unit
  (:mod:`dataflows.inputs.avro_values`), whatever the configured one: the
  reader passes ``ms``, ``us`` or ``ns`` (nanoseconds, floored) here.

The result must lie in ``joins.spec.MIN_TS_MS..MAX_TS_MS``.

Keys (the lead's decision for issue 10):

- one key field: the field's value as text, unchanged; an integer is its
  decimal text, so ``1`` and ``"1"`` are the same key (CSV has no types, and a
  CSV side must join a JSON side). A float, boolean, null, object or array, an
  empty string, a missing field: a dead letter with the reason;
- several key fields (``--key-field a,b``): the compact JSON array of the parts
  as strings, ``json.dumps(parts, ensure_ascii=False, separators=(",", ":"))``,
  e.g. ``["x|y","z"]``; unambiguous, whatever the parts hold (DuckDB's
  ``to_json(list_value(a, b))::varchar`` gives the same text);
- a key may not contain NUL or unpaired surrogates (they would break the byte
  identity; JSON escapes a NUL inside a composite key's parts).

A dead letter keeps the record's **exact bytes** (:class:`Invalid`), up to
:data:`RAW_LIMIT_BYTES`; ``raw_bytes`` says how long the record was, so a cut
is visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from dataflows.inputs.source_format import (
    SourceFormat,
)
from joins import Side
from joins.spec import MAX_TS_MS, MIN_TS_MS

#: How many bytes of a bad record ``Invalid.raw`` keeps (1 MiB); a longer
#: record's dead letter says it was cut (``raw_bytes`` > ``len(raw)``), and the
#: metric ``streamjoin_invalid_raw_truncated_total`` counts it.
RAW_LIMIT_BYTES = 1 << 20

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Invalid:
    """A record that could not become an event: a dead letter.

    ``raw`` is the record's exact bytes (a CSV row or JSON line without its
    terminator; an Avro record's binary encoding under the writer schema; a
    damaged Avro block as it lies in the file), at most :data:`RAW_LIMIT_BYTES`
    of them: a longer one keeps its first bytes (backed off to a UTF-8 character
    boundary when they are text) and ``raw_bytes`` holds the full length.
    ``avro_schema`` and ``avro_codec`` (Avro inputs only) are the writer schema
    as the file's header holds it and the file's codec, which ``raw`` needs to
    be decoded. ``binary`` says that ``raw`` is binary data (Avro), to be
    written as base64 even when its bytes happen to be valid UTF-8.
    """

    side: Side
    reason: str
    raw: bytes
    partition: str
    offset: int
    #: The record's full length in bytes (``-1``: ``len(raw)`` as given).
    raw_bytes: int = -1
    avro_schema: str | None = None
    avro_codec: str | None = None
    binary: bool = False

    def __reduce__(self) -> tuple[type[Invalid], tuple[object, ...]]:
        # Dead letters cross process boundaries (Bytewax pickles exchanged
        # items); compiled by mypyc, this class has no default pickling.
        fields = (self.side, self.reason, self.raw, self.partition, self.offset,
                  self.raw_bytes, self.avro_schema, self.avro_codec, self.binary)  # fmt: skip
        return (Invalid, fields)

    def __post_init__(self) -> None:
        if self.raw_bytes < 0:
            object.__setattr__(self, "raw_bytes", len(self.raw))
        if len(self.raw) > RAW_LIMIT_BYTES:
            object.__setattr__(self, "raw", _cut(self.raw, RAW_LIMIT_BYTES))

    @property
    def raw_truncated(self) -> bool:
        """Whether ``raw`` holds less than the whole record."""
        return self.raw_bytes > len(self.raw)


def _cut(raw: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of ``raw``, less a UTF-8 character the cut split."""
    kept = raw[:limit]
    try:
        kept.decode()
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return kept[: exc.start]
    return kept


class BadRecord(Exception):
    """A record-level problem; its message becomes ``Invalid.reason``."""


def _fail(reason: str) -> NoReturn:
    raise BadRecord(reason)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def time_to_ms(value: Any, field: str, unit: str) -> int:
    """Convert one time value in ``unit`` to epoch ms (raises ``BadRecord`` with the reason).

    ``unit`` is one of :data:`TIME_UNITS`, or ``ns`` (an Avro ``timestamp-nanos``
    time field: nanoseconds, floored to the millisecond).
    """
    if value is None:
        _fail(f"{field} is null")
    if unit == "iso":
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
        ms = (n * 1000 if unit == "s" else n // 1000 if unit == "us"
              else n // 1_000_000 if unit == "ns" else n)
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


_key_array = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def key_of(record: dict[str, Any], fmt: SourceFormat) -> str:
    """The join key of ``record`` under ``fmt`` (raises ``BadRecord`` with the reason):
    one field's text, or the JSON array of several fields' texts."""
    fields = fmt.key_fields
    if len(fields) == 1:
        key = _key_part(record.get(fields[0], _MISSING), fields[0])
    else:
        key = _key_array([_key_part(record.get(f, _MISSING), f) for f in fields])
    _check_key(key)
    return key


def ts_of(record: dict[str, Any], fmt: SourceFormat, unit: str | None = None) -> int:
    """The event time of ``record`` in epoch ms (raises ``BadRecord`` with the
    reason); ``unit``, when given, overrides ``fmt.time_unit`` (an Avro
    ``timestamp-*`` time field states its own)."""
    value = record.get(fmt.time_field, _MISSING)
    if value is _MISSING:
        _fail(f"missing field {fmt.time_field!r}")
    return time_to_ms(value, fmt.time_field, unit or fmt.time_unit)


#: JSON's names of Python's JSON values, for reasons.
_JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number",
               str: "string", list: "array", dict: "object"}


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type (``null``, ``array``, ...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)
