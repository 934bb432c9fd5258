"""Avro values as validate expects a record to hold them: JSON-safe and lossless.

The mapping (the lead's decision for issue 10), written down again here rather
than taken from the decoder:

==========================================  =====================================
Avro type                                   record value
==========================================  =====================================
``timestamp-*``, ``local-timestamp-*``      the integer (epoch ms, us or ns)
``date``, ``time-millis``, ``time-micros``  the integer
``decimal`` (bytes or fixed)                the exact decimal text, with all
                                            ``scale`` digits: ``"12.34"``, ``"-0.50"``
``uuid`` (string or fixed)                  the UUID text
``bytes``, ``fixed`` (other)                base64 (RFC 4648, padded)
everything else                             fastavro's plain value (enum symbol,
                                            union branch value, float as double)
==========================================  =====================================

A ``decimal`` the Avro specification calls invalid (scale above precision, a
precision its fixed size cannot hold) is ignored, as the specification says: its
bytes become base64.

How: :func:`json_safe_schema` rewrites the writer schema, dropping every logical
type (fastavro then returns the underlying value) and marking ``bytes`` and
``fixed`` with logical types of validate's own, whose readers are registered with
fastavro here. The rewritten schema describes the same bytes.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, Final

import fastavro.read

_B64: Final = "validate-base64"
_DECIMAL: Final = "validate-decimal"
_UUID: Final = "validate-uuid"

TIMESTAMP_UNITS: Final = {
    "timestamp-millis": "ms", "local-timestamp-millis": "ms",
    "timestamp-micros": "us", "local-timestamp-micros": "us",
    "timestamp-nanos": "ns", "local-timestamp-nanos": "ns",
}


def _b64(data: bytes, *_schemas: Any) -> str:
    return base64.b64encode(data).decode("ascii")


def _uuid(data: bytes, *_schemas: Any) -> str:
    return str(uuid.UUID(bytes=data)) if len(data) == 16 else _b64(data)


def decimal_text(unscaled: int, scale: int) -> str:
    """The decimal ``unscaled / 10**scale`` with exactly ``scale`` decimals."""
    sign = "-" if unscaled < 0 else ""
    digits = str(abs(unscaled))
    if scale <= 0:
        return sign + digits
    digits = digits.zfill(scale + 1)
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def _decimal(data: bytes, writer_schema: Any = None, *_rest: Any) -> str:
    scale = writer_schema.get("scale", 0) if isinstance(writer_schema, dict) else 0
    return decimal_text(int.from_bytes(data, "big", signed=True), scale)


for _kind in ("bytes", "fixed"):
    fastavro.read.LOGICAL_READERS[f"{_kind}-{_B64}"] = _b64
    fastavro.read.LOGICAL_READERS[f"{_kind}-{_DECIMAL}"] = _decimal
fastavro.read.LOGICAL_READERS[f"fixed-{_UUID}"] = _uuid


def _decimal_ok(schema: dict[str, Any]) -> bool:
    precision, scale = schema.get("precision"), schema.get("scale", 0)
    if type(precision) is not int or type(scale) is not int:
        return False
    if precision <= 0 or not 0 <= scale <= precision:
        return False
    size = schema.get("size")
    if schema.get("type") == "fixed" and type(size) is int and size > 0:
        # floor(log10(2**(8 size - 1) - 1)): the digits a signed fixed always holds
        return precision <= len(str(2 ** (8 * size - 1) - 1)) - 1
    return True


def json_safe_schema(schema: Any) -> Any:
    """A copy of the (unparsed) writer schema that decodes the same bytes to the
    values of the module docstring's table."""
    if isinstance(schema, list):
        return [json_safe_schema(s) for s in schema]
    if schema == "bytes":
        return {"type": "bytes", "logicalType": _B64}
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k != "logicalType"}
    kind, logical = schema.get("type"), schema.get("logicalType")
    if kind in ("bytes", "fixed"):
        if logical == "decimal" and _decimal_ok(schema):
            out["logicalType"] = _DECIMAL
        elif logical == "uuid" and kind == "fixed":
            out["logicalType"] = _UUID
        else:
            out["logicalType"] = _B64
    elif kind in ("record", "error") and isinstance(schema.get("fields"), list):
        out["fields"] = [{**f, "type": json_safe_schema(f.get("type"))}
                         if isinstance(f, dict) else f for f in schema["fields"]]
    elif kind == "array":
        out["items"] = json_safe_schema(schema.get("items"))
    elif kind == "map":
        out["values"] = json_safe_schema(schema.get("values"))
    elif isinstance(kind, dict | list):
        out["type"] = json_safe_schema(kind)
    return out


def timestamp_unit(schema: Any, field: str) -> str:
    """``ms``, ``us`` or ``ns`` when the record field ``field`` of the writer
    schema is a (nullable) ``timestamp-*`` or ``local-timestamp-*`` long, else
    ``""`` (the run's configured unit applies)."""
    fields = schema.get("fields") if isinstance(schema, dict) else None
    for f in fields if isinstance(fields, list) else ():
        if isinstance(f, dict) and f.get("name") == field:
            kind = f.get("type")
            for branch in kind if isinstance(kind, list) else [kind]:
                if isinstance(branch, dict) and branch.get("type") == "long":
                    unit = TIMESTAMP_UNITS.get(str(branch.get("logicalType")))
                    if unit:
                        return unit
            return ""
    return ""


_MIN_BYTES: Final = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8,
                     "bytes": 1, "string": 1}


def min_record_bytes(schema: Any) -> int:
    """The fewest bytes a datum of ``schema`` takes (a named reference: 0), so
    that a block header claiming more records than its size holds is damage."""
    if isinstance(schema, str):
        return _MIN_BYTES.get(schema, 0)
    if isinstance(schema, list):
        return 1
    if not isinstance(schema, dict):
        return 0
    kind = schema.get("type")
    if kind in ("record", "error"):
        fields = schema.get("fields")
        if not isinstance(fields, list):
            return 0
        return sum(min_record_bytes(f.get("type")) for f in fields if isinstance(f, dict))
    if kind == "fixed":
        size = schema.get("size")
        return size if type(size) is int and size > 0 else 0
    if kind in ("enum", "array", "map"):
        return 1
    return min_record_bytes(kind)
