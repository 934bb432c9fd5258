"""Human-readable durations (``250ms``, ``5s``, ``1h30m``) to integer milliseconds.

Grammar: an optional sign, then one or more ``<integer><unit>`` terms with
units ``ms``, ``s``, ``m``, ``h``, ``d`` (each unit at most once, largest
first), e.g. ``-5s``, ``1h30m``, ``1d2h``; or ``0``. A bare number other than
``0`` is refused: ``--upper 30`` means 30 minutes to one reader and 30 ms to
another, so the error asks for the unit. Nothing else is accepted: no
fractions, no spaces inside, no ``us``; the error says what was given and what
is allowed. (A Python ``int`` is taken as milliseconds: that is code, not a
flag.)
"""

from __future__ import annotations

import re

from dataflows.errors import ConfigError

UNIT_MS: dict[str, int] = {
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}

_TERM = re.compile(r"(\d+)(ms|s|m|h|d)")
_ALLOWED = "0 or terms like 250ms, 5s, 30m, 2h, 1d, 1h30m"


def parse_duration(text: str | int) -> int:
    """Parse ``text`` into integer milliseconds (see the module docstring)."""
    if isinstance(text, bool):
        msg = f"invalid duration {text!r}: expected {_ALLOWED}"
        raise ConfigError(msg)
    if isinstance(text, int):
        return text
    raw = text
    s = text.strip()
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s.isdigit() and s.isascii():
        if int(s) == 0:
            return 0
        msg = (
            f"invalid duration {raw!r}: a bare number has no unit; write {s}s, {s}m "
            f"or {s}ms (or 0)"
        )
        raise ConfigError(msg)
    if not s:
        msg = f"invalid duration {raw!r}: expected {_ALLOWED}"
        raise ConfigError(msg)
    total = 0
    pos = 0
    seen: list[str] = []
    order = list(UNIT_MS)
    while pos < len(s):
        m = _TERM.match(s, pos)
        if m is None or not m.group(1).isascii():
            msg = f"invalid duration {raw!r}: expected {_ALLOWED}"
            raise ConfigError(msg)
        unit = m.group(2)
        if seen and order.index(unit) <= order.index(seen[-1]):
            msg = (
                f"invalid duration {raw!r}: units must appear at most once, largest "
                f"first (d, h, m, s, ms)"
            )
            raise ConfigError(msg)
        seen.append(unit)
        total += int(m.group(1)) * UNIT_MS[unit]
        pos = m.end()
    return sign * total


def format_duration(ms: int) -> str:
    """The shortest text :func:`parse_duration` reads back as ``ms``, e.g. ``1h30m``."""
    if ms == 0:
        return "0"
    sign = "-" if ms < 0 else ""
    rest = abs(ms)
    parts: list[str] = []
    for unit, size in UNIT_MS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
