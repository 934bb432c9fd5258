"""``--out DIR`` never loses what the project did not write (issue 10, item 9),
through the real CLI.

A non-empty directory that holds no run, or a run of another configuration,
is refused before anything is written; a run of the same configuration is
replaced file by file, and files the project would not have written are left
alone (at the top) or refused (inside ``joined/``, ``late/``, ``invalid/``,
where they would be read as output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *args],
        capture_output=True, text=True, timeout=180, check=False, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    left, right = tmp_path / "left.jsonl", tmp_path / "right.jsonl"
    left.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i * 10}) + "\n"
                            for i in range(30)))
    right.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i * 10 + 5}) + "\n"
                             for i in range(30)))
    return left, right


def _run(left: Path, right: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("run", "--left", str(left), "--right", str(right), "--out", str(out),
               "--shards", "2", "--metrics-port", "0", "--metrics-linger", "0", *extra)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_directory_that_holds_no_run_is_refused_untouched(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    out = tmp_path / "out"
    # The names a run writes, but written by the user: not a run's directory.
    for kind in ("joined", "late", "invalid"):
        (out / kind).mkdir(parents=True)
        (out / kind / "kept.txt").write_text(f"my {kind}\n")
    (out / "run.json").write_text("{}\n")
    before = _tree(out)
    res = _run(left, right, out)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert (f"--out {out} is not empty (invalid, joined, late, ...) and holds no streamjoin "
            "run (no .run/config.json): give a new or empty directory") in res.stderr
    assert _tree(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["invalid", "joined", "late", "run.json"]


def test_a_run_of_the_same_configuration_is_replaced_and_nothing_else(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    out = tmp_path / "out"
    assert _run(left, right, out).returncode == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "mine").mkdir()
    (out / "mine" / "a.jsonl").write_text("{}\n")
    assert _run(left, right, out, "--processes", "2").returncode == 0  # not an output setting
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "mine" / "a.jsonl").read_text() == "{}\n"
    assert json.loads((out / "run.json").read_text())["processes"] == 2
    assert cli("validate", str(out)).returncode == 0
    # A file of the user's where the run writes its outputs: refused, kept.
    (out / "joined" / "notes.txt").write_text("mine too\n")
    before = _tree(out)
    res = _run(left, right, out)
    assert res.returncode == 2, res.stderr
    assert (f"--out {out} holds files streamjoin did not write where it writes its outputs "
            f"({out / 'joined' / 'notes.txt'}): move them away") in res.stderr
    assert _tree(out) == before


def test_a_run_of_another_configuration_is_refused_untouched(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    out = tmp_path / "out"
    assert _run(left, right, out).returncode == 0
    before = _tree(out)
    for flags, named in ((["--upper", "1h"], "--upper was 30m, now 1h"),
                         (["--key-field", "ts"], "--key-field was key, now ts"),
                         (["--shards", "3"], "--shards was 2, now 3")):
        res = cli("run", "--left", str(left), "--right", str(right), "--out", str(out),
                  "--metrics-port", "0", "--metrics-linger", "0",
                  *(["--shards", "2"] if "--shards" not in flags else []), *flags)
        assert res.returncode == 2, res.stderr
        assert (f"--out {out} holds the outputs of a run with other settings: {named}. "
                "Give a new or empty directory, or remove the old outputs yourself"
                ) in res.stderr
        assert _tree(out) == before
    # Other input files are another run too.
    other = tmp_path / "other.jsonl"
    other.write_bytes(right.read_bytes())
    res = _run(left, other, out)
    assert res.returncode == 2
    assert f"--right was {right}, now {other}" in res.stderr
    assert _tree(out) == before


def test_a_recovery_directory_inside_out_is_kept_apart(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    out = tmp_path / "out"
    rec = out / "recovery"
    assert _run(left, right, out, "--recovery-dir", str(rec)).returncode == 0
    assert _run(left, right, out, "--recovery-dir", str(rec)).returncode == 0
    assert (rec / "run_manifest.json").is_file()
    assert cli("validate", str(out)).returncode == 0
