"""SQL expressions for a record's key parts and event time, as validate reads
them (:mod:`dataflows.validate.records` puts them together).

Each builder takes SQL expressions (column names or sub-expressions this
package writes, never input text) and returns ``(value, problem)``: the value
when the input is good, else ``NULL`` and a problem text saying why (the
dead letter's reason class; the run's exact wording is not compared).

Keys (issue 10, decision 1): a key part is a non-empty string, unchanged, or an
integer, as its decimal text (so ``1`` and ``"1"`` are one key); anything else
(float, boolean, null, object, array), a missing field or an empty string is a
dead letter. One key field's part is the key; several fields' parts make the
JSON array ``to_json(list_value(part, ...))``, e.g. ``["x|y","z"]``. A key may
not hold a NUL character.

Times (``shared/design/semantics.md``, "Inputs"): integer epoch milliseconds in
``joins.spec.MIN_TS_MS..MAX_TS_MS``, from

- ``ms`` / ``s`` / ``us`` (and ``ns``, an Avro ``timestamp-nanos`` field): an
  integer, an integral float (``1.7e12``), or a string holding an integer
  (Python's ``int()``: surrounding whitespace, a sign, ``_`` between digits;
  ASCII digits only), in that unit; ``us`` and ``ns`` are floored to the ms;
- ``iso``: ISO-8601 text as Python 3.11's ``datetime.fromisoformat`` reads it
  (:func:`iso_ms`), naive meaning UTC, floored to the ms.
"""

from __future__ import annotations

from typing import Final

from joins.spec import MAX_TS_MS, MIN_TS_MS

#: ``str.isspace()`` characters (what ``str.strip()`` and ``int()`` drop), as an
#: RE2 class.
_WS: Final = (r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
              r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]")
_INT: Final = r"[+-]?[0-9](?:_?[0-9])*"
#: Digits a HUGEINT takes safely; more is out of range in every unit.
_MAX_DIGITS: Final = 30
_DIVISORS: Final = {"ms": 1, "us": 1_000, "ns": 1_000_000}


def lit(text: str) -> str:
    """``text`` as an SQL string literal (for this package's constants)."""
    return "'" + text.replace("'", "''") + "'"


def strip_ws(s: str) -> str:
    """``s`` without the whitespace ``str.strip()`` drops."""
    return f"regexp_replace({s}, {lit(f'^{_WS}+|{_WS}+$')}, '', 'g')"


def _digits_to_int(digits: str) -> str:
    """A HUGEINT from a signed digit string, NULL when too long to be in range."""
    return (f"CASE WHEN length(ltrim(ltrim({digits}, '+-'), '0')) <= {_MAX_DIGITS} "
            f"THEN {digits}::HUGEINT END")


def string_int(s: str) -> tuple[str, str]:
    """``(n, problem)`` for a string ``s`` that should hold an integer."""
    digits = f"replace({strip_ws(s)}, '_', '')"
    ok = f"regexp_full_match({s}, {lit(f'{_WS}*{_INT}{_WS}*')})"
    n = f"CASE WHEN {ok} THEN {_digits_to_int(digits)} END"
    problem = (f"CASE WHEN {strip_ws(s)} = '' THEN 'is empty' "
               f"WHEN NOT {ok} THEN 'is not an integer' "
               f"WHEN {n} IS NULL THEN 'out of range' END")
    return n, problem


def json_int(v: str) -> tuple[str, str]:
    """``(n, problem)`` for a JSON value ``v`` that should be an integer (or an
    integral float, or a string of an integer); ``v`` is not SQL NULL."""
    jt = f"json_type({v})"
    text = f"({v})::VARCHAR"
    s = f"({v} ->> '$')"
    s_n, s_problem = string_int(s)
    double = f"TRY_CAST({text} AS DOUBLE)"
    integral = f"(isfinite({double}) AND {double} = trunc({double}))"
    n = (f"CASE WHEN {jt} IN ('BIGINT', 'UBIGINT', 'HUGEINT') THEN {text}::HUGEINT "
         f"WHEN {jt} = 'DOUBLE' AND regexp_full_match({text}, '-?[0-9]+') "
         f"THEN {_digits_to_int(text)} "
         f"WHEN {jt} = 'DOUBLE' AND {integral} AND abs({double}) < 1e30 "
         f"THEN {double}::HUGEINT "
         f"WHEN {jt} = 'VARCHAR' THEN {s_n} END")
    problem = (f"CASE WHEN {jt} = 'NULL' THEN 'is null' "
               f"WHEN {jt} = 'VARCHAR' THEN {s_problem} "
               f"WHEN {jt} = 'DOUBLE' AND NOT regexp_full_match({text}, '-?[0-9]+') "
               f"AND NOT {integral} THEN 'is not an integer' "
               f"WHEN {jt} NOT IN ('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE') "
               f"THEN 'is not an integer' "
               f"WHEN {n} IS NULL THEN 'out of range' END")
    return n, problem


def scaled_ms(n: str, unit: str) -> str:
    """Epoch ms from the integer ``n`` in ``unit`` (an SQL expression giving
    ``ms``, ``s``, ``us`` or ``ns``), floored."""
    parts = [f"WHEN {unit} = 's' THEN {n} * 1000"]
    for name, d in _DIVISORS.items():
        floor = f"{n}" if d == 1 else f"({n} - (({n} % {d}) + {d}) % {d}) // {d}"
        parts.append(f"WHEN {unit} = {lit(name)} THEN {floor}")
    return f"CASE {' '.join(parts)} END"


def in_range(ms: str) -> str:
    """Whether ``ms`` lies in ``MIN_TS_MS..MAX_TS_MS``."""
    return f"({ms} BETWEEN {MIN_TS_MS}::HUGEINT AND {MAX_TS_MS}::HUGEINT)"


_D2: Final = r"([0-9]{2})"
_FRAC: Final = r"(?:[.,]([0-9]+))?"
_ISO: Final = (
    r"^(?:([0-9]{4})-" + _D2 + "-" + _D2 + r"|([0-9]{4})" + _D2 + _D2 + ")"
    r"(?:.(?:" + _D2 + r"(?::" + _D2 + r"(?::" + _D2 + _FRAC + r")?)?"
    r"|" + _D2 + _D2 + r"(?:" + _D2 + _FRAC + r")?)"
    r"(Z|([+-])" + _D2 + r"(?::?" + _D2 + r"(?::?" + _D2 + _FRAC + r")?)?)?)?$"
)
#: Group numbers of :data:`_ISO`: date (extended, basic), time (extended, basic), zone.
_G: Final = {"y": (1, 4), "mo": (2, 5), "d": (3, 6), "h": (7, 11), "mi": (8, 12),
             "s": (9, 13), "f": (10, 14), "z": (15,), "zsign": (16,), "zh": (17,),
             "zm": (18,), "zs": (19,), "zf": (20,)}


def _group(name: str, m: str) -> str:
    parts = [f"nullif({m}.g{i}, '')" for i in _G[name]]
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def iso_ms(s: str) -> str:
    """Epoch ms of the ISO-8601 text ``s``, or NULL when Python 3.11's
    ``datetime.fromisoformat(s.strip())`` would refuse it.

    The forms read: a date ``YYYY-MM-DD`` or ``YYYYMMDD``; optionally any one
    character and a time ``HH[:MM[:SS[.f]]]`` or ``HHMM[SS[.f]]`` (a ``,`` may
    stand for the ``.``; digits past the sixth are dropped); after a time,
    optionally ``Z`` or an offset ``+HH[[:]MM[[:]SS[.f]]]``. Not read here:
    ISO week dates (``2023-W01-1``), which Python also accepts.
    """
    m = f"regexp_extract({strip_ws(s)}, {lit(_ISO)}, " + "[" + ", ".join(
        f"'g{i}'" for i in range(1, 21)) + "])"
    g = {name: _group(name, "__m") for name in _G}
    num = {k: f"coalesce({v}::INTEGER, 0)" for k, v in g.items()
           if k not in ("z", "zsign", "f", "zf")}
    micros = "coalesce(rpad(left({f}, 6), 6, '0')::BIGINT, 0)"
    y, mo, d = (f"{g[k]}::INTEGER" for k in ("y", "mo", "d"))
    date = f"try(make_date({y}, {mo}, {d}))"
    valid = (f"{g['y']} IS NOT NULL AND {y} >= 1 AND {date} IS NOT NULL "
             f"AND {num['h']} < 24 AND {num['mi']} < 60 AND {num['s']} < 60 "
             f"AND {num['zh']} < 24 AND {num['zm']} < 60 AND {num['zs']} < 60")
    local_us = (f"(datediff('day', DATE '1970-01-01', {date})::HUGEINT * 86400 "
                f"+ {num['h']} * 3600 + {num['mi']} * 60 + {num['s']}) * 1000000 "
                f"+ {micros.format(f=g['f'])}")
    zone_us = (f"CASE WHEN {g['zsign']} IS NULL THEN 0 ELSE "
               f"(CASE WHEN {g['zsign']} = '-' THEN -1 ELSE 1 END) * "
               f"(({num['zh']} * 3600 + {num['zm']} * 60 + {num['zs']})::HUGEINT * 1000000 "
               f"+ {micros.format(f=g['zf'])}) END")
    us = f"({local_us} - {zone_us})"
    ms = f"(({us} - (({us} % 1000) + 1000) % 1000) // 1000)"
    # A one-element list and a lambda bind the match once (SQL has no ``let``).
    return f"list_transform([{m}], lambda __m: CASE WHEN {valid} THEN {ms} END)[1]"


def time_value(v: str, unit: str) -> tuple[str, str]:
    """``(ms, problem)`` of the JSON value ``v`` (SQL NULL: missing) as an event
    time in ``unit`` (an SQL expression: ``ms``, ``s``, ``us``, ``ns``, ``iso``)."""
    n, n_problem = json_int(v)
    jt = f"json_type({v})"
    iso = iso_ms(f"({v} ->> '$')")
    ms = (f"CASE WHEN {v} IS NULL THEN NULL WHEN {unit} = 'iso' THEN "
          f"CASE WHEN {jt} = 'VARCHAR' THEN {iso} END "
          f"ELSE {scaled_ms(n, unit)} END")
    problem = (f"CASE WHEN {v} IS NULL THEN 'is missing' "
               f"WHEN {jt} = 'NULL' THEN 'is null' "
               f"WHEN {unit} = 'iso' AND {jt} <> 'VARCHAR' THEN 'is not an ISO-8601 string' "
               f"WHEN {unit} = 'iso' AND {iso} IS NULL THEN 'is not an ISO-8601 timestamp' "
               f"WHEN {unit} <> 'iso' AND {n_problem} IS NOT NULL THEN {n_problem} "
               f"WHEN NOT {in_range(ms)} THEN 'out of range' END")
    return ms, problem


def key_part(v: str) -> tuple[str, str]:
    """``(text, problem)`` of the JSON value ``v`` (SQL NULL: missing) as a key part."""
    jt = f"json_type({v})"
    text = f"({v})::VARCHAR"
    part = (f"CASE WHEN {jt} = 'VARCHAR' THEN nullif({v} ->> '$', '') "
            f"WHEN {jt} IN ('BIGINT', 'UBIGINT', 'HUGEINT') THEN {text} "
            f"WHEN {jt} = 'DOUBLE' AND regexp_full_match({text}, '-?[0-9]+') THEN {text} END")
    problem = (f"CASE WHEN {v} IS NULL THEN 'is missing' WHEN {jt} = 'NULL' THEN 'is null' "
               f"WHEN {jt} = 'VARCHAR' AND {v} ->> '$' = '' THEN 'is empty' "
               f"WHEN {part} IS NULL THEN 'is not a string or an integer' END")
    return part, problem
