"""Where a run keeps its state and recovery store (issue 10, items 11 and 14),
through the real CLI (``python -m dataflows.cli run``).

- State and recovery directories are created with mode 0700.
- A recovery directory that others can write (the directory, a partition
  file, or a non-sticky directory above it) is refused on resume: Bytewax
  unpickles its rows. Once the permissions are fixed it resumes.
- A state directory on another filesystem than the recovery store's
  checkpoints is refused at start, before anything is created (hard links
  cannot cross filesystems; the resume would fail with EXDEV).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str, umask: int = -1) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *args],
        capture_output=True, text=True, timeout=180, check=False, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), umask=umask,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    left = tmp_path / "left.jsonl"
    right = tmp_path / "right.jsonl"
    left.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i * 10}) + "\n"
                            for i in range(30)))
    right.write_text("".join(json.dumps({"key": f"k{i % 3}", "ts": i * 10 + 5}) + "\n"
                             for i in range(30)))
    return left, right


def _run(left: Path, right: Path, out: Path, *extra: str,
         umask: int = -1) -> subprocess.CompletedProcess[str]:
    return cli("run", "--left", str(left), "--right", str(right), "--out", str(out),
               "--shards", "2", "--metrics-port", "0", "--metrics-linger", "0", *extra,
               umask=umask)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_and_recovery_directories_are_created_private(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    rec, state = tmp_path / "rec", tmp_path / "state"
    res = _run(left, right, tmp_path / "out", "--recovery-dir", str(rec), "--state-dir", str(state))
    assert res.returncode == 0, res.stderr
    assert _mode(rec) == 0o700
    assert _mode(rec / "checkpoints") == 0o700
    assert _mode(state) == 0o700
    plain = tmp_path / "plain-state"
    res = _run(left, right, tmp_path / "out2", "--state-dir", str(plain))
    assert res.returncode == 0, res.stderr
    assert _mode(plain) == 0o700


def test_a_recovery_directory_others_can_write_is_refused(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    parent = tmp_path / "stores"
    parent.mkdir()
    rec, out = parent / "rec", tmp_path / "out"
    args = ("--recovery-dir", str(rec))
    assert _run(left, right, out, *args).returncode == 0

    def refused(culprit: str) -> None:
        res = _run(left, right, out, *args)
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1, res.stderr
        assert f"refusing to resume from the recovery directory {rec}" in res.stderr
        assert culprit in res.stderr, res.stderr
        assert "whoever can write them can run code as this service" in res.stderr

    rec.chmod(0o777)
    refused(f"{rec} is writable by group and others (mode 0777)")
    rec.chmod(0o700)
    part = rec / "part-0.sqlite3"
    part.chmod(0o666)
    refused(f"{part} is writable by group and others (mode 0666)")
    part.chmod(0o644)
    # A directory above it that others can write: they could swap the store.
    parent.chmod(0o757)
    refused(f"{parent} is writable by others (mode 0757)")
    # Unless it is sticky, as /tmp is: others cannot rename what they do not own.
    parent.chmod(0o1777)
    assert _run(left, right, out, *args).returncode == 0
    parent.chmod(0o755)
    assert _run(left, right, out, *args).returncode == 0


def test_a_store_made_under_a_group_writable_umask_is_still_private(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    left, right = inputs
    rec = tmp_path / "rec"
    args = ("--recovery-dir", str(rec))
    assert _run(left, right, tmp_path / "out", *args, umask=0o002).returncode == 0
    trusted = [p for p in rec.iterdir() if p.name.endswith((".sqlite3", ".json"))]
    assert trusted
    assert {p.name: _mode(p) for p in trusted} == {p.name: 0o600 for p in trusted}
    res = _run(left, right, tmp_path / "out", *args, umask=0o002)
    assert res.returncode == 0, res.stderr


def _other_filesystem() -> Path | None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    return shm


def test_a_state_directory_on_another_filesystem_is_refused_before_anything_is_created(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    shm = _other_filesystem()
    if shm is None:
        pytest.skip("no writable /dev/shm to put the state on another filesystem")
    if shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip(f"/dev/shm is on the same filesystem as {tmp_path} here")
    left, right = inputs
    base = shm / f"streamjoin-test-{uuid.uuid4().hex}"
    state, rec, out = base / "state", tmp_path / "rec", tmp_path / "out"
    try:
        res = _run(left, right, out, "--recovery-dir", str(rec), "--state-dir", str(state))
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1, res.stderr
        assert (f"the state directory {state} (on the filesystem of {shm}, device "
                f"{shm.stat().st_dev}) and the checkpoint root {rec}/checkpoints") in res.stderr
        assert "are on different filesystems" in res.stderr
        assert "Put --state-dir on the recovery directory's filesystem" in res.stderr
        assert not rec.exists()
        assert not state.exists()
        assert not out.exists()
        # Without recovery nothing is hard-linked: that state directory is fine.
        assert _run(left, right, out, "--state-dir", str(state)).returncode == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)
