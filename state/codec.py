"""The value codec of retained events: a flags byte, a schema fingerprint, Avro.

Value layout::

    flags (1 byte; bit 0: matched) | writer schema fingerprint (8 bytes,
    CRC-64-AVRO of the parsing canonical form) | Avro schemaless body

The body is a ``StateValue`` record (``state/schemas/state_value_v1.avsc``):
``partition`` (string), ``offset`` (long) and ``record``, an Avro map from field
name to a union ``null | boolean | long | double | string | Json``. Flat values
(None, bool, int within 64 bits, float, str) keep their Avro type, which
round-trips them exactly (bool stays bool, 1.0 stays a float); any other value
(a list, a nested dict, an int beyond 64 bits) is stored as its JSON text in
the ``Json`` record branch and parsed back on decode, so every JSON-able dict
round-trips exactly.

Schema evolution: every writer schema's JSON is persisted by the store under its
fingerprint (:meth:`StateCodec.register_writer`), and values are decoded with
the writer schema they were written with, resolved to this codec's (reader)
schema, so a newer reader with a defaulted field reads old state. Flipping the
matched flag rewrites byte 0 only (:func:`with_matched`): no re-encode.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro._schema_common import SchemaParseException
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form

from state.errors import StateDecodeError, StateError

_HEADER_BYTES = 9
_MATCHED = 0x01
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_FLAT = (str, float, bool, type(None))
_DECODE_ERRORS = (EOFError, IndexError, ValueError, KeyError, TypeError, SchemaResolutionError)


def default_schema() -> dict[str, Any]:
    """The packaged ``StateValue`` schema (v1)."""
    text = resources.files("state").joinpath("schemas/state_value_v1.avsc").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_fingerprint(canonical: str) -> bytes:
    """The 8-byte CRC-64-AVRO (Rabin) fingerprint of a parsing canonical form."""
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True, slots=True)
class StoredValue:
    """A decoded value: everything about an event that is not in its key."""

    matched: bool
    partition: str
    offset: int
    record: dict[str, Any]


def is_matched(value: bytes) -> bool:
    """Bit 0 of the flags byte."""
    return bool(value[0] & _MATCHED)


def with_matched(value: bytes) -> bytes:
    """``value`` with the matched bit set; the Avro body is not touched."""
    return bytes((value[0] | _MATCHED,)) + value[1:]


def _to_avro(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for name, value in record.items():
        kind = type(value)
        if kind in _FLAT or (kind is int and _LONG_MIN <= value <= _LONG_MAX):
            continue
        if out is None:
            out = dict(record)
        out[name] = {"json": json.dumps(value, allow_nan=True)}
    return record if out is None else out


def _from_avro(record: dict[str, Any]) -> dict[str, Any]:
    for name, value in record.items():
        if type(value) is dict:
            record[name] = json.loads(value["json"])
    return record


class StateCodec:
    """Encodes and decodes values with one reader/writer schema, parsed once."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        try:
            self._schema: dict[str, Any] = parse_schema(  # type: ignore[assignment]
                schema if schema is not None else default_schema()
            )
        except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
            msg = f"invalid state value schema: {exc}"
            raise StateError(msg) from exc
        self.schema_json: str = to_parsing_canonical_form(self._schema)
        self.fingerprint: bytes = schema_fingerprint(self.schema_json)
        fields: list[dict[str, Any]] = self._schema["fields"]
        self._defaults = {f["name"]: f["default"] for f in fields if "default" in f}
        self._writers: dict[bytes, Any] = {self.fingerprint: None}
        self._header = (bytes((0,)) + self.fingerprint, bytes((_MATCHED,)) + self.fingerprint)

    def register_writer(self, fp: bytes, schema_json: str) -> None:
        """Make values written with the schema ``schema_json`` (fingerprint ``fp``)
        decodable. The store calls it for every writer schema persisted in its DB."""
        if fp in self._writers:
            return
        try:
            parsed = parse_schema(json.loads(schema_json))
        except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
            msg = f"persisted writer schema {fp.hex()} does not parse: {exc}"
            raise StateDecodeError(msg) from exc
        self._writers[fp] = parsed

    def encode(self, partition: str, offset: int, record: dict[str, Any], matched: bool) -> bytes:
        """The value bytes of a retained event."""
        datum = {**self._defaults, "partition": partition, "offset": offset}
        datum["record"] = _to_avro(record)
        buf = io.BytesIO()
        buf.write(self._header[1 if matched else 0])
        try:
            schemaless_writer(buf, self._schema, datum)
        except (ValueError, TypeError, OverflowError) as exc:
            msg = f"cannot encode record as Avro StateValue: {exc}"
            raise StateError(msg) from exc
        return buf.getvalue()

    def decode(self, value: bytes) -> StoredValue:
        """Inverse of :meth:`encode`, resolving an older writer schema if needed."""
        if len(value) < _HEADER_BYTES:
            msg = f"state value of {len(value)} bytes is shorter than its 9-byte header"
            raise StateDecodeError(msg)
        fp = value[1:_HEADER_BYTES]
        try:
            writer = self._writers[fp]
        except KeyError:
            msg = f"state value written with unknown schema fingerprint {fp.hex()}"
            raise StateDecodeError(msg) from None
        buf = io.BytesIO(value)
        buf.seek(_HEADER_BYTES)
        try:
            datum: dict[str, Any]
            if writer is None:
                datum = schemaless_reader(buf, self._schema, None)  # type: ignore[assignment]
            else:
                datum = schemaless_reader(buf, writer, self._schema)  # type: ignore[assignment]
            return StoredValue(
                bool(value[0] & _MATCHED),
                datum["partition"],
                datum["offset"],
                _from_avro(datum["record"]),
            )
        except _DECODE_ERRORS as exc:
            msg = f"corrupt state value ({len(value)} bytes, schema {fp.hex()}): {exc!r}"
            raise StateDecodeError(msg) from exc
