"""A decoder bug shows as a mismatch: validate reads the inputs by itself, so a
run whose decoder loses, invents or misreads records fails validation.

The runs here are the reference driver's (:mod:`reference_run`) with a
deliberate decoder bug put between the real decoder and the join; one test runs
the real CLI with the bug patched into its worker processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataflows.generator import GeneratedDataset, GeneratorConfig, generate
from dataflows.inputs import Invalid
from dataflows.validate import validate
from joins import Event, JoinSpec
from tests.dataflows.validate.reference_run import run_reference

CFG = GeneratorConfig(impressions=600, keys=60, window_ms=20_000, disorder_ms=2_000,
                      late_fraction=0.01, duplicate_fraction=0.01, malformed_fraction=0.005,
                      rate_per_s=20.0)
SPEC = JoinSpec(lower_ms=0, upper_ms=CFG.window_ms, how="full")
Item = Event | Invalid


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDataset:
    return generate(tmp_path_factory.mktemp("data"), CFG, progress=False)


def _run(data: GeneratedDataset, out: Path, alter: Callable[[list[Item]], list[Item]] | None,
         ) -> set[str]:
    paths = {side: data.paths(side) for side in ("left", "right")}
    report = validate(run_reference(paths, out, SPEC, alter=alter))
    return report.problems()


def _events(change: Callable[[Event], Event | None]) -> Callable[[list[Item]], list[Item]]:
    """A bug that changes every 50th event of the right side (None: loses it)."""
    def alter(items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            if isinstance(item, Event) and item.side == "right" and item.offset % 50 == 0:
                changed = change(item)
                if changed is not None:
                    out.append(changed)
            else:
                out.append(item)
        return out
    return alter


def _with(e: Event, **kw: Any) -> Event:
    fields = {"side": e.side, "key": e.key, "ts": e.ts, "eid": e.eid, "record": e.record,
              "partition": e.partition, "offset": e.offset, **kw}
    return Event(**fields)


def test_the_reference_run_itself_is_exact(dataset: GeneratedDataset, tmp_path: Path) -> None:
    assert _run(dataset, tmp_path / "out", None) == set()


@pytest.mark.parametrize(("bug", "change"), [
    ("wrong key", lambda e: _with(e, key=e.key + "x")),
    ("time off by 1 ms", lambda e: _with(e, ts=e.ts + 1)),
    ("lost event", lambda e: None),
    ("record changed", lambda e: _with(e, record={**e.record, "title_id": "?"})),
])
def test_an_event_bug_is_caught(dataset: GeneratedDataset, tmp_path: Path, bug: str,
                                change: Callable[[Event], Event | None]) -> None:
    problems = _run(dataset, tmp_path / "out", _events(change))
    assert problems, bug
    if bug == "record changed":
        assert problems == {"content_differs"}
    else:
        assert "counter_mismatch" in problems or "missing_row" in problems


def test_a_vanished_record_is_caught(tmp_path: Path) -> None:
    """Today's decoder lets a JSON Lines ``null`` vanish: neither event nor dead
    letter. A run that loses it (here: whatever the decoder made of it) fails."""
    left, right = tmp_path / "l.jsonl", tmp_path / "r.jsonl"
    left.write_text('{"key":"k","ts":1}\nnull\n{"key":"k","ts":2}\n')
    right.write_text('{"key":"k","ts":1}\n')

    def alter(items: list[Item]) -> list[Item]:
        return [i for i in items if not (isinstance(i, Invalid) and i.raw in ("null", b"null"))]

    out = run_reference({"left": [left], "right": [right]}, tmp_path / "out",
                        JoinSpec(upper_ms=10, how="full"), alter=alter)
    report = validate(out)
    assert {"missing_invalid", "counter_mismatch"} <= report.problems(), report.render()
    missing = next(f for f in report.findings if f.problem == "missing_invalid")
    assert "left:0:l.jsonl offset 19: record is not an object" in missing.examples[0]


def test_an_invented_event_is_caught(dataset: GeneratedDataset, tmp_path: Path) -> None:
    def alter(items: list[Item]) -> list[Item]:  # a lenient decoder: a dead letter joins
        return [Event(i.side, "u1:t1", 1_700_000_000_000, b"\x00" * 8, {"key": "u1:t1"},
                      i.partition, i.offset) if isinstance(i, Invalid) else i for i in items]

    problems = _run(dataset, tmp_path / "out", alter)
    assert {"missing_invalid", "extra_row"} <= problems


def _pipe_key(parts: list[str]) -> str:
    return "|".join(parts)


def _json_key(parts: list[str]) -> str:
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def _composite_inputs(tmp_path: Path) -> dict[str, list[Path]]:
    left, right = tmp_path / "l.jsonl", tmp_path / "r.jsonl"
    left.write_text(json.dumps({"a": "x|y", "b": "z", "ts": 1000}) + "\n"
                    + json.dumps({"a": 7, "b": "q", "ts": 1000}) + "\n")
    right.write_text(json.dumps({"a": "x", "b": "y|z", "ts": 1500}) + "\n"
                     + json.dumps({"a": "7", "b": "q", "ts": 1500}) + "\n")
    return {"left": [left], "right": [right]}


def _rekey(encode: Callable[[list[str]], str]) -> Callable[[list[Item]], list[Item]]:
    def alter(items: list[Item]) -> list[Item]:
        return [_with(i, key=encode([str(i.record["a"]), str(i.record["b"])]))
                if isinstance(i, Event) else i for i in items]
    return alter


@pytest.mark.parametrize(("encode", "exact"), [(_pipe_key, False), (_json_key, True)])
def test_composite_keys_must_be_unambiguous(tmp_path: Path, encode: Callable[[list[str]], str],
                                            exact: bool) -> None:
    """Today's ``|``-joined key pairs ("x|y", "z") with ("x", "y|z"): validate
    refuses that run, and accepts the JSON-array key (where 7 and "7" join)."""
    out = run_reference(_composite_inputs(tmp_path), tmp_path / "out",
                        JoinSpec(upper_ms=1000, how="full"), key_fields=("a", "b"),
                        alter=_rekey(encode))
    report = validate(out)
    assert report.ok is exact, report.render()
    assert report.stats["expected pairs"] == 1  # only 7/"7" + "q"
    if not exact:
        assert {"extra_row", "missing_row"} <= report.problems()


#: Put into the worker processes by ``PYTHONPATH``: the run's decoder gets a
#: composite key joined by ``|`` (today's ambiguous key), whatever it does itself.
_SITECUSTOMIZE = '''
import json, os
import dataflows.inputs
import dataflows.sources.files as files
from joins import Event

_read = dataflows.inputs.read_batches
_sep = os.environ["STREAMJOIN_TEST_KEY_SEPARATOR"]

def read_batches(*args, **kwargs):
    for batch, pos in _read(*args, **kwargs):
        yield [Event(e.side, _sep.join([str(e.record["a"]), str(e.record["b"])]), e.ts, e.eid,
                     e.record, e.partition, e.offset) if isinstance(e, Event) else e
               for e in batch], pos

files.read_batches = read_batches
'''


@pytest.mark.slow
def test_the_cli_run_with_an_ambiguous_key_fails_validation(tmp_path: Path) -> None:
    inputs = _composite_inputs(tmp_path)
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(patch), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "STREAMJOIN_TEST_KEY_SEPARATOR": "|"}
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "dataflows.cli"]
    run = subprocess.run(
        [*cli, "run", "--left", str(inputs["left"][0]), "--right", str(inputs["right"][0]),
         "--key-field", "a,b", "--upper", "1s", "--how", "full", "--shards", "2",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=180, check=False)
    assert run.returncode == 0, run.stderr
    joined = [json.loads(line) for p in (out / "joined").glob("*.jsonl")
              for line in p.read_text().splitlines()]
    assert any(r["key"] == "x|y|z" and r["kind"] == "match" for r in joined)  # the bug joined
    check = subprocess.run([*cli, "validate", str(out)], capture_output=True, text=True,
                           timeout=180, check=False)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "PROBLEM extra_row" in check.stdout
    assert "PROBLEM missing_row" in check.stdout
