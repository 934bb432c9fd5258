"""The Confluent wire format of a Kafka record value (Schema Registry framing).

::

    byte 0      magic byte, always 0
    bytes 1-4   the writer schema's id in the Schema Registry, unsigned 32-bit big-endian
    bytes 5-    the datum in Avro binary encoding under that writer schema

:func:`frame` builds a value, :func:`unframe` reads the header back; a value
that is too short or carries another magic byte raises :class:`BadFrame`,
whose message is the dead letter's reason.
"""

from __future__ import annotations

import struct

MAGIC = 0
HEADER = struct.Struct(">BI")
HEADER_BYTES = HEADER.size  # 5
MAX_SCHEMA_ID = 2**32 - 1


class BadFrame(Exception):
    """A value that is not in the Confluent wire format; the message says why."""


def frame(schema_id: int, payload: bytes) -> bytes:
    """The record value of Avro binary ``payload`` written with schema ``schema_id``."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        msg = f"schema id {schema_id} does not fit the 4-byte header (0..{MAX_SCHEMA_ID})"
        raise ValueError(msg)
    return HEADER.pack(MAGIC, schema_id) + payload


def unframe(value: bytes) -> int:
    """The writer schema id of a framed ``value``; the payload starts at
    ``HEADER_BYTES`` (raises :class:`BadFrame`)."""
    if len(value) < HEADER_BYTES:
        msg = (f"confluent-avro: value of {len(value)} bytes is shorter than the "
               f"{HEADER_BYTES}-byte header (magic byte 0, 4-byte schema id)")
        raise BadFrame(msg)
    magic, schema_id = HEADER.unpack_from(value)
    if magic != MAGIC:
        msg = f"confluent-avro: unknown magic byte 0x{magic:02x} (expected 0x00)"
        raise BadFrame(msg)
    return int(schema_id)
