"""Human-readable byte sizes (``256MiB``, ``1GiB``, ``512M``) to integer bytes.

Grammar: a plain integer (bytes), or an integer and a binary unit: ``B``,
``K``/``KiB``, ``M``/``MiB``, ``G``/``GiB``, ``T``/``TiB`` (any case; one space
before the unit is allowed). ``K``, ``M``, ``G`` and ``T`` are binary, as in
``java -Xmx`` and RocksDB's own options: ``512M`` is 512 MiB. ``KB``, ``MB``,
``GB`` and ``TB`` are refused, since readers disagree on whether they mean 1000
or 1024; the error names the binary spelling. No fractions, no signs.
"""

from __future__ import annotations

import re

from dataflows.errors import ConfigError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

#: Largest first: :func:`format_size` picks the largest unit that divides exactly.
_UNITS: dict[str, int] = {"TiB": TIB, "GiB": GIB, "MiB": MIB, "KiB": KIB}
UNIT_BYTES: dict[str, int] = {
    "b": 1,
    **{name.lower(): size for name, size in _UNITS.items()},
    **{name[0].lower(): size for name, size in _UNITS.items()},
}

_SIZE = re.compile(r"(\d+) ?([A-Za-z]*)")
_AMBIGUOUS = {"kb": "KiB", "mb": "MiB", "gb": "GiB", "tb": "TiB"}
_ALLOWED = "an integer number of bytes or an integer with a unit: 512M, 256MiB, 1GiB (K, M, G, T)"


def parse_size(text: str | int) -> int:
    """Parse ``text`` into integer bytes (see the module docstring)."""
    if isinstance(text, bool):
        msg = f"invalid size {text!r}: expected {_ALLOWED}"
        raise ConfigError(msg)
    if isinstance(text, int):
        return text
    m = _SIZE.fullmatch(text.strip())
    if m is None or not m.group(1).isascii():
        msg = f"invalid size {text!r}: expected {_ALLOWED}"
        raise ConfigError(msg)
    count, unit = int(m.group(1)), m.group(2).lower()
    if unit in _AMBIGUOUS:
        msg = (
            f"invalid size {text!r}: {m.group(2)} is ambiguous (1000 or 1024?); "
            f"write {m.group(1)}{_AMBIGUOUS[unit]} (or {m.group(1)}{unit[0].upper()}, also binary)"
        )
        raise ConfigError(msg)
    if unit and unit not in UNIT_BYTES:
        msg = f"invalid size {text!r}: unknown unit {m.group(2)!r}; expected {_ALLOWED}"
        raise ConfigError(msg)
    return count * UNIT_BYTES[unit or "b"]


def format_size(size: int) -> str:
    """The text :func:`parse_size` reads back as ``size`` (``>= 0``), in the
    largest unit that divides it exactly (``256MiB``, ``1GiB``, ``1536KiB``, ``1000``)."""
    for name, unit in _UNITS.items():
        if size and size % unit == 0:
            return f"{size // unit}{name}"
    return str(size)
