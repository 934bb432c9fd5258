"""The value codec of retained events: a flags byte, a schema fingerprint, Avro.

Value layout::

    flags (1 byte; bit 0: matched) | writer schema fingerprint (8 bytes,
    CRC-64-AVRO of the parsing canonical form) | Avro schemaless body

The body is a ``StateValue`` record (``state/schemas/state_value_v2.avsc``):
``partition`` (string), ``offset`` (long) and ``record_json`` (string), the
record as JSON text (compact as the codec writes it, or an input line's own
text when the event carried it). JSON round-trips every JSON-able dict exactly
(bool stays bool, 1.0 stays a float, big ints stay ints, NaN and infinities are
allowed) and ``json.loads`` is C code: this encodes about twice and decodes
about four times as fast as v1. For the packaged v2 schema the three fields are
written and read by hand (:meth:`StateCodec.encode_with_json`, :func:`_v2_parts`),
byte for byte what fastavro writes; any other schema goes through fastavro.

v1 (``state_value_v1.avsc``) stored ``record`` as an Avro map from field name
to a union ``null | boolean | long | double | string | Json`` (non-flat values
as JSON text in the ``Json`` branch). Values written with v1 stay readable: a
writer schema whose ``record`` field is a map is read as written (Avro cannot
resolve a map to a string) and converted.

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


def _packaged_schema(name: str) -> dict[str, Any]:
    text = resources.files("state").joinpath(f"schemas/{name}.avsc").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def default_schema() -> dict[str, Any]:
    """The packaged ``StateValue`` schema (v2)."""
    return _packaged_schema("state_value_v2")


def v1_schema() -> dict[str, Any]:
    """The packaged ``StateValue`` schema v1 (read, and written only by tests)."""
    return _packaged_schema("state_value_v1")


_record_json = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode
#: The C scanner behind ``json.loads``, called directly: ``(value, end)``.
_scan_json: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_PARTITIONS_CACHED = 4096


def _zigzag_varint(n: int) -> bytes:
    """Avro ``long``: zig-zag, then little-endian base-128 varint. Up to four
    bytes (values below 2**27: lengths, byte offsets) without a loop."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _ONE_BYTE[z]
    if z < 0x4000:
        return bytes((z & 0x7F | 0x80, z >> 7))
    if z < 0x200000:
        return bytes((z & 0x7F | 0x80, z >> 7 & 0x7F | 0x80, z >> 14))
    if z < 0x10000000:
        return bytes((z & 0x7F | 0x80, z >> 7 & 0x7F | 0x80, z >> 14 & 0x7F | 0x80, z >> 21))
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def _avro_string(text: str) -> bytes:
    raw = text.encode()
    return _zigzag_varint(len(raw)) + raw


def _read_long(value: bytes, pos: int) -> tuple[int, int]:
    """An Avro ``long`` at ``pos``: ``(n, next pos)``; IndexError when truncated.
    Up to three bytes are read without a loop."""
    b = value[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    c = value[pos + 1]
    if c < 0x80:
        z = b & 0x7F | c << 7
        return (z >> 1) ^ -(z & 1), pos + 2
    d = value[pos + 2]
    if d < 0x80:
        z = b & 0x7F | (c & 0x7F) << 7 | d << 14
        return (z >> 1) ^ -(z & 1), pos + 3
    z = b & 0x7F | (c & 0x7F) << 7 | (d & 0x7F) << 14
    shift = 21
    pos += 3
    while True:
        b = value[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            msg = "Avro long longer than 10 bytes"
            raise ValueError(msg)
    return (z >> 1) ^ -(z & 1), pos


def _read_string_end(value: bytes, pos: int) -> tuple[int, int]:
    """``(start, end)`` of an Avro string at ``pos``; IndexError when truncated."""
    n, start = _read_long(value, pos)
    end = start + n
    if n < 0 or end > len(value):
        raise IndexError(end)
    return start, end


def _v2_parts(value: bytes) -> tuple[str, int, str]:
    """``(partition, offset, record_json)`` of a v2 value (header skipped), the
    record left as text. Checks the Avro structure; the text is parsed later.
    Varints of one byte (short names) are read inline, longer ones by
    :func:`_read_long`."""
    n = len(value)
    b = value[_HEADER_BYTES]
    if b < 0x80:
        start = _HEADER_BYTES + 1
        end = start + (b >> 1)
        if b & 1 or end > n:
            raise IndexError(end)
    else:
        start, end = _read_string_end(value, _HEADER_BYTES)
    partition = _partition_names.get(value[start:end])
    if partition is None:
        partition = _partition_name(value[start:end])
    offset, pos = _read_long(value, end)
    start, end = _read_string_end(value, pos)
    if end != n:
        msg = f"{n - end} bytes after the StateValue body"
        raise ValueError(msg)
    return partition, offset, value[start:end].decode()


#: Partition names as read from values (a run has a handful): decoded once.
_partition_names: dict[bytes, str] = {}


def _partition_name(raw: bytes) -> str:
    if len(_partition_names) >= _PARTITIONS_CACHED:
        _partition_names.clear()
    name = _partition_names[raw] = raw.decode()
    return name


def _parse_record(text: str) -> dict[str, Any]:
    """A record's JSON text as a dict; ValueError/TypeError when it is not one object."""
    try:
        record, stop = _scan_json(text, 0)
    except StopIteration as exc:
        msg = f"record_json is not JSON at character {exc.value}"
        raise ValueError(msg) from None
    if type(record) is not dict or stop != len(text):
        msg = "record_json is not one JSON object"
        raise TypeError(msg)
    return record


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
    #: ``record`` as compact ASCII JSON text, when the value holds it (v2).
    record_json: str | None = None


def is_matched(value: bytes) -> bool:
    """Bit 0 of the flags byte."""
    return bool(value[0] & _MATCHED)


def with_matched(value: bytes) -> bytes:
    """``value`` with the matched bit set; the Avro body is not touched."""
    return bytes((value[0] | _MATCHED,)) + value[1:]


def _to_avro_v1(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for name, value in record.items():
        kind = type(value)
        if kind in _FLAT or (kind is int and _LONG_MIN <= value <= _LONG_MAX):
            continue
        if out is None:
            out = dict(record)
        out[name] = {"json": json.dumps(value, allow_nan=True)}
    return record if out is None else out


def _from_avro_v1(record: dict[str, Any]) -> dict[str, Any]:
    for name, value in record.items():
        if type(value) is dict:
            record[name] = json.loads(value["json"])
    return record


def _record_field(schema: dict[str, Any]) -> str:
    """``"record_json"`` (v2 and later) or ``"record"`` (v1's map)."""
    names = {f["name"] for f in schema["fields"]}
    return "record_json" if "record_json" in names else "record"


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
        self._field = _record_field(self._schema)
        # The packaged v2 schema itself is read and written by hand.
        self._fast = self.schema_json == to_parsing_canonical_form(parse_schema(default_schema()))
        #: fingerprint -> (writer schema or None for our own, read it as written?)
        self._writers: dict[bytes, tuple[Any, bool]] = {self.fingerprint: (None, False)}
        self._header = (bytes((0,)) + self.fingerprint, bytes((_MATCHED,)) + self.fingerprint)
        self._partitions: dict[str, bytes] = {}

    def register_writer(self, fp: bytes, schema_json: str) -> None:
        """Make values written with the schema ``schema_json`` (fingerprint ``fp``)
        decodable. The store calls it for every writer schema persisted in its DB."""
        if fp in self._writers:
            return
        try:
            parsed: dict[str, Any] = parse_schema(json.loads(schema_json))  # type: ignore[assignment]
            as_written = _record_field(parsed) != self._field
        except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
            msg = f"persisted writer schema {fp.hex()} does not parse: {exc}"
            raise StateDecodeError(msg) from exc
        # Avro cannot resolve v1's record map to v2's string: such values are read
        # with their writer schema alone and converted.
        self._writers[fp] = (parsed, as_written)

    def encode(self, partition: str, offset: int, record: dict[str, Any], matched: bool) -> bytes:
        """The value bytes of a retained event."""
        return self.encode_with_json(partition, offset, record, matched)[0]

    def encode_with_json(
        self, partition: str, offset: int, record: dict[str, Any], matched: bool
    ) -> tuple[bytes, str | None]:
        """:meth:`encode`, and the record's JSON text if the value holds it."""
        if self._fast:
            part = self._partitions.get(partition)
            if part is None:
                if len(self._partitions) >= _PARTITIONS_CACHED:
                    self._partitions.clear()
                part = self._partitions[partition] = _avro_string(partition)
            try:
                text = _record_json(record)
                value = (
                    self._header[1 if matched else 0]
                    + part
                    + _zigzag_varint(offset)
                    + _avro_string(text)
                )
            except (ValueError, TypeError, OverflowError) as exc:
                msg = f"cannot encode record as Avro StateValue: {exc}"
                raise StateError(msg) from exc
            return value, text
        return self._encode_generic(partition, offset, record, matched), None

    def _encode_generic(
        self, partition: str, offset: int, record: dict[str, Any], matched: bool
    ) -> bytes:
        datum = {**self._defaults, "partition": partition, "offset": offset}
        buf = io.BytesIO()
        buf.write(self._header[1 if matched else 0])
        try:
            if self._field == "record_json":
                datum["record_json"] = _record_json(record)
            else:
                datum["record"] = _to_avro_v1(record)
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
            writer, as_written = self._writers[fp]
        except KeyError:
            msg = f"state value written with unknown schema fingerprint {fp.hex()}"
            raise StateDecodeError(msg) from None
        try:
            if writer is None and self._fast:
                partition, offset, body = _v2_parts(value)
                record = _parse_record(body)
                return StoredValue(bool(value[0] & _MATCHED), partition, offset, record, body)
            buf = io.BytesIO(value)
            buf.seek(_HEADER_BYTES)
            datum: dict[str, Any]
            if writer is None:
                datum = schemaless_reader(buf, self._schema, None)  # type: ignore[assignment]
            elif as_written:
                datum = schemaless_reader(buf, writer, None)  # type: ignore[assignment]
            else:
                datum = schemaless_reader(buf, writer, self._schema)  # type: ignore[assignment]
            text: str | None = None
            if "record_json" in datum:
                text = datum["record_json"]
                record = _parse_record(datum["record_json"])
            else:
                record = _from_avro_v1(datum["record"])
            return StoredValue(
                bool(value[0] & _MATCHED), datum["partition"], datum["offset"], record, text
            )
        except _DECODE_ERRORS as exc:
            msg = f"corrupt state value ({len(value)} bytes, schema {fp.hex()}): {exc!r}"
            raise StateDecodeError(msg) from exc

    def decode_parts(self, value: bytes) -> tuple[str, int, dict[str, Any] | None, str | None]:
        """``(partition, offset, record, record_json)`` of a value, the hot path of
        probes: a value of this codec's own (packaged) schema leaves the record as
        text (``record`` is ``None``: it is parsed when first read); any other is
        decoded in full (``record_json`` may then be ``None``)."""
        if self._fast and value[1:_HEADER_BYTES] == self.fingerprint:
            try:
                partition, offset, text = _v2_parts(value)
            except _DECODE_ERRORS as exc:
                msg = f"corrupt state value ({len(value)} bytes): {exc!r}"
                raise StateDecodeError(msg) from exc
            return partition, offset, None, text
        stored = self.decode(value)
        return stored.partition, stored.offset, stored.record, stored.record_json

    def encode_text(self, partition: str, offset: int, text: str, matched: bool) -> bytes | None:
        """The value of a record given as JSON text (``None``: this codec's schema
        is not the packaged one; use :meth:`encode_with_json`)."""
        if not self._fast:
            return None
        part = self._partitions.get(partition)
        if part is None:
            if len(self._partitions) >= _PARTITIONS_CACHED:
                self._partitions.clear()
            part = self._partitions[partition] = _avro_string(partition)
        raw = text.encode()
        head = self._header[1 if matched else 0]
        return head + part + _zigzag_varint(offset) + _zigzag_varint(len(raw)) + raw
