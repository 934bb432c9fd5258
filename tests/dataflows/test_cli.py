"""The ``streamjoin`` command line: help, bad flags, config files."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dataflows.cli import main
from dataflows.config import build_config
from dataflows.errors import ConfigError


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    left = tmp_path / "left.jsonl"
    right = tmp_path / "right.jsonl"
    left.write_text("".join(json.dumps({"key": "a", "ts": i}) + "\n" for i in range(5)))
    right.write_text("".join(json.dumps({"key": "a", "ts": i + 1}) + "\n" for i in range(5)))
    return left, right


def test_help_has_examples() -> None:
    res = cli("--help")
    assert res.returncode == 0
    assert "streamjoin demo --out demo-out" in res.stdout
    run_help = cli("run", "--help")
    assert run_help.returncode == 0
    for flag in ("--left", "--right", "--how", "--upper", "--max-out-of-orderness",
                 "--idle-timeout", "--processes", "--state-dir", "--shards", "--config"):
        assert flag in run_help.stdout
    assert "examples:" in run_help.stdout


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--how", "outer"], "argument --how: invalid choice: 'outer'"),
        (["--upper", "30 minutes"], "invalid duration '30 minutes'"),
        (["--lower=1h", "--upper", "1m"], "lower_ms (3600000 ms) must not exceed upper_ms"),
        (["--processes", "0"], "--processes must be an integer from 1 to 64, got 0"),
        (["--shards", "-3"], "--shards must be an integer from 1 to 4096, got -3"),
        (["--idle-timeout", "0"], "idle_timeout_ms must be > 0 ms, got 0 ms"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    inputs: tuple[Path, Path], tmp_path: Path, flags: list[str], expected: str
) -> None:
    left, right = inputs
    res = cli("run", "--left", str(left), "--right", str(right), "--out", str(tmp_path / "o"),
              *flags)  # fmt: skip
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1, res.stderr
    assert expected in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    res = cli("run", "--left", str(tmp_path / "nope*.jsonl"), "--right", "x", "--out", "o")
    assert res.returncode == 2
    assert "--left" in res.stderr
    assert "nope*.jsonl" in res.stderr
    res = cli("run", "--out", str(tmp_path))
    assert res.returncode == 2
    assert "--left is required" in res.stderr


def _listening_above_a_free_port() -> socket.socket:
    """A socket listening on loopback port ``q`` such that ``q - 1`` is free."""
    for _ in range(50):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", taken.getsockname()[1] - 1))
        except OSError:
            taken.close()
            continue
        return taken
    pytest.fail("no free port below an ephemeral one in 50 attempts")


def test_a_taken_metrics_port_fails_before_any_worker_starts(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    out = tmp_path / "out"
    with _listening_above_a_free_port() as taken:
        port = taken.getsockname()[1]
        # Process 0 would serve on port - 1 (free), process 1 on port (taken).
        res = cli("run", "--left", str(left), "--right", str(right), "--out", str(out),
                  "--processes", "2", "--metrics-port", str(port - 1))  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"streamjoin run: error: --metrics-port {port - 1}: ")
    assert f"process 1 cannot serve metrics on 127.0.0.1:{port} (" in res.stderr
    assert "Traceback" not in res.stderr
    # No process started: no endpoint, no output, not even the output directory.
    assert not out.exists()


@pytest.mark.parametrize("suffix", ["toml", "json"])
def test_config_file_with_flag_overrides(
    inputs: tuple[Path, Path], tmp_path: Path, suffix: str
) -> None:
    left, right = inputs
    values = {"left": str(left), "right": str(right), "how": "full", "upper": "10m",
              "max-out-of-orderness": "2s", "out": str(tmp_path / "o"), "shards": 8}  # fmt: skip
    path = tmp_path / f"join.{suffix}"
    if suffix == "json":
        path.write_text(json.dumps(values))
    else:
        path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    cfg = build_config({"upper": "1m", "processes": 2}, str(path))
    assert cfg.spec.how == "full"
    assert cfg.spec.upper_ms == 60_000  # the flag wins
    assert cfg.spec.max_out_of_orderness_ms == 2_000
    assert cfg.processes == 2
    assert cfg.shards == 8
    assert cfg.left.paths == (str(left),)
    assert cfg.left.partition_names() == ("left:0:left.jsonl",)


def test_config_file_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('uper = "1m"\n')
    with pytest.raises(ConfigError, match="unknown key 'uper'"):
        build_config({}, str(path))


def test_run_then_validate_in_process(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    left, right = inputs
    out = tmp_path / "out"
    assert main(["run", "--left", str(left), "--right", str(right), "--out", str(out),
                 "--upper", "2ms", "--shards", "2"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "matched pairs" in printed
    assert "events/s" in printed
    assert main(["validate", str(out)]) == 0
