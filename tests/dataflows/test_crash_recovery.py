"""Crash recovery of ``streamjoin run --recovery-dir`` (issue #4), end to end.

The slow test is the crash harness (``scripts/crash_harness.py``): 20
consecutive SIGKILLs of the whole process group at random moments (right after
the start, while processing, inside a snapshot), one resume with another
process count, then completion, an exact ``validate``, no duplicate output ids
and a checkpoint root holding exactly what the retained snapshots reference.
The others check the CLI around it: refusing another configuration, the
``snapshots`` listing, re-running a finished store and ``replay``, and
refusing to resume from input files other than the recorded ones (missing,
truncated, replaced at the start) while accepting grown ones.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from dataflows.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "crash_harness", REPO / "scripts" / "crash_harness.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash_harness"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_twenty_random_sigkills_then_exact_validate(tmp_path: Path) -> None:
    ch = _harness()
    opts = ch.Options(work=tmp_path / "work", cycles=20, seed=4, impressions=3000, keys=800)
    t0 = time.monotonic()
    try:
        result = ch.harness(opts)
    except ch.HarnessError as exc:
        pytest.fail(str(exc))
    schedule = result.schedule()
    print(schedule)  # shown with -s or on failure of the asserts below
    assert result.kills == 20, schedule  # the input outlasted all 20 kills
    procs = {c.processes for c in result.cycles}
    assert procs == {1, 2}, schedule
    assert {c.mode for c in result.cycles[:20]} >= {"start", "processing", "snapshot"}, schedule
    assert result.duplicates == {}
    assert result.rows["joined"] > 0, result.rows
    assert result.rows["invalid"] > 0, result.rows
    assert result.checkpoint_dirs_after == result.referenced_after == 0
    assert time.monotonic() - t0 < 300, schedule


def _generate(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert cli_main(["generate", "--out", str(data), "--impressions", "1500", "--keys", "400",
                     "--partitions", "2", "--malformed-fraction", "0.01"]) == 0
    return data


def _kill_once_snapshots_are_durable(data: Path, out: Path, rec: Path, *extra: str) -> None:
    """Start a slowed-down recovery run and SIGKILL its process group once a
    resumable snapshot with shards is durable (past epoch 3)."""
    from recovery.inspect import resumable_snapshot

    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [sys.executable, "-m", "dataflows.cli",
            *_run_args(data, out, rec, *extra, "--read-delay", "30ms", "--batch-size", "20")]
    proc = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            snap = resumable_snapshot(rec)
        except Exception:  # noqa: S112 - not initialised yet
            continue
        if snap.shards and snap.resume_epoch > 3:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run_args(data: Path, out: Path, rec: Path, *extra: str) -> list[str]:
    return ["run", "--left", str(data / "impressions*"), "--right", str(data / "plays*"),
            "--out", str(out), "--recovery-dir", str(rec), "--snapshot-interval", "100ms",
            "--shards", "4", "--batch-size", "100", "--metrics-port", "0",
            "--metrics-linger", "0", *extra]


def _digest(root: Path) -> dict[str, bytes]:
    """Every file's bytes (SQLite's shared-memory index aside: readers touch it)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith("-shm")}


def _counters(out: Path) -> dict[str, object]:
    counters: dict[str, object] = json.loads((out / "run.json").read_text())["counters"]
    return counters


def test_recovery_cli_finished_store_and_incompatible_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _generate(tmp_path)
    out, rec = tmp_path / "out", tmp_path / "rec"
    assert cli_main(_run_args(data, out, rec)) == 0
    first = _counters(out)
    assert json.loads((out / "run.json").read_text())["recovery"]["mode"] == "fresh"
    assert (rec / "run_manifest.json").is_file()
    assert list(rec.glob("part-*.sqlite3"))
    from dataflows.validate import main as validate_main

    assert validate_main([str(out)]) == 0
    # The same directory again: the join already finished there; nothing reruns.
    assert cli_main(_run_args(data, out, rec)) == 0
    assert json.loads((out / "run.json").read_text())["recovery"]["mode"] == "finished"
    assert _counters(out) == first
    assert validate_main([str(out)]) == 0
    capsys.readouterr()
    # Another configuration or shard count: refused, one line, exit status 2.
    assert cli_main(_run_args(data, out, rec, "--upper", "1h")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "--upper was 30m, now 1h" in err
    assert cli_main([*_run_args(data, out, rec), "--shards", "8"]) == 2
    assert "--shards was 4, now 8" in capsys.readouterr().err
    # An epoch it cannot resume at: a usage error, and nothing changes.
    assert cli_main([*_run_args(data, out, rec), "--resume-epoch", "100000"]) == 2
    assert "--resume-epoch 100000: the recovery directory" in capsys.readouterr().err
    assert cli_main([*_run_args(data, tmp_path / "out2", tmp_path / "new"),
                     "--resume-epoch", "3"]) == 2
    assert "has not run yet, so it has no epoch to resume at" in capsys.readouterr().err
    # The listing of a finished store: no live shard, every shard finished.
    assert cli_main(["snapshots", str(rec)]) == 0
    text = capsys.readouterr().out
    assert "resume epoch" in text
    assert "shards=4, how=left" in text


@pytest.mark.slow
def test_kill_then_snapshots_listing_replay_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _generate(tmp_path)
    out, rec = tmp_path / "out", tmp_path / "rec"
    _kill_once_snapshots_are_durable(data, out, rec, "--processes", "2")
    from recovery.inspect import resumable_snapshot

    assert cli_main(["snapshots", str(rec)]) == 0
    listing = capsys.readouterr().out
    snap = resumable_snapshot(rec)
    assert snap.shards
    assert not snap.missing
    for s in snap.shards:
        assert s.shard in listing
        assert s.checkpoint in listing
    # Replay into a new directory: the original store is not written.
    before = _digest(rec)
    new_out = tmp_path / "replayed"
    assert cli_main(["replay", "--recovery-dir", str(rec), "--out", str(new_out),
                     "--processes", "1"]) == 0
    assert _digest(rec) == before
    from dataflows.validate import main as validate_main

    assert validate_main([str(new_out)]) == 0
    # And the original resumes to the same result.
    assert cli_main(_run_args(data, out, rec, "--processes", "2")) == 0
    assert validate_main([str(out)]) == 0
    assert _counters(out) == _counters(new_out)


def _impression(n: int) -> bytes:
    """One valid left record, on time after every generated event, of a new key."""
    return (
        f'{{"impression_id":"appended{n}","key":"appended:{n}","user_id":"appended",'
        f'"title_id":"t{n}","ts":{1_800_000_000_000 + n},"row":0,"position":0}}\n'
    ).encode()


def test_resume_refuses_changed_input_files_and_accepts_grown_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _generate(tmp_path)
    out, rec = tmp_path / "out", tmp_path / "rec"
    assert cli_main(_run_args(data, out, rec)) == 0
    manifest = json.loads((rec / "run_manifest.json").read_text())
    assert [Path(f["path"]).name for f in manifest["inputs"]] == [
        "impressions-000.jsonl", "impressions-001.jsonl", "plays-000.jsonl", "plays-001.jsonl"
    ]
    plays = data / "plays-000.jsonl"
    original = plays.read_bytes()
    capsys.readouterr()

    def refused(*fragments: str) -> None:
        assert cli_main(_run_args(data, out, rec)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(
            f"streamjoin run: error: the input files changed since the recovery directory {rec}"
        ), err
        for fragment in fragments:
            assert fragment in err, err

    # Truncated, replaced at the start, gone from the glob: refused, naming the file.
    plays.write_bytes(original[: len(original) // 2])
    refused(f"right input {plays} is shorter than recorded: {len(original) // 2} bytes now, "
            f"{len(original)} bytes recorded (truncated or replaced)")
    plays.write_bytes(b"{" + original[2:] + b"\n")
    refused(f"right input {plays} differs from the recorded file in its first "
            f"{len(original)} bytes (replaced or rewritten)")
    plays.unlink()
    refused(f"no longer given: {plays} (missing)")
    # Grown, but the run has finished (W = +inf, everything evicted, outer rows
    # out): appended records could only be late, and unmatched rows already
    # emitted could not be taken back. Refused, naming the growth, and the grown
    # size is not recorded.
    appended = b'{"play_id":"appended","key":"k","ts":1800000000000}\n'
    plays.write_bytes(original + appended)
    assert cli_main(_run_args(data, out, rec)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"streamjoin run: error: the run in the recovery directory {rec} has finished"
    ), err
    assert (f"its inputs have grown since: right input {plays}: {len(appended)} bytes more "
            f"({len(original)} read, {len(original) + len(appended)} now)") in err
    assert "Start a new run over the whole inputs with a new --recovery-dir" in err
    # Over the files it read, the finished store is only summarised again.
    plays.write_bytes(original)
    assert cli_main(_run_args(data, out, rec)) == 0
    assert json.loads((out / "run.json").read_text())["recovery"]["mode"] == "finished"
    # As the refusal says: a new store over the grown inputs (the same --out is replaced).
    plays.write_bytes(original + appended)
    assert cli_main(_run_args(data, out, tmp_path / "rec2")) == 0
    from dataflows.validate import main as validate_main

    assert validate_main([str(out)]) == 0


def test_store_without_recorded_inputs_resumes_with_a_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _generate(tmp_path)
    out, rec = tmp_path / "out", tmp_path / "rec"
    assert cli_main(_run_args(data, out, rec)) == 0
    path = rec / "run_manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["inputs"]  # as written before the input files were recorded
    path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert cli_main(_run_args(data, out, rec)) == 0
    assert (f"recovery: {rec} has no record of its input files (created before they were "
            "recorded): not checked this time, recorded for later resumes"
            ) in capsys.readouterr().out
    assert len(json.loads(path.read_text())["inputs"]) == 4


@pytest.mark.slow
def test_killed_run_resumes_over_a_grown_input_but_not_a_truncated_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _generate(tmp_path)
    out, rec = tmp_path / "out", tmp_path / "rec"
    _kill_once_snapshots_are_durable(data, out, rec)
    assert not (out / "run.json").exists()  # interrupted, not finished
    impressions = data / "impressions-000.jsonl"
    original = impressions.read_bytes()
    capsys.readouterr()
    # Truncated: the recorded read positions would point past its end. Refused,
    # and the store is left as it was.
    impressions.write_bytes(original[: len(original) // 3])
    assert cli_main(_run_args(data, out, rec)) == 2
    assert f"left input {impressions} is shorter than recorded" in capsys.readouterr().err
    # Grown: the resume reads the appended records too, and the result is exact.
    impressions.write_bytes(original + _impression(1) + _impression(2))
    assert cli_main(_run_args(data, out, rec)) == 0
    summary = json.loads((out / "run.json").read_text())
    assert summary["recovery"]["mode"] == "resume"
    appended = [row for part in (out / "joined").rglob("*") if part.is_file()
                for row in part.read_text().splitlines() if "appended:" in row]
    assert len(appended) == 2  # left join: both new keys come out unmatched
    from dataflows.validate import main as validate_main

    assert validate_main([str(out)]) == 0
