"""``validate`` against runs of a pure-Python reference driver (no Bytewax,
:mod:`reference_run`): it must accept every such run and reject each kind of
corruption of its outputs with the right finding.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflows.generator import GeneratedDataset, GeneratorConfig, generate
from dataflows.outputs import read_rows
from dataflows.validate import main, validate
from dataflows.validate.expected import pair_id, row_id
from joins import Event, JoinSpec, match_id, unmatched_id
from tests.dataflows.validate import reference_run

CFG = GeneratorConfig(
    impressions=1500,
    keys=150,
    zipf_s=0.5,
    window_ms=20_000,
    disorder_ms=2_000,
    late_fraction=0.02,
    late_lag_ms=10_000,
    duplicate_fraction=0.02,
    malformed_fraction=0.003,
    partitions=2,
    rate_per_s=20.0,
)


def run_reference(data: GeneratedDataset, out: Path, spec: JoinSpec, **kw: Any) -> Path:
    """The reference driver's run of a generated dataset."""
    paths = {side: data.paths(side) for side in ("left", "right")}
    return reference_run.run_reference(paths, out, spec, fmt=data.format, **kw)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDataset:
    return generate(tmp_path_factory.mktemp("data"), CFG, progress=False)


@pytest.fixture(scope="module")
def left_run(dataset: GeneratedDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = JoinSpec(lower_ms=0, upper_ms=CFG.window_ms, how="left")
    return run_reference(dataset, tmp_path_factory.mktemp("run") / "out", spec)


@pytest.mark.parametrize("how", ["inner", "left", "right", "full"])
def test_reference_runs_validate(dataset: GeneratedDataset, tmp_path: Path, how: str) -> None:
    spec = JoinSpec(lower_ms=-1_000, upper_ms=CFG.window_ms, how=how)  # type: ignore[arg-type]
    report = validate(run_reference(dataset, tmp_path / "out", spec, seed=len(how)))
    assert report.ok, report.render()
    stats = report.stats
    assert stats["late rows"] > 0
    assert stats["invalid rows"] > 0
    assert stats["expected pairs"] > 100
    counters = json.loads((tmp_path / "out" / "run.json").read_text())["counters"]
    assert counters["left"]["duplicates"] > 0
    assert counters["right"]["duplicates"] > 0


def test_avro_output_and_csv_input_validate(tmp_path: Path) -> None:
    data = generate(tmp_path / "data", CFG, format="csv", progress=False)
    spec = JoinSpec(lower_ms=0, upper_ms=CFG.window_ms, how="full")
    out = run_reference(data, tmp_path / "out", spec, output_format="avro", batch_size=200)
    assert list((out / "joined").glob("*.avro"))
    report = validate(out)
    assert report.ok, report.render()
    assert report.stats["invalid rows"] > 0


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def _rewrite(path: Path, edit: Any) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in edit(lines)))


def test_removed_row_is_missing(left_run: Path, tmp_path: Path) -> None:
    run = _copy(left_run, tmp_path)
    _rewrite(run / "joined" / "part-0.jsonl", lambda lines: lines[:10] + lines[11:])
    report = validate(run)
    assert "missing_row" in report.problems()
    assert next(f for f in report.findings if f.problem == "missing_row").count == 1


def test_duplicated_row_is_found(left_run: Path, tmp_path: Path) -> None:
    run = _copy(left_run, tmp_path)
    _rewrite(run / "joined" / "part-0.jsonl", lambda lines: [*lines, lines[3]])
    report = validate(run)
    assert "duplicate_id" in report.problems()
    assert "missing_row" not in report.problems()


def test_dropped_late_record_is_found(left_run: Path, tmp_path: Path) -> None:
    run = _copy(left_run, tmp_path)
    _rewrite(run / "late" / "part-0.jsonl", lambda lines: lines[1:])
    report = validate(run)
    assert not report.ok
    mismatch = next(f for f in report.findings if f.problem == "counter_mismatch")
    assert any(": late = " in example for example in mismatch.examples)


def test_counter_off_by_one_is_found(left_run: Path, tmp_path: Path) -> None:
    run = _copy(left_run, tmp_path)
    meta = json.loads((run / "run.json").read_text())
    meta["counters"]["right"]["duplicates"] += 1
    (run / "run.json").write_text(json.dumps(meta))
    report = validate(run)
    assert report.problems() == {"counter_mismatch"}
    examples = report.findings[0].examples
    assert any("conservation fails by -1" in e for e in examples)
    assert main([str(run)]) == 1


def test_changed_record_content_is_found(left_run: Path, tmp_path: Path) -> None:
    run = _copy(left_run, tmp_path)

    def edit(lines: list[str]) -> list[str]:
        row = json.loads(lines[5])
        side = "left" if row["left"] is not None else "right"
        row[side]["user_id"] = "someone-else"
        return [*lines[:5], json.dumps(row), *lines[6:]]

    _rewrite(run / "joined" / "part-0.jsonl", edit)
    report = validate(run)
    assert report.problems() == {"content_differs"}


def test_foreign_late_record_and_lost_dead_letter_are_found(
    left_run: Path, tmp_path: Path
) -> None:
    run = _copy(left_run, tmp_path)

    def forge(lines: list[str]) -> list[str]:
        row = json.loads(lines[0])
        row["ts"] -= 1
        row["lateness_ms"] += 1
        return [*lines[1:], json.dumps(row)]

    _rewrite(run / "late" / "part-0.jsonl", forge)
    _rewrite(run / "invalid" / "part-0.jsonl", lambda lines: lines[1:])
    problems = validate(run).problems()
    assert {"late_not_in_input", "missing_invalid"} <= problems


def test_exact_run_exits_zero_and_unusable_dir_two(left_run: Path, tmp_path: Path) -> None:
    assert main([str(left_run)]) == 0
    assert main([str(tmp_path)]) == 2


def test_rows_read_back_from_both_formats_agree(dataset: GeneratedDataset, tmp_path: Path) -> None:
    spec = JoinSpec(upper_ms=CFG.window_ms, how="full")
    a = run_reference(dataset, tmp_path / "a", spec, output_format="jsonl")
    b = run_reference(dataset, tmp_path / "b", spec, output_format="avro")
    for kind in ("joined", "late", "invalid"):
        rows_a = sorted(json.dumps(r, sort_keys=True) for r in read_rows(a / kind))
        rows_b = sorted(json.dumps(r, sort_keys=True) for r in read_rows(b / kind))
        assert rows_a == rows_b
        assert rows_a


def test_inputs_decoded_in_a_second_process_agree(left_run: Path) -> None:
    report = validate(left_run, parallel_bytes=0)
    assert report.ok, report.render()


def test_avro_inputs_validate(tmp_path: Path) -> None:
    cfg = GeneratorConfig(**{**CFG.__dict__, "malformed_fraction": 0.0, "impressions": 500})
    data = generate(tmp_path / "data", cfg, format="avro", progress=False)
    spec = JoinSpec(upper_ms=cfg.window_ms, how="inner")
    report = validate(run_reference(data, tmp_path / "out", spec))
    assert report.ok, report.render()
    assert report.stats["expected pairs"] > 0


def test_awkward_keys_survive_the_round_trip(tmp_path: Path) -> None:
    keys = ['a,b', 'q"uote', "new\nline", "ü-ñ", "x" * 300]
    (tmp_path / "data").mkdir()
    left = "id,key,ts\n" + "".join(
        f'{i},"{k.replace(chr(34), chr(34) * 2)}",{1000 + i}\n' for i, k in enumerate(keys))
    right = "id,key,ts\n" + "".join(
        f'{i},"{k.replace(chr(34), chr(34) * 2)}",{1500 + i}\n' for i, k in enumerate(keys[:3]))
    (tmp_path / "data" / "l.csv").write_text(left)
    (tmp_path / "data" / "r.csv").write_text(right)
    data = GeneratedDataset(tmp_path / "data", "csv", (tmp_path / "data" / "l.csv",),
                            (tmp_path / "data" / "r.csv",))
    report = validate(run_reference(data, tmp_path / "out", JoinSpec(upper_ms=1000, how="full")))
    assert report.ok, report.render()
    assert report.stats["expected pairs"] == 3
    assert report.stats["joined rows"] == 5


@given(
    key=st.text(min_size=1).filter(lambda k: "\x00" not in k and k.isprintable()),
    lts=st.integers(-(2**61), 2**61),
    rts=st.integers(-(2**61), 2**61),
    leid=st.integers(-(2**63), 2**63 - 1),
    reid=st.integers(-(2**63), 2**63 - 1),
)
def test_ids_computed_by_validate_are_the_join_cores(
    key: str, lts: int, rts: int, leid: int, reid: int
) -> None:
    left = Event("left", key, lts, leid.to_bytes(8, "big", signed=True), {})
    right = Event("right", key, rts, reid.to_bytes(8, "big", signed=True), {})
    assert pair_id(key, lts, leid, rts, reid) == match_id(left, right)
    assert row_id(0, key, lts, leid) == unmatched_id(left)
    assert row_id(1, key, rts, reid) == unmatched_id(right)


def test_a_joined_row_duckdb_cannot_read_is_a_finding(left_run: Path, tmp_path: Path) -> None:
    run = _copy(left_run, tmp_path)

    def edit(lines: list[str]) -> list[str]:  # an unpaired surrogate escape: no Unicode text
        row = json.loads(lines[5])
        row["key"] = "\ud800"
        return [*lines[:5], json.dumps(row), *lines[6:]]

    _rewrite(run / "joined" / "part-0.jsonl", edit)
    report = validate(run)
    assert {"malformed_joined_row", "missing_row"} <= report.problems()
    assert main([str(run)]) == 1
