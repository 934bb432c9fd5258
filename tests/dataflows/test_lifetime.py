"""The processes of a run stop together (issue 10, item 10), with real processes.

- A worker started with :func:`dataflows.lifetime.die_with_parent` exits when
  its parent is SIGKILLed (a small process tree, fast).
- ``streamjoin run --recovery-dir`` with 2 worker processes: SIGTERM and SIGINT
  to the parent alone exit 143 and 130 with every worker gone and the recovery
  lock free; SIGKILL of the parent alone leaves no worker either. Each time
  the same command then resumes, and the finished run validates exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dataflows.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [p for p in pids if not _gone(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return [p for p in pids if not _gone(p)]


def _lock_is_held(rec: Path) -> bool:
    fd = os.open(rec / ".run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if we got it
    return False


def _wait_unlocked(rec: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _lock_is_held(rec):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_worker_dies_with_its_killed_parent(tmp_path: Path) -> None:
    child = textwrap.dedent(
        """
        import os, sys, time
        from dataflows.lifetime import die_with_parent
        die_with_parent(int(sys.argv[1]))
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    parent = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        proc = subprocess.Popen([sys.executable, "-c", {child!r}, str(os.getpid())],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()
        print(proc.pid, flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True,
                            env=_env(), cwd=REPO, start_new_session=True)
    try:
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        assert not _gone(worker)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert _wait_gone([worker], 5) == [], "the worker outlived its SIGKILLed parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _run_args(data: Path, out: Path, rec: Path, *extra: str) -> list[str]:
    return ["run", "--left", str(data / "impressions*"), "--right", str(data / "plays*"),
            "--out", str(out), "--recovery-dir", str(rec), "--snapshot-interval", "100ms",
            "--shards", "4", "--processes", "2", "--metrics-port", "0",
            "--metrics-linger", "0", *extra]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_stop_signals_and_a_killed_parent_leave_no_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert cli_main(["generate", "--out", str(data), "--impressions", "1500", "--keys", "400",
                     "--partitions", "2"]) == 0
    out, rec = tmp_path / "out", tmp_path / "rec"
    slow = ("--read-delay", "300ms", "--batch-size", "10")  # outlasts the test's waits
    for sig, expected in ((signal.SIGTERM, 143), (signal.SIGINT, 130),
                          (signal.SIGKILL, -signal.SIGKILL)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dataflows.cli", *_run_args(data, out, rec, *slow)],
            cwd=REPO, env=_env(), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            workers: list[int] = []
            while time.monotonic() < deadline:
                workers = _children(proc.pid)
                if len(workers) == 2 and rec.is_dir() and _lock_is_held(rec):
                    break
                time.sleep(0.1)
            assert len(workers) == 2, f"workers did not start: {workers}"
            time.sleep(1.0)  # let them work for a while (snapshots, outputs)
            os.kill(proc.pid, sig)  # the parent alone, as a supervisor would
            assert proc.wait(timeout=60) == expected, proc.stderr.read() if proc.stderr else ""
            assert _wait_gone(workers, 10) == [], f"workers left running after {sig.name}"
            # A killed process's threads exit one by one: its main thread may show
            # as a zombie while another still holds the lock's file for a moment.
            assert _wait_unlocked(rec, 10), f"the recovery lock is still held after {sig.name}"
            if expected > 0:
                assert proc.stderr is not None
                err = proc.stderr.read()
                assert f"stopped by {sig.name}: every process of the run has exited" in err
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    # Each stop left a resumable store: the same command finishes it, exactly.
    assert cli_main(_run_args(data, out, rec)) == 0
    from dataflows.validate import main as validate_main

    assert validate_main([str(out)]) == 0
