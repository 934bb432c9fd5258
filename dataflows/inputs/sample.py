"""Checks of a side's input files before a run starts its workers.

- :func:`check_csv_headers`: every CSV file's header (UTF-8, each column named
  once, the key and time fields present). One bad header in a directory of
  inputs stops the run before anything is written, naming the file and the
  setting to change, instead of failing a worker half-way through.
- :func:`implausible_times`: the first records of the side's files, decoded as
  the run will decode them. Event times that fall outside the years
  1990-2100 usually mean a wrong ``--time-unit`` (seconds read as
  milliseconds are in January 1970; milliseconds read as seconds are tens of
  thousands of years away). The run warns, naming the side, the field, the
  unit and an example, and goes on: such times may be what the data holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from dataflows.errors import InputError
from dataflows.inputs.batches import read_batches
from dataflows.inputs.csv_format import csv_header
from dataflows.inputs.source_format import SourceFormat
from joins import Event, Side

#: Event times are plausible from 1990-01-01 to 2100-01-01 (UTC), in epoch ms.
PLAUSIBLE_MS = (631_152_000_000, 4_102_444_800_000)
PLAUSIBLE_YEARS = "1990-2100"
#: Records sampled per file, and files sampled per side.
SAMPLE_RECORDS = 200
SAMPLE_FILES = 8


def check_csv_headers(side: Side, paths: Sequence[str], fmt: SourceFormat) -> None:
    """Raise :class:`~dataflows.errors.InputError` for the first CSV file of
    ``paths`` whose header the run could not use (no-op for other formats)."""
    if fmt.format != "csv":
        return
    for path in paths:
        try:
            with open(path, "rb") as handle:
                csv_header(handle, path, fmt, side)
        except OSError as exc:
            if isinstance(exc, InputError):
                raise
            msg = f"cannot read input {path!r}: {exc.strerror or exc}"
            raise InputError(msg) from exc


def _when(ms: int) -> str:
    try:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
    except OverflowError:
        years = ms / (365.2425 * 86_400_000)
        return f"about {years:+,.0f} years from 1970"


def implausible_times(
    side: Side, paths: Sequence[str], fmt: SourceFormat, sample: int = SAMPLE_RECORDS
) -> str | None:
    """A warning if event times sampled from ``paths`` fall outside
    :data:`PLAUSIBLE_YEARS`, else ``None`` (see the module docstring)."""
    seen = 0
    odd: list[tuple[Event, str]] = []
    lo, hi = PLAUSIBLE_MS
    for path in paths[:SAMPLE_FILES]:
        try:
            batches = read_batches(path, side, fmt, f"{side}:sample", batch_size=sample)
            first = next(iter(batches), ([], 0))[0]
        except (InputError, OSError):
            continue  # the run reports unreadable inputs itself
        for item in first:
            if type(item) is not Event:
                continue
            seen += 1
            if not lo <= item.ts < hi:
                odd.append((item, path))
    if not odd:
        return None
    event, path = odd[0]
    raw = event.record.get(fmt.time_field) if isinstance(event.record, dict) else None
    unit = f"--{side}-time-unit {fmt.time_unit}"
    return (
        f"{side} input: {len(odd)} of {seen} sampled event times fall outside the years "
        f"{PLAUSIBLE_YEARS}; e.g. field {fmt.time_field!r} = {raw!r} in {path} read with "
        f"{unit} is {_when(event.ts)}. Is {unit} right? (ms, s, us or iso)"
    )
