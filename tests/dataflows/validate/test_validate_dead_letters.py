"""Dead letters are compared by side, partition, offset and **exact bytes**:
``raw`` as UTF-8 text or base64 (``raw_encoding``), cut only with
``raw_truncated`` and the full length in ``raw_bytes``; the reason texts are
not compared. The run directories are the reference driver's, with their
``invalid/`` rows rewritten the way each test needs."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from dataflows.validate import validate
from joins import JoinSpec
from tests.dataflows.validate.reference_run import run_reference

LONG = b'{"key":"k","ts":1,"pad":"' + b"x" * (1 << 20) + b'"'  # 1 MiB and a bit: no '}'
BAD_UTF8 = b'{"key":"k\xff","ts":2}'
LINES = [b'{"key":"k","ts":1}', LONG, BAD_UTF8, b"[1]", b'{"key":"k","ts":3}']


@pytest.fixture
def run(tmp_path: Path) -> Path:
    left, right = tmp_path / "l.jsonl", tmp_path / "r.jsonl"
    left.write_bytes(b"\n".join(LINES) + b"\n")
    right.write_bytes(b'{"key":"k","ts":2}\n')
    return run_reference({"left": [left], "right": [right]}, tmp_path / "out",
                         JoinSpec(upper_ms=10, how="full"))


def _offset(line: bytes) -> int:
    return len(b"".join(x + b"\n" for x in LINES[: LINES.index(line)]))


def _row(line: bytes, **fields: Any) -> dict[str, Any]:
    return {"side": "left", "reason": "whatever the decoder says", "partition": "left:0:l.jsonl",
            "offset": _offset(line), **fields}


def _exact(line: bytes) -> dict[str, Any]:
    try:
        return _row(line, raw=line.decode(), raw_encoding="utf-8")
    except UnicodeDecodeError:
        return _row(line, raw=base64.b64encode(line).decode(), raw_encoding="base64")


def _write_invalid(run: Path, rows: list[dict[str, Any]]) -> set[str]:
    (run / "invalid" / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return validate(run).problems()


def _cut_long(**fields: Any) -> dict[str, Any]:
    kept = LONG[: 1 << 20]
    return _row(LONG, raw=kept.decode(), raw_encoding="utf-8", raw_truncated=True,
                raw_bytes=len(LONG), **fields)


def test_exact_bytes_validate(run: Path) -> None:
    assert _write_invalid(run, [_exact(LONG), _exact(BAD_UTF8), _exact(b"[1]")]) == set()


def test_a_cut_stated_with_the_full_length_validates(run: Path) -> None:
    assert _write_invalid(run, [_cut_long(), _exact(BAD_UTF8), _exact(b"[1]")]) == set()


@pytest.mark.parametrize("row", [
    # bytes that are not UTF-8 replaced by U+FFFD: the input cannot be recovered
    _row(BAD_UTF8, raw=BAD_UTF8.decode(errors="replace")),
    # cut without saying so (today's 10,000-character cut)
    _row(LONG, raw=LONG[:10_000].decode()),
    # cut, but the full length is wrong
    {**_cut_long(), "raw_bytes": len(LONG) - 1},
    # cut far shorter than the limit
    {**_cut_long(), "raw": "{"},
    # base64 that is not
    _row(BAD_UTF8, raw="%%%", raw_encoding="base64"),
])
def test_inexact_bytes_are_found(run: Path, row: dict[str, Any]) -> None:
    rows = [_exact(LONG), _exact(BAD_UTF8), _exact(b"[1]")]
    rows = [row if r["offset"] == row["offset"] else r for r in rows]
    assert _write_invalid(run, rows) == {"invalid_raw_differs"}


def test_a_dead_letter_at_the_wrong_place_is_missing_and_extra(run: Path) -> None:
    moved = {**_exact(b"[1]"), "offset": _offset(b"[1]") + 1}
    problems = _write_invalid(run, [_exact(LONG), _exact(BAD_UTF8), moved])
    assert {"missing_invalid", "extra_invalid"} <= problems
