"""Errors of the RocksDB state package.

Everything ``state/`` raises on purpose derives from :class:`StateError`, itself
a :class:`joins.errors.StreamJoinError`. Library exceptions (RocksDB I/O,
fastavro decoding) are wrapped at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from joins.errors import StreamJoinError


class StateError(StreamJoinError):
    """The state store cannot do what was asked (bad options, I/O, layout)."""


class StateDecodeError(StateError, ValueError):
    """Stored bytes cannot be decoded: corrupt value, unknown writer schema or a
    reader schema that cannot resolve the writer's."""
