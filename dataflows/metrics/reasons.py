"""Classes of invalid input: a bounded ``reason`` label for dead letters.

:mod:`dataflows.inputs` says exactly what was wrong with a record (``missing
field 'ts'``, ``ts is not an integer: 'abc'``, ``avro: ...``); those texts carry
values, so they cannot be label values. :func:`reason_class` maps each to one of
a small fixed set of classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

#: The classes of invalid input (bounded: ``reason`` label values).
REASON_CLASSES: Final = (
    "parse",
    "encoding",
    "missing_field",
    "empty_value",
    "bad_type",
    "bad_key",
    "out_of_range",
    "avro",
    "other",
)

#: (test, class) in order: the first whose test matches the reason wins. The
#: reasons are those of :mod:`dataflows.inputs`.
_REASON_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda r: r.startswith("avro:"), "avro"),
    (lambda r: r.startswith("invalid UTF-8") or "not valid Unicode" in r, "encoding"),
    (
        lambda r: r.startswith(("invalid JSON", "record is not an object", "csv:")),
        "parse",
    ),
    (lambda r: r.startswith("missing field"), "missing_field"),
    (lambda r: " out of range" in r, "out_of_range"),
    (lambda r: r.endswith((" is null", " is empty")), "empty_value"),
    (lambda r: "is not an " in r or "is not a " in r, "bad_type"),
    (lambda r: r.startswith("key "), "bad_key"),
)


def reason_class(reason: str) -> str:
    """The class (one of :data:`REASON_CLASSES`) of an ``Invalid.reason``."""
    for test, name in _REASON_RULES:
        if test(reason):
            return name
    return "other"
