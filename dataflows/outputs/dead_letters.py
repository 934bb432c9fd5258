"""Dead letters (the ``invalid/`` output): an input record that could not become
an event, with the exact reason and its **exact bytes**.

The row of an :class:`~dataflows.inputs.Invalid` (:func:`invalid_record`)::

    {"side", "reason",
     "raw",            # the record's bytes: text, or base64 (see raw_encoding)
     "raw_encoding",   # "utf-8" when the bytes are valid UTF-8 text, else "base64"
                       # (always "base64" for Avro inputs: binary data)
     "raw_bytes",      # the record's full length in bytes
     "raw_truncated",  # true when raw holds only its first bytes (records over 1 MiB)
     "partition", "offset",
     "avro_schema",    # Avro inputs: the writer schema as the file's header holds it
     "avro_codec"}     # Avro inputs: the file's codec (a damaged block's bytes are
                       # compressed with it); both null for CSV and JSON Lines

So ``raw_bytes_of(row)`` gives back the input bytes exactly (or their first
1 MiB, as ``raw_truncated`` says). Text stays readable in the JSON Lines output
(escaped as JSON, so even a NUL or a line break is kept); bytes that are not
UTF-8 (a broken line, an Avro record or block) are base64 (RFC 4648, with
padding).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from dataflows.inputs import Invalid

RawEncoding = Literal["utf-8", "base64"]


def encode_raw(raw: bytes, binary: bool = False) -> tuple[str, RawEncoding]:
    """``raw`` as ``(text, encoding)``: itself when it is valid UTF-8 text, else
    (or when ``binary``) base64."""
    if not binary:
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(raw).decode("ascii"), "base64"


def raw_bytes_of(row: dict[str, Any]) -> bytes:
    """The input bytes a dead-letter row holds (its first bytes when
    ``raw_truncated``). Raises ``ValueError`` on a row whose ``raw`` does not
    decode under its ``raw_encoding``."""
    raw, encoding = row["raw"], row.get("raw_encoding", "utf-8")
    if not isinstance(raw, str):
        msg = f"dead letter raw is not a string: {type(raw).__name__}"
        raise ValueError(msg)
    if encoding == "utf-8":
        return raw.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error as exc:
            msg = f"dead letter raw is not base64: {exc}"
            raise ValueError(msg) from exc
    msg = f"unknown raw_encoding {encoding!r}: expected 'utf-8' or 'base64'"
    raise ValueError(msg)


def invalid_record(invalid: Invalid) -> dict[str, Any]:
    """The dead-letter row of an input record that could not be decoded."""
    text, encoding = encode_raw(invalid.raw, invalid.binary)
    return {
        "side": invalid.side,
        "reason": invalid.reason,
        "raw": text,
        "raw_encoding": encoding,
        "raw_bytes": invalid.raw_bytes,
        "raw_truncated": invalid.raw_truncated,
        "partition": invalid.partition,
        "offset": invalid.offset,
        "avro_schema": invalid.avro_schema,
        "avro_codec": invalid.avro_codec,
    }
