"""Operating a run (issue 12) through the real CLI and real processes: the live
progress line on a terminal (a pseudo-terminal), progress log lines off one,
the log format and levels, and every anticipated failure as one line with its
exit status and no traceback: ``--out`` naming a file, a read-only ``--out``
or ``--state-dir`` (a read-only tmpfs), a full disk under ``--out`` or
``--state-dir`` (a 1-2 MiB tmpfs), one bad CSV header in a directory of
inputs, a resume with another ``--output-format``, ``--time-field`` or
``--out``; ``--debug`` shows the traceback.

The filesystems are mounted in a private mount namespace (``unshare -m`` as
root, ``unshare -rm`` otherwise), which disappears with the command; where
that is not allowed the tests that need it are skipped.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataflows.generator import GeneratorConfig, generate

pytestmark = pytest.mark.slow

PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+) +\[(\d+) (\w+)\] ")
CLI = [sys.executable, "-m", "dataflows.cli"]


def streamjoin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    ds = generate(tmp_path_factory.mktemp("data"), GeneratorConfig(impressions=5_000, keys=800),
                  progress=False)
    return str(ds.left_paths[0]), str(ds.right_paths[0])


def _inputs(data: tuple[str, str]) -> list[str]:
    return ["--left", data[0], "--right", data[1]]


def _one_line(res: subprocess.CompletedProcess[str], code: int, start: str) -> str:
    """The command failed with ``code`` and said why in one line, no traceback."""
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(start), lines[0]
    return lines[0]


# -- progress -------------------------------------------------------------------------------

SLOW_READ = ["--batch-size", "400", "--read-delay", "200ms", "--metrics-port", "0",
             "--metrics-linger", "0"]


def test_a_terminal_shows_one_live_line_that_updates(data: tuple[str, str], tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "run", *_inputs(data), "--out", str(tmp_path / "out"), *SLOW_READ,
         "--log-level", "warning"],
        stdin=slave, stdout=slave, stderr=slave, close_fds=True,
        env=dict(os.environ, COLUMNS="300"),
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    # Each redraw: carriage return, the line, erase to its end; never a new line.
    frames = [f for f in text.split("\r") if f.startswith("read ")]
    assert len(frames) >= 3, text
    for frame in frames:
        line, rest = frame.split("\x1b[K", 1)
        assert "\n" not in line
        assert rest in ("", "\n")
        for figure in ("left ", "ev/s", "| W ", "late ", "invalid ", "state "):
            assert figure in line, line
    lefts = [int(re.search(r"left ([\d,]+)", f).group(1).replace(",", "")) for f in frames]  # type: ignore[union-attr]
    assert lefts == sorted(lefts), lefts
    assert lefts[0] < lefts[-1], lefts
    shares = [float(re.search(r"read ([\d.]+)%", f).group(1)) for f in frames]  # type: ignore[union-attr]
    assert shares[0] < shares[-1]
    assert any("ETA " in f for f in frames)
    # The line is erased before the summary.
    assert "\r\x1b[Kstreamjoin: left join finished" in text


def test_off_a_terminal_progress_is_a_log_line_every_interval(
    data: tuple[str, str], tmp_path: Path
) -> None:
    res = streamjoin("run", *_inputs(data), "--out", str(tmp_path / "out"), *SLOW_READ,
                     "--progress-interval", "500ms")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if " progress: " in line]
    assert len(lines) >= 3, res.stderr
    for line in lines:
        found = PREFIX.match(line)
        assert found is not None
        assert found.group(1) == "INFO"
        assert found.group(3) == "main"
        assert re.search(r"progress: read [\d.]+%.* \| left [\d,]+ right [\d,]+ \| ", line)
    lefts = [int(re.search(r"left ([\d,]+)", x).group(1).replace(",", "")) for x in lines]  # type: ignore[union-attr]
    assert lefts == sorted(lefts)
    assert lefts[0] < lefts[-1]
    # The workers' own lines come through in the same format, with their pid and index.
    worker = [PREFIX.match(x) for x in res.stderr.splitlines() if "serves metrics at" in x]
    assert [m.group(3) for m in worker if m] == ["p0"]
    assert worker[0] is not None
    assert int(worker[0].group(2)) != os.getpid()


def test_quiet_and_the_log_level(data: tuple[str, str], tmp_path: Path) -> None:
    res = streamjoin("run", *_inputs(data), "--out", str(tmp_path / "a"), *SLOW_READ,
                     "--progress-interval", "500ms", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "progress:" not in res.stderr
    assert "serves metrics at" in res.stderr  # info
    # STREAMJOIN_LOG_LEVEL hides the info lines; --log-level wins over it.
    env = dict(os.environ, STREAMJOIN_LOG_LEVEL="warning")
    res = streamjoin("run", *_inputs(data), "--out", str(tmp_path / "b"), "--metrics-port", "0",
                     "--metrics-linger", "0", env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    res = streamjoin("run", *_inputs(data), "--out", str(tmp_path / "c"), "--metrics-port", "0",
                     "--metrics-linger", "0", "--log-level", "info", env=env)  # fmt: skip
    assert "serves metrics at" in res.stderr


# -- failures, one line each ------------------------------------------------------------------


def _namespaced(script: str) -> list[str]:
    """``sh -c script`` in a private mount namespace (a user namespace too when
    not root), so that what it mounts disappears with it."""
    return ["unshare", *(["-m"] if os.geteuid() == 0 else ["-r", "-m"]), "sh", "-c", script]


@pytest.fixture(scope="module")
def mounts(tmp_path_factory: pytest.TempPathFactory) -> None:
    probe = tmp_path_factory.mktemp("probe")
    try:
        res = subprocess.run(
            _namespaced(f"mount -t tmpfs -o ro,size=1m tmpfs {probe} && ! touch {probe}/x"),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {res.stderr.strip()}")


def _with_tmpfs(mount_at: Path, options: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``streamjoin ARGS`` with a tmpfs (``options``) mounted at ``mount_at``."""
    mount_at.mkdir(parents=True, exist_ok=True)
    script = (f"mount -t tmpfs -o {options} tmpfs {shlex.quote(str(mount_at))} && "
              f"exec {shlex.join([*CLI, *args])}")
    return subprocess.run(_namespaced(script), capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip


QUIET = ["--log-level", "warning", "--metrics-port", "0", "--metrics-linger", "0"]


def test_out_naming_a_file_is_a_usage_error(data: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "a-file"
    out.write_text("mine")
    res = streamjoin("run", *_inputs(data), "--out", str(out), *QUIET)
    line = _one_line(res, 2, f"streamjoin run: error: --out {out} is a file, not a directory")
    assert "give a new directory" in line
    assert out.read_text() == "mine"


@pytest.mark.usefixtures("mounts")
@pytest.mark.parametrize("flag", ["--out", "--state-dir"])
def test_a_read_only_directory_is_refused_before_anything_is_written(
    data: tuple[str, str], tmp_path: Path, flag: str
) -> None:
    ro = tmp_path / "ro"
    paths = {"--out": str(tmp_path / "out"), "--state-dir": str(tmp_path / "state")}
    paths[flag] = str(ro / "sub")
    res = _with_tmpfs(ro, "ro,size=1m", "run", *_inputs(data), "--out", paths["--out"],
                      "--state-dir", paths["--state-dir"], *QUIET)  # fmt: skip
    _one_line(
        res, 1, f"streamjoin run: failed: {flag} {ro / 'sub'}: {ro}: read-only filesystem: "
        f"point {flag} at a writable filesystem",
    )
    assert not (tmp_path / "out").exists()  # nothing written, --out not even created


@pytest.mark.usefixtures("mounts")
@pytest.mark.parametrize(("flag", "size"), [("--out", "1m"), ("--state-dir", "64k")])
def test_a_full_disk_names_the_process_the_file_and_the_flag(
    data: tuple[str, str], tmp_path: Path, flag: str, size: str
) -> None:
    full = tmp_path / "full"
    paths = {"--out": str(tmp_path / "out"), "--state-dir": str(tmp_path / "state")}
    paths[flag] = str(full / "dir")
    res = _with_tmpfs(full, f"size={size}", "run", *_inputs(data), "--out", paths["--out"],
                      "--state-dir", paths["--state-dir"], "--processes", "2", "--shards", "4",
                      *QUIET)  # fmt: skip
    line = _one_line(res, 1, "streamjoin run: failed: process ")
    assert re.match(r"streamjoin run: failed: process [01] \(pid \d+\): ", line), line
    assert f"(in {flag} {full / 'dir'}): no space left on the device: free space there, or " \
        f"point {flag} at a disk with room" in line


def test_one_bad_csv_header_in_a_directory_stops_the_run_before_it_starts(
    tmp_path: Path,
) -> None:
    ds = generate(tmp_path / "data", GeneratorConfig(impressions=1_000, keys=100, partitions=3),
                  format="csv", progress=False)
    bad = ds.left_paths[1]
    text = bad.read_text()
    bad.write_text(text.replace(",ts,", ",when,", 1))
    left = str(tmp_path / "data" / "impressions*")
    out = tmp_path / "out"
    res = streamjoin("run", "--left", left, "--right", str(tmp_path / "data" / "plays*"),
                     "--out", str(out), *QUIET)  # fmt: skip
    line = _one_line(res, 1, f"streamjoin run: failed: csv header of '{bad}' has no column 'ts'")
    assert line.endswith("set --left-time-field to the column that holds it, or fix the file")
    assert not out.exists()
    # A column named twice is refused the same way.
    bad.write_text(text.replace(",ts,", ",ts,", 1).replace("impression_id,", "ts,", 1))
    res = streamjoin("run", "--left", left, "--right", str(tmp_path / "data" / "plays*"),
                     "--out", str(out), *QUIET)  # fmt: skip
    line = _one_line(res, 1, f"streamjoin run: failed: csv header of '{bad}' names the column "
                     "'ts' more than once")
    assert "rename the columns so that each name is unique" in line


def test_a_resume_with_another_output_format_time_field_or_out_is_refused(
    data: tuple[str, str], tmp_path: Path
) -> None:
    rec, out = tmp_path / "rec", tmp_path / "out"
    base = ["run", *_inputs(data), "--recovery-dir", str(rec), *QUIET]
    assert streamjoin(*base, "--out", str(out)).returncode == 0
    res = streamjoin(*base, "--out", str(out), "--output-format", "avro")
    _one_line(res, 2, f"streamjoin run: error: the recovery directory {rec} holds a run with "
              "other settings: --output-format was jsonl, now avro.")
    res = streamjoin(*base, "--out", str(out), "--time-field", "when")
    _one_line(res, 2, f"streamjoin run: error: the recovery directory {rec} holds a run with "
              "other settings: --time-field was ts, now when.")
    other = tmp_path / "other"
    res = streamjoin(*base, "--out", str(other))
    line = _one_line(res, 2, f"streamjoin run: error: the recovery directory {rec} holds a run "
                     f"whose outputs are in {out}: --out was {out}, now {other}.")
    assert line.endswith(f"run with --out {out}, or start a copy in the new directory with "
                         f"streamjoin replay --recovery-dir {rec} --out {other}")
    assert not other.exists()


def test_debug_shows_the_traceback(data: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "a-file"
    out.write_text("")
    res = streamjoin("run", *_inputs(data), "--out", str(out), *QUIET, "--debug")
    assert res.returncode == 2
    assert "Traceback (most recent call last):" in res.stderr
    assert res.stderr.splitlines()[-1].startswith(f"streamjoin run: error: --out {out} is a file")


# -- plausibility ---------------------------------------------------------------------------


def test_times_in_the_wrong_unit_are_named_at_the_start(
    data: tuple[str, str], tmp_path: Path
) -> None:
    res = streamjoin("run", *_inputs(data), "--out", str(tmp_path / "o"), "--left-time-unit", "s",
                     *QUIET)  # fmt: skip
    warnings = [x for x in res.stderr.splitlines() if " WARNING " in x]
    assert len(warnings) == 1, res.stderr
    assert re.search(r"left input: \d+ of \d+ sampled event times fall outside the years "
                     r"1990-2100; e\.g\. field 'ts' = 17\d{11} in .*impressions\.jsonl read with "
                     r"--left-time-unit s is about \+5\d,\d{3} years from 1970\. Is "
                     r"--left-time-unit s right\?", warnings[0]), warnings[0]


def test_mostly_invalid_input_fails_the_run_after_its_outputs(
    data: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    res = streamjoin("run", *_inputs(data), "--out", str(out), "--right-time-field", "when",
                     *QUIET)  # fmt: skip
    line = _one_line(res, 1, "streamjoin run: failed: right input: no valid events: all ")
    assert "records were invalid, more than --max-invalid-fraction 0.5; most often: missing " \
        f"field 'when' (every one in {out}/invalid/): check --right-format" in line
    summary = json.loads((out / "run.json").read_text())  # the outputs are written
    assert summary["counters"]["invalid"]["right"] > 0
    assert "matched pairs" in res.stdout
    # Allowed: the run succeeds, and says that a side had no valid event.
    res = streamjoin("run", *_inputs(data), "--out", str(out), "--right-time-field", "when",
                     "--max-invalid-fraction", "1", *QUIET)  # fmt: skip
    assert res.returncode == 0, res.stderr
    (warning,) = res.stderr.splitlines()
    assert "right input: no valid events: all " in warning


def test_a_share_of_invalid_records_above_the_limit(tmp_path: Path) -> None:
    left, right = tmp_path / "l.jsonl", tmp_path / "r.jsonl"
    rows = [json.dumps({"key": "k", "ts": 1_700_000_000_000 + i}) for i in range(4)]
    left.write_text("\n".join([*rows, "{bad", "{bad", "{bad"]) + "\n")
    right.write_text("\n".join(rows) + "\n")
    args = ["run", "--left", str(left), "--right", str(right), "--out", str(tmp_path / "o")]
    res = streamjoin(*args, "--max-invalid-fraction", "0.4", *QUIET)
    line = _one_line(res, 1, "streamjoin run: failed: left input: 3 of 7 records (42.9%) were "
                     "invalid, more than --max-invalid-fraction 0.4; most often: invalid JSON")
    assert "right input" not in line
    res = streamjoin(*args, "--max-invalid-fraction", "0.5", *QUIET)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


# -- summaries ------------------------------------------------------------------------------


def test_a_resumed_runs_summary_counts_all_its_executions(
    data: tuple[str, str], tmp_path: Path
) -> None:
    out, rec = tmp_path / "out", tmp_path / "rec"
    args = [*CLI, "run", *_inputs(data), "--out", str(out), "--recovery-dir", str(rec),
            "--snapshot-interval", "200ms", *QUIET]  # fmt: skip
    proc = subprocess.Popen([*args, "--batch-size", "200", "--read-delay", "200ms"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        status = out / ".run" / "status-0.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # stop it once it has read a good part
            try:
                parts = json.loads(status.read_text())["partitions"].values()
                if sum(p["events"] for p in parts) >= 2_000:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "run.json").read_text())
    assert summary["executions"] == 2
    assert summary["resumes"] == 1
    assert summary["active_s"] > summary["elapsed_s"]  # the first execution's time counts
    assert summary["events_per_s"] == pytest.approx(
        summary["records_in"] / summary["active_s"], rel=1e-3
    )
    # Every record of the inputs, once, over the two executions.
    lines = sum(len(Path(p).read_bytes().splitlines()) for p in data)
    assert summary["records_in"] == lines
    assert (f"events/s over {summary['active_s']:,.1f} s active in 2 executions (1 resume)"
            in res.stdout)
    check = subprocess.run([*CLI, "validate", str(out)], capture_output=True, text=True,
                           timeout=300, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout


def test_generate_says_placed_late_in_the_runs_terms_and_demo_help_describes_its_flags(
    tmp_path: Path,
) -> None:
    res = streamjoin("generate", "--out", str(tmp_path / "d"), "--impressions", "3000",
                     "--keys", "300", "--late-lag", "30s")  # fmt: skip
    assert res.returncode == 0, res.stderr
    words = " ".join(res.stdout.split())
    assert "placed late: written about 35s or more behind the newest event before them in " \
        "their file. A run (default --max-out-of-orderness 5s) counts an event late when the " \
        "watermark, the lowest over all files of both sides, has passed it" in words
    demo = " ".join(streamjoin("demo", "--help").stdout.split())
    for text in ("--out DIR where to write: DIR/input/ (the generated data) and DIR/run/",
                 "--impressions N left events to generate",
                 "--processes N worker processes of the run (default 2)",
                 "--quiet no progress", "--log-level {debug,info,warning,error}"):
        assert text in demo, text
