"""How to read one input (:class:`SourceFormat`): its format, key fields, time
field and unit, checked on construction.

Kept apart from :mod:`dataflows.inputs.fields`, which mypyc compiles: these
checks take whatever a caller passes (a string where a tuple belongs) and must
answer with a :class:`ConfigError`, not a compiled ``TypeError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from dataflows.errors import ConfigError

Format = Literal["csv", "jsonl", "avro"]
TimeUnit = Literal["ms", "s", "us", "iso"]
FORMATS: tuple[Format, ...] = get_args(Format)
TIME_UNITS: tuple[TimeUnit, ...] = get_args(TimeUnit)


@dataclass(frozen=True)
class SourceFormat:
    """How to read one input: its format, key fields, time field and unit."""

    format: Format
    key_fields: tuple[str, ...] = ("key",)
    time_field: str = "ts"
    time_unit: TimeUnit = "ms"

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
