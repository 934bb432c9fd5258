"""Staged input records to events and dead letters, in SQL: the tables ``e``
(valid events) and ``bad`` (the dead letters validate expects).

Every staged record (table ``r``, :mod:`dataflows.validate.staging`) becomes
exactly one row of ``e`` or of ``bad``. DuckDB parses: its JSON reader
(``json_valid``, ``json_type``, ``json_extract``) for JSON Lines and for Avro
datums (staged as JSON text), and CSV fields are split by an RFC 4180 pattern.
Keys and times come from :mod:`dataflows.validate.sql_values`, with the run's
settings from ``run.json``.

JSON Lines, as validate reads them: a record must be UTF-8 (a byte-order mark at
its start is ignored), one JSON value under RFC 8259 (so DuckDB's extensions,
trailing commas and ``NaN``/``Infinity``, are refused; so are unpaired
surrogate escapes such as ``"\\ud800"``, which are no Unicode text), and an
object. Of names that repeat in an object the last value counts (Python's
``json``), at the first name's place.

CSV: a record's values are its fields by the header's names (of names that
repeat, the last column counts); quoting as :mod:`dataflows.validate.csv_framing`
says; every value is a string.

A record's content fingerprint (``fp``) is DuckDB's ``hash`` of its JSON
normalised by ``json()``; the joined rows' records get the same treatment
(:mod:`dataflows.validate.joined`), so a record that the run changed shows.
"""

from __future__ import annotations

from typing import Any

from dataflows.validate.csv_framing import FIELD_LIMIT
from dataflows.validate.run_file import SideInputs
from dataflows.validate.sql_values import (
    in_range,
    iso_ms,
    key_part,
    lit,
    scaled_ms,
    string_int,
    time_value,
)
from dataflows.validate.staging import BROKEN

#: What the tables hold: ``e`` the valid events, ``bad`` the expected dead letters.
TABLES = (
    "CREATE TABLE e (side TINYINT, key VARCHAR, ts BIGINT, eid BIGINT, fp UBIGINT, "
    "src INTEGER, off BIGINT)",
    "CREATE TABLE bad (side TINYINT, src INTEGER, off BIGINT, problem VARCHAR, t VARCHAR, "
    "b VARCHAR, size BIGINT)",
)

_TEXT = (f"CASE WHEN kind = {BROKEN} THEN NULL WHEN t IS NOT NULL THEN t "
         "ELSE try(decode(from_base64(b))) END")
# Strings cut out, then what RFC 8259 lacks and DuckDB's reader allows.
_NO_STRINGS = r"""regexp_replace(text, '"(?:[^"\\]|\\.)*"', '""', 'g')"""
_NOT_RFC = (
    r"(regexp_matches(text, '[nN][aA][nN]|[iI][nN][fF]|,[ \t\n\r]*[\]}]') AND ("
    rf"regexp_matches({_NO_STRINGS}, ',[ \t\n\r]*[\]}}]') OR "
    rf"regexp_matches(regexp_replace({_NO_STRINGS}, 'true|false|null', '', 'g'), "
    r"'[a-df-zA-DF-Z]')))"
)
_DEDUP = (
    "'{' || array_to_string(list_transform("
    "list_filter(range(1, len(names) + 1), lambda i: list_position(names, names[i]) = i), "
    "lambda i: to_json(names[i]) || ':' || "
    "json_extract(text, '$.*')[len(names) + 1 - list_position(list_reverse(names), names[i])]"
    "), ',') || '}'"
)
_QUOTED = r'"(?:[^"]|"")*"'
_FIELD = rf'(?:{_QUOTED}|[^",\r\n][^,\r\n]*|)'
_CSV_ROW = f"{_FIELD}(?:,{_FIELD})*"
_CSV_SPLIT = (
    "CASE WHEN NOT contains(line, '\"') THEN string_split(line, ',') "
    f"ELSE list_transform(regexp_extract_all(line || ',', {lit(f'({_QUOTED}|[^,]*),')}, 1), "
    "lambda f: CASE WHEN starts_with(f, '\"') "
    "THEN replace(substr(f, 2, length(f) - 2), '\"\"', '\"') ELSE f END) END"
)


def _pointer(name: str) -> str:
    """The JSON pointer of a top-level member (RFC 6901)."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _key(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """The key from its parts, and the first problem of one (``key field #i ...``)."""
    if len(parts) == 1:
        key = parts[0][0]
    else:
        key = f"to_json(list_value({', '.join(p for p, _ in parts)}))::VARCHAR"
    problems = [f"'key field #' || {i} || ' ' || ({problem})"
                for i, (_, problem) in enumerate(parts, 1)]
    problem = (f"coalesce({', '.join(problems)}, "
               f"CASE WHEN contains({key}, chr(0)) THEN 'key contains a NUL character' END)")
    return key, problem


def _finish(db: Any, side: int, select: str, params: list[Any]) -> None:
    """Run the classifying ``select`` (columns ``src, off, eid, t, b, size, key,
    ms, fp, problem``) into ``e`` and ``bad``."""
    # All SQL here is built from this module's constants and the run's settings as
    # parameters: input text and field names never enter a statement's text.
    db.execute(f"CREATE OR REPLACE TEMP TABLE c AS {select}", params)
    db.execute(f"INSERT INTO e SELECT {side}, key, ms::BIGINT, eid, fp, src, off "  # noqa: S608
               "FROM c WHERE problem IS NULL")
    db.execute(f"INSERT INTO bad SELECT {side}, src, off, problem, t, b, size "  # noqa: S608
               "FROM c WHERE problem IS NOT NULL")
    db.execute("DROP TABLE c")


def classify_json(db: Any, side: int, src: int, inputs: SideInputs) -> None:
    """Events and dead letters of a JSON Lines or Avro input file ``src``."""
    jsonl = inputs.format == "jsonl"
    bom = "starts_with(raw_text, chr(65279))" if jsonl else "FALSE"
    not_rfc = f"WHEN {_NOT_RFC} THEN 'invalid JSON (outside RFC 8259)'" if jsonl else ""
    n_keys = len(inputs.key_fields)
    key, key_problem = _key([key_part(f"vs[{i}]") for i in range(1, n_keys + 1)])
    ms, time_problem = time_value(f"vs[{n_keys + 1}]", "unit")
    select = f"""
    WITH s AS (
      SELECT src, off, eid, kind, t, b, size, x, {_TEXT} AS raw_text FROM r WHERE src = ?
    ), s1 AS (
      SELECT *, CASE WHEN {bom} THEN substr(raw_text, 2) ELSE raw_text END AS text FROM s
    ), s2 AS (
      SELECT *, CASE WHEN kind = {BROKEN} THEN x
                     WHEN text IS NULL THEN 'invalid UTF-8'
                     WHEN NOT json_valid(text) THEN 'invalid JSON'
                     {not_rfc}
                     WHEN json_type(text) <> 'OBJECT' THEN 'record is not an object' END AS p0
      FROM s1
    ), s3 AS (
      SELECT *, CASE WHEN p0 IS NULL THEN json_keys(text) END AS names FROM s2
    ), s4 AS (
      SELECT *, CASE WHEN p0 IS NOT NULL THEN NULL
                     WHEN len(names) = len(list_distinct(names)) THEN text
                     ELSE {_DEDUP} END AS obj FROM s3
    ), s5 AS (
      SELECT *, json_extract(obj, ?::VARCHAR[]) AS vs,
             CASE WHEN kind = {BROKEN} THEN NULL ELSE coalesce(x, ?) END AS unit FROM s4
    )
    SELECT src, off, eid, t, b, size,
           {key} AS key, {ms} AS ms, hash(json(obj)) AS fp,
           coalesce(p0, {key_problem}, 'time field ' || ({time_problem})) AS problem
    FROM s5"""  # noqa: S608 - this module's constants; input text goes in as parameters
    paths = [_pointer(f) for f in (*inputs.key_fields, inputs.time_field)]
    _finish(db, side, select, [src, paths, inputs.time_unit])


def classify_csv(db: Any, side: int, src: int, inputs: SideInputs,
                 header: tuple[str, ...]) -> None:
    """Events and dead letters of a CSV input file ``src`` with columns ``header``
    (every configured field among them)."""
    last = {name: i for i, name in enumerate(header, 1)}  # of repeated names, the last
    first_order = list(dict.fromkeys(header))
    parts = [string_part(f"fs[{last[f]}]") for f in inputs.key_fields]
    key, key_problem = _key(parts)
    ms, time_problem = string_time(f"fs[{last[inputs.time_field]}]", lit(inputs.time_unit))
    record = "json_object(" + ", ".join(f"?, fs[{last[n]}]" for n in first_order) + ")"
    select = f"""
    WITH s AS (
      SELECT src, off, eid, kind, t, b, size, x, {_TEXT} AS text FROM r WHERE src = ?
    ), s1 AS (
      SELECT *, regexp_replace(text, '\\r+$', '') AS line FROM s
    ), s2 AS (
      SELECT *, CASE WHEN kind = {BROKEN} THEN x
                     WHEN text IS NULL THEN 'invalid UTF-8'
                     WHEN NOT regexp_full_match(line, {lit(_CSV_ROW)})
                     THEN 'csv: not RFC 4180 (a quote or a carriage return out of place)'
                END AS p0 FROM s1
    ), s3 AS (
      SELECT *, CASE WHEN p0 IS NULL THEN {_CSV_SPLIT} END AS fs FROM s2
    ), s4 AS (
      SELECT *, coalesce(p0, CASE
          WHEN len(fs) <> {len(header)} THEN 'csv: ' || len(fs) || ' columns, not {len(header)}'
          WHEN length(line) > {FIELD_LIMIT}
               AND list_max(list_transform(fs, lambda f: length(f))) > {FIELD_LIMIT}
          THEN 'csv: a field is larger than {FIELD_LIMIT} characters' END) AS p1
      FROM s3
    ), s5 AS (
      SELECT * REPLACE (CASE WHEN p1 IS NULL THEN fs END AS fs) FROM s4
    )
    SELECT src, off, eid, t, b, size, {key} AS key, {ms} AS ms,
           hash(json({record})) AS fp,
           coalesce(p1, {key_problem}, 'time field ' || ({time_problem})) AS problem
    FROM s5"""  # noqa: S608 - this module's constants; input text goes in as parameters
    _finish(db, side, select, [src, *first_order])


def string_part(s: str) -> tuple[str, str]:
    """``(text, problem)`` of a CSV value ``s`` as a key part: a non-empty string."""
    return f"nullif({s}, '')", f"CASE WHEN {s} = '' THEN 'is empty' END"


def string_time(s: str, unit: str) -> tuple[str, str]:
    """``(ms, problem)`` of a CSV value ``s`` as an event time in ``unit``."""
    n, n_problem = string_int(s)
    iso = iso_ms(s)
    ms = f"CASE WHEN {unit} = 'iso' THEN {iso} ELSE {scaled_ms(n, unit)} END"
    problem = (f"CASE WHEN {unit} = 'iso' AND {iso} IS NULL "
               f"THEN 'is not an ISO-8601 timestamp' "
               f"WHEN {unit} <> 'iso' AND {n_problem} IS NOT NULL THEN {n_problem} "
               f"WHEN NOT {in_range(ms)} THEN 'out of range' END")
    return ms, problem
