"""A damaged recovery store is refused, naming what is missing, and the epoch it
offers resumes exactly (issue 10, item 7), through the real CLI.

Two real stores are built once, each by two ``streamjoin run --recovery-dir``
executions SIGKILLed mid-run (so the second one's rows sit in the SQLite
write-ahead logs, and the first one's were checkpointed into the partition
files when the second started):

- *committed*: ``--backup-interval 2s`` at 100 ms epochs, so Bytewax commits
  (and garbage-collects) 20 epochs behind, and the last 20 epochs are
  retained to fall back on;
- *young*: ``--backup-interval 1h``, nothing committed, every epoch retained.

Each test damages a copy in one way (a lost ``-wal`` of one partition, the
snapshot rows of one shard deleted, a ``part-N.sqlite3`` deleted, the newest
checkpoint of a shard deleted) and asserts: exit status 1 with one line
naming what is missing, the store and the outputs untouched, and, where an
older complete epoch is retained, that the offered ``--resume-epoch`` runs
to the end and ``streamjoin validate`` is exact.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataflows.cli import main as cli_main
from dataflows.shards import shard_names
from recovery.inspect import resumable_snapshot
from recovery.integrity import plan_resume
from recovery.layout import open_recovery_dir

REPO = Path(__file__).resolve().parents[3]
JOIN_STEP = "interval_join.join"


@dataclass(frozen=True)
class Store:
    data: Path
    root: Path  # holds out/ and rec/
    backup: str


def _args(store: Store, root: Path, *extra: str) -> list[str]:
    return ["run", "--left", str(store.data / "impressions*"),
            "--right", str(store.data / "plays*"), "--out", str(root / "out"),
            "--recovery-dir", str(root / "rec"), "--snapshot-interval", "100ms",
            "--backup-interval", store.backup, "--shards", "4", "--processes", "2",
            "--metrics-port", "0", "--metrics-linger", "0", *extra]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *args], capture_output=True, text=True,
        timeout=300, check=False, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def _kill_past(store: Store, epoch: int) -> None:
    """Run slowly; SIGKILL the process group once a resume would start past ``epoch``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflows.cli",
         *_args(store, store.root, "--read-delay", "100ms", "--batch-size", "10")],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)
            assert proc.poll() is None, "the run ended before it could be killed"
            try:
                snap = resumable_snapshot(store.root / "rec")
            except Exception:  # noqa: S112 - not initialised yet
                continue
            if snap.shards and snap.resume_epoch > epoch:
                return
        pytest.fail(f"no resumable snapshot past epoch {epoch} in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _build(tmp: Path, backup: str, first: int, more: int) -> Store:
    data = tmp / "data"
    if not data.exists():
        assert cli_main(["generate", "--out", str(data), "--impressions", "1500", "--keys",
                         "400", "--partitions", "2", "--malformed-fraction", "0.01"]) == 0
    store = Store(data, tmp / f"base-{backup}", backup)
    _kill_past(store, first)
    _kill_past(store, resumable_snapshot(store.root / "rec").resume_epoch + more)
    layout = open_recovery_dir(store.root / "rec")
    plan = plan_resume(layout, shards=shard_names(4),
                       is_join_step=lambda step: step.endswith(JOIN_STEP))
    assert not plan.problems, plan.problems  # the undamaged store resumes as it is
    return store


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return _build(tmp_path_factory.mktemp("damage"), "2s", 25, 10)


@pytest.fixture(scope="module")
def young(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return _build(tmp_path_factory.mktemp("damage"), "1h", 5, 8)


def _copy(store: Store, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(store.root, root, symlinks=True)
    return root


def _digest(root: Path) -> dict[str, bytes]:
    """Every file's bytes (SQLite's shared-memory index and empty write-ahead
    logs aside: readers create them)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith("-shm")
            and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


def _refused(store: Store, root: Path, *named: str) -> int | None:
    """Run; assert a one-line refusal naming ``named``, nothing changed; return the
    offered epoch (None when nothing retained is complete)."""
    before = _digest(root)
    res = cli(*_args(store, root))
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(
        f"streamjoin run: failed: the recovery directory {root / 'rec'} cannot resume"
    ), res.stderr
    for text in named:
        assert text in res.stderr, res.stderr
    assert _digest(root) == before
    found = re.search(r"--resume-epoch (\d+) to resume from there", res.stderr)
    return int(found[1]) if found else None


def _resumes_exactly(store: Store, root: Path, epoch: int) -> None:
    res = cli(*_args(store, root, "--resume-epoch", str(epoch)))
    assert res.returncode == 0, res.stderr
    assert f"resuming {root / 'rec'} at epoch {epoch}" in res.stdout
    res = cli("validate", str(root / "out"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: output matches the batch join exactly" in res.stdout


def _lose_wal(root: Path, index: int) -> None:
    wal = root / "rec" / f"part-{index}.sqlite3-wal"
    assert wal.stat().st_size > 0  # the second execution's rows are in it
    wal.unlink()
    (root / "rec" / f"part-{index}.sqlite3-shm").unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_a_lost_wal_file_is_refused_and_the_offered_epoch_resumes_exactly(
    committed: Store, tmp_path: Path, index: int
) -> None:
    root = _copy(committed, tmp_path)
    _lose_wal(root, index)
    offer = _refused(committed, root, f"part-{index}.sqlite3-wal was lost")
    assert offer is not None
    _resumes_exactly(committed, root, offer)


@pytest.mark.slow
def test_a_missing_newest_checkpoint_is_refused_and_an_older_epoch_resumes_exactly(
    committed: Store, tmp_path: Path
) -> None:
    root = _copy(committed, tmp_path)
    layout = open_recovery_dir(root / "rec")
    snap = resumable_snapshot(layout)
    victim = max(snap.shards, key=lambda s: s.epoch)
    shutil.rmtree(layout.checkpoints.path_of(victim.checkpoint))
    offer = _refused(committed, root, f"checkpoint {victim.checkpoint} of shard {victim.shard} "
                     f"(its snapshot at epoch {victim.epoch}) is missing")
    assert offer is not None
    assert offer <= victim.epoch
    _resumes_exactly(committed, root, offer)


def _delete_shard_rows(root: Path, shard: str) -> int:
    deleted = 0
    for part in sorted((root / "rec").glob("part-*.sqlite3")):
        with sqlite3.connect(part) as conn:
            deleted += conn.execute(
                "DELETE FROM snaps WHERE step_id LIKE ? AND state_key = ?", (f"%{JOIN_STEP}", shard)
            ).rowcount
        conn.close()
    return deleted


@pytest.mark.slow
def test_missing_rows_of_a_shard_are_refused(
    committed: Store, young: Store, tmp_path: Path
) -> None:
    shard = shard_names(4)[1]
    # With 20 epochs retained, no retained epoch predates the shard's first row.
    root = _copy(committed, tmp_path / "committed")
    assert _delete_shard_rows(root, shard) > 0
    named = "no snapshot of 1 of 4 shards below epoch"
    assert _refused(committed, root, named, f"({shard}): their rows are missing",
                    "No retained epoch is complete") is None
    # With every epoch retained, the offer is the epoch before any shard had a
    # row: the run starts over, exactly.
    root = _copy(young, tmp_path / "young")
    assert _delete_shard_rows(root, shard) > 0
    offer = _refused(young, root, named, f"({shard}): their rows are missing")
    assert offer is not None
    _resumes_exactly(young, root, offer)


@pytest.mark.slow
def test_a_missing_partition_file_is_refused(committed: Store, tmp_path: Path) -> None:
    root = _copy(committed, tmp_path)
    for path in (root / "rec").glob("part-1.sqlite3*"):
        path.unlink()
    assert _refused(committed, root, "recovery partition file(s) part-1.sqlite3 of 2 are "
                    "missing", "no epoch can be resumed without them") is None
