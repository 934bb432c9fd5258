"""The ``streamjoin`` command line: help, bad flags, config files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dataflows.cli import main
from dataflows.config import MIB, RunConfig, build_config
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
    # What the memory budget covers, and its default.
    words = " ".join(run_help.stdout.split())
    assert "--state-memory SIZE RocksDB's memory budget in each process: one block cache" in words
    assert "RSS is somewhat above it" in words
    assert "(default 256MiB)" in words


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--how", "outer"], "argument --how: invalid choice: 'outer'"),
        (["--upper", "30 minutes"], "invalid duration '30 minutes'"),
        (["--lower=1h", "--upper", "1m"], "--lower 1h must not exceed --upper 1m"),
        (["--upper", "30"], "--upper: invalid duration '30': a bare number has no unit; write 30s"),
        (["--snapshot-interval", "0"], "--snapshot-interval must be an integer from 1 to"),
        (["--allowed-lateness=-1s"], "--allowed-lateness must be >= 0 ms, got -1000 ms"),
        (["--processes", "0"], "--processes must be an integer from 1 to 64, got 0"),
        (["--shards", "-3"], "--shards must be an integer from 1 to 4096, got -3"),
        (["--idle-timeout", "0"], "--idle-timeout must be > 0 ms, got 0 ms"),
        (["--state-memory", "16MiB"], "--state-memory 16MiB is below the minimum of 32MiB"),
        (["--state-memory", "1.5GiB"], "--state-memory: invalid size '1.5GiB'"),
        (["--state-memory", "512MB"], "MB is ambiguous (1000 or 1024?); write 512MiB"),
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
    with pytest.raises(ConfigError, match="unknown setting 'uper'; did you mean 'upper'"):
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


def _sides(inputs: tuple[Path, Path], tmp_path: Path) -> dict[str, str]:
    left, right = inputs
    return {"left": str(left), "right": str(right), "out": str(tmp_path / "o")}


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (None, 256 * MIB),
        ("64MiB", 64 * MIB),
        ("1G", 1024 * MIB),
        ("512m", 512 * MIB),
        (str(100 * MIB), 100 * MIB),
    ],
)
def test_state_memory_flag(
    inputs: tuple[Path, Path], tmp_path: Path, given: str | None, size: int
) -> None:
    cfg = build_config({**_sides(inputs, tmp_path), "state_memory": given})
    assert cfg.state_memory_bytes == size
    # What the worker processes are started with carries it.
    assert RunConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


@pytest.mark.parametrize(
    ("text", "size"),
    [('state_memory = "1GiB"\n', 1024 * MIB), (f"state-memory = {48 * MIB}\n", 48 * MIB)],
)
def test_state_memory_in_a_config_file(
    inputs: tuple[Path, Path], tmp_path: Path, text: str, size: int
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert build_config(_sides(inputs, tmp_path), str(path)).state_memory_bytes == size
    # The flag wins over the file.
    flagged = build_config({**_sides(inputs, tmp_path), "state_memory": "2GiB"}, str(path))
    assert flagged.state_memory_bytes == 2048 * MIB


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.5", "--state-memory must be a size such as 256MiB or 1GiB, got 1.5"),
        ('"32M"', None),
        (str(32 * MIB - 1), "--state-memory 33554431 is below the minimum of 32MiB"),
        ('"2TiB"', "--state-memory 2TiB is above the maximum of 1TiB per process"),
        ('"lots"', "--state-memory: invalid size 'lots'"),
    ],
)
def test_state_memory_errors_in_a_config_file(
    inputs: tuple[Path, Path], tmp_path: Path, value: str, message: str | None
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"state_memory = {value}\n")
    if message is None:  # the minimum itself is accepted
        assert build_config(_sides(inputs, tmp_path), str(path)).state_memory_bytes == 32 * MIB
        return
    with pytest.raises(ConfigError) as info:
        build_config(_sides(inputs, tmp_path), str(path))
    assert message in str(info.value)


def test_configs_written_before_state_memory_run_with_the_default(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    old = build_config(_sides(inputs, tmp_path)).to_json()
    del old["state_memory_bytes"]  # e.g. a recovery directory's run-config.json
    assert RunConfig.from_json(old).state_memory_bytes == 256 * MIB


def _scrape_capacity(proc: subprocess.Popen[str], out: Path) -> float | None:
    """The block cache capacity process 0 of a running run exports, read from
    RocksDB by its metrics collector while its shards' stores are open."""
    endpoint = out / ".run" / "metrics-0.json"
    while proc.poll() is None:
        try:
            url = json.loads(endpoint.read_text())["url"]
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
                text = resp.read().decode()
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
            continue
        for family in text_string_to_metric_families(text):
            if family.name == "streamjoin_rocksdb_block_cache_capacity_bytes" and family.samples:
                return family.samples[0].value
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("recovery", [False, True], ids=["plain", "recovery"])
def test_a_run_uses_its_state_memory(tmp_path: Path, recovery: bool) -> None:
    left, right = tmp_path / "left.jsonl", tmp_path / "right.jsonl"
    left.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i}) + "\n" for i in range(8)))
    right.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i}) + "\n" for i in range(8)))
    out = tmp_path / "out"
    # With --recovery-dir, the recovering runtime opens the stores.
    extra = ["--recovery-dir", str(tmp_path / "recovery")] if recovery else []
    # One event per read and a delay before each: the stores stay open long enough
    # for the scrapes; no linger at the end.
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflows.cli", "run", "--left", str(left), "--right", str(right),
         "--out", str(out), "--upper", "2ms", "--shards", "2", "--state-memory", "64MiB",
         "--batch-size", "1", "--read-delay", "150ms", "--metrics-port", "0",
         "--metrics-linger", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        capacity = _scrape_capacity(proc, out)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    # The worker's RocksDB block cache had the budget's capacity ...
    assert capacity is not None, "no scrape of process 0 saw its shards' stores open"
    assert capacity == 64 * MIB
    # ... and run.json and the summary record it.
    assert json.loads((out / "run.json").read_text())["state_memory_bytes"] == 64 * MIB
    assert "RocksDB budget 64 MiB each" in stdout
    assert main(["validate", str(out)]) == 0


@pytest.mark.slow
def test_a_resumed_run_keeps_its_state_memory(tmp_path: Path) -> None:
    """Issue 10 #12: shards resumed from checkpoints (cloned stores) use the
    process's block cache, not RocksDB's 8 MiB default."""
    left, right = tmp_path / "left.jsonl", tmp_path / "right.jsonl"
    left.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i}) + "\n" for i in range(40)))
    right.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i}) + "\n" for i in range(40)))
    out, rec = tmp_path / "out", tmp_path / "recovery"
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--left", str(left), "--right", str(right),
           "--out", str(out), "--upper", "2ms", "--shards", "2", "--state-memory", "64MiB",
           "--batch-size", "1", "--read-delay", "150ms", "--metrics-port", "0",
           "--metrics-linger", "0", "--recovery-dir", str(rec), "--snapshot-interval", "100ms"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert _scrape_capacity(first, out) == 64 * MIB
        time.sleep(1.5)  # epochs of 100 ms: the shards have snapshots to resume from
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    (out / ".run" / "metrics-0.json").unlink()  # the killed run's endpoint
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        capacity = _scrape_capacity(second, out)
        stdout, stderr = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, stderr
    assert "recovery: resuming" in stdout
    assert capacity == 64 * MIB
    assert main(["validate", str(out)]) == 0


def test_a_glob_the_shell_expanded_gets_a_hint_to_quote_it(inputs: tuple[Path, Path]) -> None:
    left, right = inputs
    other = left.with_name("left-2.jsonl")
    other.write_text("")
    res = cli("run", "--left", str(left), str(other), "--right", str(right), "--out", "o")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert "unrecognized arguments" in res.stderr
    assert "quote a glob so that the shell does not expand it" in res.stderr
