"""Avro values as record values: JSON-safe and lossless, decided by the schema.

A decoded record is retained (state keeps it as JSON text) and written out, so
it must hold JSON values only, and lose nothing (the lead's decision for issue
10). Each Avro type decodes to:

==========================================  ===========================================
Avro type                                   record value
==========================================  ===========================================
``timestamp-millis``, ``local-timestamp-millis``  integer epoch milliseconds
``timestamp-micros``, ``local-timestamp-micros``  integer epoch microseconds
``timestamp-nanos``, ``local-timestamp-nanos``    integer epoch nanoseconds
``date``                                    integer days since 1970-01-01
``time-millis`` / ``time-micros``           integer milliseconds / microseconds of the day
``decimal`` (bytes or fixed)                the exact decimal as a string: ``"12.34"``,
                                            ``"-0.50"`` (all ``scale`` digits kept)
``uuid`` (on ``string`` or ``fixed(16)``)   the UUID text
``bytes``, ``fixed`` (``duration`` too)     base64 (RFC 4648, padded) string
``enum``                                    the symbol
``record`` / ``map`` / ``array``            object / object / array
``union``                                   the branch's value (no branch name)
other primitives                            themselves (``float`` widened to a double;
                                            ``NaN`` and infinities stay floats)
==========================================  ===========================================

That is Avro's underlying value except for decimals, bytes and fixed. A
logical type that the Avro specification calls invalid (a ``decimal`` whose
``scale`` exceeds its ``precision``, or whose ``precision`` the fixed size
cannot hold) is ignored, as the specification says: the value is its
underlying type's.

How: :func:`json_safe_schema` rewrites a writer schema before it is parsed,
dropping every logical type (fastavro then returns the underlying value,
without building a ``datetime`` that a year past 9999 would not fit) and
marking ``bytes`` and ``fixed`` with this project's own logical types
``streamjoin-base64`` and ``streamjoin-decimal``, whose readers are registered
with fastavro here (their names cannot collide with a standard type). The
rewritten schema describes the same bytes: data are decoded with it as the
writer schema, with no schema resolution.

As the **time field**, a ``timestamp-*`` type states its own unit
(:func:`timestamp_unit`): the event time is taken in it whatever
``--time-unit`` says, micros and nanos floored to the millisecond.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, Final

import fastavro.read

BASE64: Final = "streamjoin-base64"
DECIMAL: Final = "streamjoin-decimal"
UUID: Final = "streamjoin-uuid"

_TIMESTAMP_UNITS: Final = {
    "timestamp-millis": "ms",
    "local-timestamp-millis": "ms",
    "timestamp-micros": "us",
    "local-timestamp-micros": "us",
    "timestamp-nanos": "ns",
    "local-timestamp-nanos": "ns",
}


def _base64(data: bytes, *_schemas: Any) -> str:
    return base64.b64encode(data).decode("ascii")


def _decimal(data: bytes, writer_schema: Any = None, *_rest: Any) -> str:
    scale = writer_schema.get("scale", 0) if writer_schema else 0
    return decimal_text(int.from_bytes(data, "big", signed=True), scale)


def decimal_text(unscaled: int, scale: int) -> str:
    """``unscaled * 10**-scale`` written out exactly, with ``scale`` decimals."""
    if scale <= 0:
        return str(unscaled)
    digits = str(abs(unscaled)).rjust(scale + 1, "0")
    sign = "-" if unscaled < 0 else ""
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def _uuid(data: bytes, *_schemas: Any) -> str:
    return str(uuid.UUID(bytes=data))


for _kind in ("bytes", "fixed"):
    fastavro.read.LOGICAL_READERS[f"{_kind}-{BASE64}"] = _base64
    fastavro.read.LOGICAL_READERS[f"{_kind}-{DECIMAL}"] = _decimal
fastavro.read.LOGICAL_READERS[f"fixed-{UUID}"] = _uuid


def _valid_decimal(schema: dict[str, Any]) -> bool:
    precision, scale = schema.get("precision"), schema.get("scale", 0)
    if type(precision) is not int or type(scale) is not int:
        return False
    if not 0 < precision or not 0 <= scale <= precision:
        return False
    size = schema.get("size")
    if schema.get("type") == "fixed" and type(size) is int and size > 0:
        # the most decimal digits a signed ``size``-byte integer always holds
        return precision <= len(str(2 ** (8 * size - 1) - 1)) - 1
    return True


def json_safe_schema(schema: Any) -> Any:
    """A copy of the writer schema ``schema`` (JSON, not parsed) that decodes
    the same bytes to the values of the module docstring's table."""
    if isinstance(schema, list):
        return [json_safe_schema(branch) for branch in schema]
    if schema == "bytes":
        return {"type": "bytes", "logicalType": BASE64}
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k != "logicalType"}
    kind = schema.get("type")
    if kind in ("bytes", "fixed"):
        logical = schema.get("logicalType")
        if logical == "decimal" and _valid_decimal(schema):
            out["logicalType"] = DECIMAL
        elif logical == "uuid" and kind == "fixed" and schema.get("size") == 16:
            out["logicalType"] = UUID
        else:
            out["logicalType"] = BASE64
    elif kind in ("record", "error") and isinstance(schema.get("fields"), list):
        out["fields"] = [
            {**f, "type": json_safe_schema(f.get("type"))} if isinstance(f, dict) else f
            for f in schema["fields"]
        ]
    elif kind == "array" and "items" in schema:
        out["items"] = json_safe_schema(schema["items"])
    elif kind == "map" and "values" in schema:
        out["values"] = json_safe_schema(schema["values"])
    elif isinstance(kind, dict | list):
        out["type"] = json_safe_schema(kind)
    return out


def timestamp_unit(schema: Any, field: str) -> str | None:
    """``ms``, ``us`` or ``ns`` when the top-level record field ``field`` of the
    writer schema ``schema`` is a (nullable) ``timestamp-*`` or
    ``local-timestamp-*`` long, else None."""
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        return None
    for f in schema["fields"]:
        if isinstance(f, dict) and f.get("name") == field:
            kind = f.get("type")
            branches = kind if isinstance(kind, list) else [kind]
            for branch in branches:
                if isinstance(branch, dict) and branch.get("type") == "long":
                    unit = _TIMESTAMP_UNITS.get(str(branch.get("logicalType")))
                    if unit is not None:
                        return unit
            return None
    return None


_MIN_BYTES: Final = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8,
                     "bytes": 1, "string": 1}


def min_record_bytes(schema: Any) -> int:
    """The fewest bytes one datum of ``schema`` (parsed or not) can take (0 for a
    record of nulls, say): a block's record count cannot exceed its size
    divided by this. Named references count 0, which never claims too much."""
    if isinstance(schema, str):
        return _MIN_BYTES.get(schema, 0)
    if isinstance(schema, list):
        return 1  # the branch index
    if not isinstance(schema, dict):
        return 0
    kind = schema.get("type")
    if kind in ("record", "error"):
        fields = schema.get("fields")
        return sum(min_record_bytes(f.get("type")) for f in fields if isinstance(f, dict)) \
            if isinstance(fields, list) else 0
    if kind == "fixed":
        size = schema.get("size")
        return size if type(size) is int and size > 0 else 0
    if kind in ("enum", "array", "map"):
        return 1
    return min_record_bytes(kind)
