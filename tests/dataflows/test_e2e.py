"""End to end through the real CLI and real processes: generate, run, validate.

Every join type, with one process and with two cooperating Bytewax processes,
on generated data with disorder, late events, duplicates and malformed
records; ``streamjoin validate`` must report an exact match.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dataflows.generator import GeneratorConfig, generate
from dataflows.hotpath import COMPILED_MODULES, hot_path
from dataflows.outputs import read_rows

HOWS = ["inner", "left", "right", "full"]


def streamjoin(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    generate(
        out,
        GeneratorConfig(
            impressions=3_000,
            keys=500,
            seed=11,
            partitions=2,
            rate_per_s=20.0,
            window_ms=60_000,
            disorder_ms=2_000,
            late_fraction=0.01,
            duplicate_fraction=0.01,
            malformed_fraction=0.005,
        ),
        format="jsonl",
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def right_dir(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # --right as a directory: the plays files only.
    d = tmp_path_factory.mktemp("plays")
    for p in sorted(dataset.glob("plays-*.jsonl")):
        (d / p.name).write_bytes(p.read_bytes())
    return d


@pytest.mark.parametrize("how", HOWS)
def test_one_process_is_exact(dataset: Path, right_dir: Path, tmp_path: Path, how: str) -> None:
    summary = run_and_validate_dirs(dataset, right_dir, tmp_path / "out", how, 1)
    counters = summary["counters"]
    assert isinstance(counters, dict)
    assert counters["left"]["late"] + counters["right"]["late"] > 0
    assert counters["left"]["duplicates"] + counters["right"]["duplicates"] > 0
    assert counters["invalid"]["left"] + counters["invalid"]["right"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("how", HOWS)
def test_two_processes_are_exact(
    dataset: Path, right_dir: Path, tmp_path: Path, how: str
) -> None:
    summary = run_and_validate_dirs(dataset, right_dir, tmp_path / "out", how, 2)
    assert summary["processes"] == 2
    assert summary["shards_reported"] == 16


def run_and_validate_dirs(
    dataset: Path, right_dir: Path, out: Path, how: str, processes: int
) -> dict[str, object]:
    return run_and_validate_paths(
        str(dataset / "impressions-*.jsonl"), str(right_dir), out, how, processes
    )


def run_and_validate_paths(
    left: str, right: str, out: Path, how: str, processes: int
) -> dict[str, object]:
    res = streamjoin(
        "run",
        "--left", left,
        "--right", right,
        "--how", how,
        "--upper", "1m",
        "--lower=-10s",
        "--processes", str(processes),
        "--shards", "16",
        "--batch-size", "50",  # small reads interleave the partitions: some events are late
        "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "matched pairs" in res.stdout
    check = streamjoin("validate", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK" in check.stdout
    summary: dict[str, object] = json.loads((out / "run.json").read_text())
    return summary


MALFORMED = {
    "invalid JSON": '{"key": "k1", "ts": 5',
    "missing field 'ts'": '{"key": "k1"}',
    "ts is not an integer": '{"key": "k1", "ts": "abc"}',
    "missing field 'key'": '{"ts": 5}',
    "not an object": "[1, 2, 3]",
}


def test_malformed_input_lands_in_invalid_with_its_reason(tmp_path: Path) -> None:
    left = tmp_path / "left.jsonl"
    right = tmp_path / "right.jsonl"
    good_left = [json.dumps({"key": f"k{i % 3}", "ts": i * 1000, "i": i}) for i in range(30)]
    good_right = [json.dumps({"key": f"k{i % 3}", "ts": i * 1000 + 500}) for i in range(30)]
    left.write_text("\n".join(good_left[:10] + list(MALFORMED.values()) + good_left[10:]) + "\n")
    right.write_text("\n".join([*good_right, MALFORMED["missing field 'ts'"]]) + "\n")
    out = tmp_path / "out"
    res = streamjoin(
        "run", "--left", str(left), "--right", str(right), "--upper", "2s", "--how", "full",
        "--shards", "4", "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = list(read_rows(out / "invalid"))
    left_rows = {r["raw"]: r for r in rows if r["side"] == "left"}
    assert set(left_rows) == set(MALFORMED.values())
    for reason, raw in MALFORMED.items():
        got = left_rows[raw]["reason"]
        assert got.startswith(reason.split(":")[0]) or reason in got, (reason, got)
        assert left_rows[raw]["partition"] == "left:0:left.jsonl"
    assert [r["raw"] for r in rows if r["side"] == "right"] == [MALFORMED["missing field 'ts'"]]
    summary = json.loads((out / "run.json").read_text())
    assert summary["counters"]["invalid"] == {"left": len(MALFORMED), "right": 1}
    check = streamjoin("validate", str(out))
    assert check.returncode == 0, check.stdout + check.stderr


def test_run_json_has_the_documented_shape(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = streamjoin(
        "run", "--left", str(dataset / "impressions-000.jsonl"),
        "--right", str(dataset / "plays-000.jsonl"), "--out", str(out), "--shards", "8",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    s = json.loads((out / "run.json").read_text())
    assert s["version"] == 1
    assert set(s["spec"]) == {
        "lower_ms", "upper_ms", "how", "max_out_of_orderness_ms", "allowed_lateness_ms",
        "idle_timeout_ms",
    }  # fmt: skip
    assert s["spec"]["upper_ms"] == 30 * 60 * 1000
    assert s["inputs"]["left"]["paths"] == [str(dataset / "impressions-000.jsonl")]
    assert set(s["inputs"]["right"]) == {"paths", "format", "key_fields", "time_field", "time_unit"}
    assert s["output_format"] == "jsonl"
    side_keys = {
        "events_in", "late", "duplicates", "stored", "evicted_matched", "unmatched_emitted",
        "unmatched_dropped", "retained",
    }  # fmt: skip
    assert set(s["counters"]["left"]) == side_keys == set(s["counters"]["right"])
    assert set(s["counters"]["invalid"]) == {"left", "right"}
    for key in ("processes", "workers_per_process", "shards", "elapsed_s", "events_per_s",
                "peak_state_bytes"):
        assert key in s
    assert s["shards"] == 8
    assert s["peak_state_bytes"] > 0
    # how the hot path ran: compiled in the suite (tests/dataflows/hotpath)
    assert s["hot_path"] == hot_path().to_json()
    assert set(s["hot_path"]) == {"compiled", "modules", "pure", "stale"}
    assert s["hot_path"]["modules"] == len(COMPILED_MODULES)
    if s["hot_path"]["compiled"]:
        assert f"hot path       compiled (mypyc), {len(COMPILED_MODULES)} modules" in res.stdout


def test_csv_input_and_avro_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(
        data,
        GeneratorConfig(impressions=800, keys=100, seed=5, rate_per_s=10.0, window_ms=30_000,
                        late_fraction=0.02, malformed_fraction=0.01),
        format="csv",
        progress=False,
    )  # fmt: skip
    out = tmp_path / "out"
    res = streamjoin(
        "run", "--left", str(data / "impressions.csv"), "--right", str(data / "plays.csv"),
        "--format", "csv", "--output-format", "avro", "--how", "full", "--upper", "30s",
        "--batch-size", "40", "--shards", "4", "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(p.suffix for p in (out / "joined").iterdir()) == [".avro"] * 4
    check = streamjoin("validate", str(out))
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_two_processes_with_two_workers_each(
    dataset: Path, right_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = streamjoin(
        "run", "--left", str(dataset / "impressions-*.jsonl"), "--right", str(right_dir),
        "--how", "full", "--upper", "1m", "--processes", "2", "--workers-per-process", "2",
        "--shards", "16", "--batch-size", "50", "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    check = streamjoin("validate", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
