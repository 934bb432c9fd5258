"""A recovery store's identity is every setting that changes the output (issue
10, item 6), through the real CLI.

A resume with any of them changed is refused in one line naming the setting
as the flag is written, its recorded value and the new one, and the store is
left as it was. A store written before the settings were recorded resumes
with a notice and has them recorded from then on.
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
def store(tmp_path: Path) -> tuple[list[str], Path]:
    """A finished recovery run; returns its arguments and its recovery directory."""
    left, right = tmp_path / "left.jsonl", tmp_path / "right.jsonl"
    rows = [{"key": f"k{i % 3}", "user": f"u{i % 2}", "ts": i * 10, "t2": i} for i in range(30)]
    left.write_text("".join(json.dumps(r) + "\n" for r in rows))
    right.write_text("".join(json.dumps({**r, "ts": r["ts"] + 5}) + "\n" for r in rows))
    rec = tmp_path / "rec"
    args = ["run", "--left", str(left), "--right", str(right), "--out", str(tmp_path / "out"),
            "--recovery-dir", str(rec), "--shards", "2", "--metrics-port", "0",
            "--metrics-linger", "0"]
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    return args, rec


def _digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith("-shm")}


CHANGES = [
    (["--key-field", "user"], "--key-field was key, now user"),
    (["--key-field", "key,user"], "--key-field was key, now key,user"),
    (["--time-field", "t2"], "--time-field was ts, now t2"),
    (["--right-time-field", "t2"], "--right-time-field was ts, now t2"),
    (["--time-unit", "s"], "--time-unit was ms, now s"),
    (["--format", "csv"], "--format was jsonl, now csv"),
    (["--output-format", "avro"], "--output-format was jsonl, now avro"),
    (["--upper", "1h"], "--upper was 30m, now 1h"),
    (["--how", "full"], "--how was left, now full"),
    (["--shards", "4"], "--shards was 2, now 4"),
    (["--max-out-of-orderness", "0"], "--max-out-of-orderness was 5s, now 0"),
]


def test_a_resume_with_any_output_setting_changed_is_refused(
    store: tuple[list[str], Path]
) -> None:
    args, rec = store
    before = _digest(rec)
    for flags, named in CHANGES:
        res = cli(*args, *flags)
        assert res.returncode == 2, (flags, res.stderr)
        assert res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith(
            f"streamjoin run: error: the recovery directory {rec} holds a run with other "
            f"settings: {named}. "
        ), res.stderr
        assert _digest(rec) == before, flags
    # Two at once: both named.
    res = cli(*args, "--time-unit", "s", "--output-format", "avro")
    assert "--time-unit was ms, now s; --output-format was jsonl, now avro." in res.stderr
    # What does not change the output may change.
    res = cli(*args, "--processes", "2", "--batch-size", "7", "--state-memory", "64MiB")
    assert res.returncode == 0, res.stderr


def test_a_store_without_recorded_settings_gets_them_recorded(
    store: tuple[list[str], Path]
) -> None:
    args, rec = store
    path = rec / "run_manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["settings"]["--left-key-field"] == "key"
    del manifest["settings"]  # as written before the settings were recorded
    path.write_text(json.dumps(manifest))
    # Its join settings are still checked (they are in its fingerprinted spec) ...
    res = cli(*args, "--upper", "1h")
    assert res.returncode == 2
    assert "--upper was 30m, now 1h" in res.stderr
    # ... the others cannot be: a notice, and they are recorded from now on.
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    assert (f"recovery: {rec} has no record of --left-format, --right-format, "
            "--left-key-field, --right-key-field, --left-time-field, --right-time-field, "
            "--left-time-unit, --right-time-unit, --output-format (created before they were "
            "recorded): not checked this time, recorded for later resumes") in res.stdout
    assert json.loads(path.read_text())["settings"]["--right-time-unit"] == "ms"
    res = cli(*args, "--time-unit", "s")
    assert res.returncode == 2
    assert "--time-unit was ms, now s" in res.stderr
