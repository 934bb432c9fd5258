"""Where settings come from: flag > env ``STREAMJOIN_*`` > config file > default,
shown by ``streamjoin run --print-config``; per-side input settings; the format
by extension; paths in a config file relative to the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataflows.config import build_config, resolve
from dataflows.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> (
    subprocess.CompletedProcess[str]
):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMJOIN_")}
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *args],
        capture_output=True, text=True, check=False, cwd=cwd or REPO,
        env={**clean, "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip


def _printed(res: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """``name -> (value text, origin)`` of a ``--print-config`` output."""
    assert res.returncode == 0, res.stderr
    rows = {}
    for line in res.stdout.splitlines():
        if line.startswith("#"):
            continue
        setting, origin = line.split(" # ", 1)
        name, value = setting.split(" = ", 1)
        rows[name.strip()] = (value.strip(), origin.strip())
    return rows


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    left, right = tmp_path / "l.jsonl", tmp_path / "r.jsonl"
    left.write_text('{"key": "k", "ts": 1}\n')
    right.write_text('{"key": "k", "ts": 2}\n')
    return left, right


def test_each_source_in_turn_and_the_order_between_them(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = files
    conf = tmp_path / "join.toml"
    conf.write_text('upper = "1h"\nshards = 8\nhow = "full"\n')
    base = ("run", "--left", str(left), "--right", str(right), "--out", str(tmp_path / "o"),
            "--print-config", "--config", str(conf))  # fmt: skip
    env = {"STREAMJOIN_UPPER": "2h", "STREAMJOIN_SHARDS": "16"}
    got = _printed(_cli(*base, "--upper", "3h", env=env))
    assert got["upper"] == ('"3h"', "flag --upper")
    assert got["shards"] == ("16", "env STREAMJOIN_SHARDS")
    assert got["how"] == ('"full"', f"file {os.path.relpath(conf, REPO)}")
    assert got["idle_timeout"] == ('"30s"', "default")
    assert _printed(_cli(*base, env=env))["upper"] == ('"2h"', "env STREAMJOIN_UPPER")
    assert _printed(_cli(*base))["upper"][1].startswith("file ")
    no_file = [a for a in base if a not in ("--config", str(conf))]
    assert _printed(_cli(*no_file))["upper"] == ('"30m"', "default")
    # STREAMJOIN_CONFIG names the file when --config does not
    by_env = _printed(_cli(*no_file, env={"STREAMJOIN_CONFIG": str(conf)}))
    assert by_env["upper"][0] == '"1h"'


def test_a_mistyped_variable_is_named_with_a_guess(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = files
    res = _cli("run", "--left", str(left), "--right", str(right), "--out", str(tmp_path / "o"),
               "--print-config", env={"STREAMJOIN_UPPR": "1h"})  # fmt: skip
    assert res.returncode == 0
    assert "ignoring STREAMJOIN_UPPR: no such setting; did you mean STREAMJOIN_UPPER?" in res.stderr


def test_the_printed_config_reads_back_as_the_same_run(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = files
    res = _cli("run", "--left", str(left), "--right", str(right), "--out", str(tmp_path / "o"),
               "--upper", "90m", "--state-memory", "64MiB", "--left-key-field", "a,b",
               "--print-config")  # fmt: skip
    saved = tmp_path / "saved.toml"
    saved.write_text(res.stdout)
    again = build_config({}, str(saved), environ={})
    direct = build_config({"left": str(left), "right": str(right), "out": str(tmp_path / "o"),
                           "upper": "90m", "state_memory": "64MiB", "left_key_field": "a,b"},
                          environ={})  # fmt: skip
    assert again == direct


def test_paths_in_a_config_file_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    (sub / "data").mkdir(parents=True)
    (sub / "data" / "l.jsonl").write_text("")
    (sub / "data" / "r.jsonl").write_text("")
    conf = sub / "join.toml"
    conf.write_text('left = "data/l.jsonl"\nright = ["data/r.jsonl"]\nout = "out"\n')
    cfg = build_config({}, str(conf), environ={})
    assert cfg.left.paths == (str(sub / "data" / "l.jsonl"),)
    assert cfg.right.paths == (str(sub / "data" / "r.jsonl"),)
    assert cfg.out_dir == str(sub / "out")


def test_the_format_comes_from_the_extension_unless_set(tmp_path: Path) -> None:
    left, right = tmp_path / "l.csv", tmp_path / "r.ndjson"
    left.write_text("key,ts\n")
    right.write_text("")
    base = {"left": str(left), "right": str(right), "out": str(tmp_path / "o")}
    cfg = build_config(base, environ={})
    assert (cfg.left.format, cfg.right.format) == ("csv", "jsonl")
    forced = build_config({**base, "right_format": "avro"}, environ={})
    assert forced.right.format == "avro"
    other = tmp_path / "r.avro"
    other.write_text("")
    with pytest.raises(ConfigError, match="--right mixes input formats by extension"):
        build_config({**base, "right": [str(right), str(other)]}, environ={})


def test_a_side_setting_wins_unless_the_shared_one_comes_from_a_higher_source(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = files
    conf = tmp_path / "c.toml"
    conf.write_text('left_key_field = "user"\nkey_field = "id"\n')
    base = {"left": str(left), "right": str(right), "out": str(tmp_path / "o")}
    cfg = build_config(base, str(conf), environ={})
    assert (cfg.left.key_fields, cfg.right.key_fields) == (("user",), ("id",))
    flagged = build_config({**base, "key_field": "k"}, str(conf), environ={})
    assert flagged.left.key_fields == ("k",)
    resolved, _ = resolve({**base, "key_field": "k", "left_key_field": "u"}, environ={})
    assert resolved["left_key_field"].origin == "flag --left-key-field"


def test_config_file_durations_need_units_too(files: tuple[Path, Path], tmp_path: Path) -> None:
    left, right = files
    conf = tmp_path / "c.toml"
    conf.write_text("upper = 1800000\n")
    with pytest.raises(ConfigError, match="--upper: invalid duration '1800000': a bare number"):
        build_config({"left": str(left), "right": str(right), "out": "o"}, str(conf), environ={})


@pytest.mark.slow
def test_two_inputs_with_different_schemas_join_exactly(tmp_path: Path) -> None:
    """Left: CSV, key in ``user``, time in seconds in ``shown_at``; right: JSON
    Lines, key in ``uid``, time in ms in ``t``; set per side, validated exactly."""
    left, right = tmp_path / "shown.csv", tmp_path / "played.jsonl"
    base_s = 1_700_000_000
    rows = ["user,title,shown_at"]
    plays = []
    for i in range(300):
        user = f"u{i % 37}"
        rows.append(f"{user},t{i % 11},{base_s + i * 7}")
        if i % 3 == 0:
            plays.append(json.dumps({"uid": user, "t": (base_s + i * 7) * 1000 + 60_000}))
    left.write_text("\n".join(rows) + "\n")
    right.write_text("\n".join(plays) + "\n")
    out = tmp_path / "out"
    args = ("run", "--left", str(left), "--right", str(right), "--out", str(out),
            "--left-key-field", "user", "--left-time-field", "shown_at", "--left-time-unit", "s",
            "--right-key-field", "uid", "--right-time-field", "t", "--upper", "5m",
            "--metrics-port", "0", "--metrics-linger", "0")  # fmt: skip
    shown = _printed(_cli(*args, "--print-config"))
    assert shown["left_format"] == ('"csv"', "extension .csv")
    assert shown["right_format"] == ('"jsonl"', "extension .jsonl")
    assert shown["left_time_unit"] == ('"s"', "flag --left-time-unit")
    assert shown["right_time_unit"] == ('"ms"', "default")
    res = _cli(*args)
    assert res.returncode == 0, res.stderr
    counters = json.loads((out / "run.json").read_text())["counters"]
    assert counters["pairs"] > 0
    assert counters["invalid"] == {"left": 0, "right": 0}
    check = _cli("validate", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
