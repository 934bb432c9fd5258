"""Issue #5's real check: a real Prometheus scrapes a real ``streamjoin run``.

``streamjoin run --processes 2 --metrics-port BASE`` joins a small generated
dataset (late events, duplicates, malformed records) while a Prometheus on
loopback scrapes ``BASE`` and ``BASE + 1`` every second. The processes linger
until a scrape has seen their final counts. Then:

* every panel query of the committed dashboards, asked as Grafana asks it (a
  range query over the run), returns data, with finite values; the snapshot
  panels only in the ``snapshots`` variant (``--recovery-dir``, a snapshot
  every second), since a run without snapshots has none to show (NaN);
* the last values of the counters in Prometheus equal ``run.json``'s final
  counters, per side, and satisfy the conservation law; what the sources read
  equals what reached the join plus the invalid records;
* ``run.json`` and the summary say where the metrics were served.

Prometheus is the Debian package (installed with apt-get if missing and
possible; otherwise the test is skipped with the reason).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_harness import (
    REPO,
    Prometheus,
    free_port_range,
    panel_queries,
    running_prometheus,
    wait_for,
)

from dataflows.generator import GeneratorConfig, generate

pytestmark = pytest.mark.slow

PROCESSES = 2
SCRAPE_S = 1
SIDES = ("left", "right")
#: Panels that only show values once a snapshot was taken (recovery on).
SNAPSHOT_PANELS = ("Snapshot duration", "Snapshot bytes written")


def _last(prom: Prometheus, expr: str) -> float:
    """The sum over series of each series' last value, also after the processes
    exited (their series are stale then; range selectors still see them)."""
    return prom.scalar(f"sum(last_over_time({expr}[10m]))")


def _dataset(tmp_path: Path) -> tuple[list[str], list[str]]:
    cfg = GeneratorConfig(
        impressions=60_000,
        keys=20_000,
        seed=5,
        partitions=2,
        malformed_fraction=0.002,
        late_fraction=0.005,
        duplicate_fraction=0.005,
        late_lag_ms=15_000,  # behind the watermark (5 s out-of-orderness), in a short run
        # About two hours behind the wall clock, like a replay.
        start_ms=int(time.time() * 1000) - 2 * 3_600_000,
    )
    ds = generate(tmp_path / "data", cfg, format="jsonl", progress=False)
    return [str(p) for p in ds.left_paths], [str(p) for p in ds.right_paths]


def _recovery_flags(tmp_path: Path) -> list[str]:
    """Snapshots every second into a recovery directory, if this build has them."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    help_text = subprocess.run(
        [sys.executable, "-m", "dataflows.cli", "run", "--help"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    if "--recovery-dir" not in help_text or "--snapshot-interval" not in help_text:
        pytest.skip("this build has no --recovery-dir / --snapshot-interval (issue #4)")
    return ["--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", "1s"]


def _run(
    tmp_path: Path, base: int, left: list[str], right: list[str], extra: list[str]
) -> tuple[str, str]:
    cmd = [
        sys.executable, "-m", "dataflows.cli", "run",
        # Both files of each side, as globs of the generator's directory.
        "--left", str(Path(left[0]).parent / "impressions*"),
        "--right", str(Path(right[0]).parent / "plays*"),
        "--out", str(tmp_path / "out"),
        "--processes", str(PROCESSES),
        "--shards", "8",
        "--batch-size", "2000",
        "--metrics-port", str(base),
        "--metrics-linger", "15s",
        # Each source partition pauses before each read, so that the run lasts
        # several scrape intervals however fast the join gets (it once did not).
        "--read-delay", "250ms",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


@pytest.mark.parametrize("recovery", [False, True], ids=["plain", "snapshots"])
def test_prometheus_scrapes_a_real_run(tmp_path: Path, recovery: bool) -> None:
    extra = _recovery_flags(tmp_path) if recovery else []
    left, right = _dataset(tmp_path)
    assert len(left) == len(right) == 2
    base = free_port_range(PROCESSES)
    targets = [f"127.0.0.1:{base + i}" for i in range(PROCESSES)]
    with running_prometheus(tmp_path, targets, SCRAPE_S) as prom:
        # Prometheus hands targets to its scrapers a few seconds after start: wait
        # until it scrapes both ports (still down), so that it sees the whole run.
        wait_for(
            "Prometheus to scrape both (down) targets",
            lambda: len(prom.vector('up{job="streamjoin"}')) == PROCESSES,
            60,
        )
        started = time.time()
        stdout, stderr = _run(tmp_path, base, left, right, extra)
        ended = time.time()
        summary: dict[str, Any] = json.loads((tmp_path / "out" / "run.json").read_text())
        counters = summary["counters"]

        # Where the metrics were served: run.json, the summary, each process's log line.
        urls = [f"http://127.0.0.1:{base + i}/metrics" for i in range(PROCESSES)]
        assert [e["url"] for e in summary["metrics"]] == urls
        assert f"metrics        {urls[0]}  {urls[1]}" in stdout
        for i, url in enumerate(urls):
            assert f"process {i} serves metrics at {url}" in stderr

        # Every process was scraped during the run, and its final scrape ingested.
        for target in targets:
            scrapes = prom.scalar(f'sum_over_time(up{{instance="{target}"}}[10m])')
            # rate() needs two samples: a run this short would not show the panels.
            assert scrapes >= 3, f"{target} scraped {scrapes} times: raise --read-delay"
        # Prometheus appends a scrape's samples a moment after the process sent
        # them (the process may be gone by then): wait until the final ones show.
        pairs = counters["pairs"]
        deadline = time.monotonic() + 15
        while (held := _last(prom, "streamjoin_matched_pairs_total")) != pairs:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert held == pairs > 0, f"Prometheus holds {held} pairs, run.json {pairs}"

        # Every panel query returns data over the run's time range, as Grafana asks.
        empty: list[str] = []
        not_finite: list[str] = []
        for title, expr in panel_queries():
            result = prom.series(expr, started - SCRAPE_S, ended + SCRAPE_S, SCRAPE_S)
            if not result:
                empty.append(f"{title}: {expr}")
                continue
            values = [float(v) for s in result for _t, v in s["values"]]
            snapshot_panel = title.split(": ", 1)[1].startswith(SNAPSHOT_PANELS)
            if not any(math.isfinite(v) for v in values) and (recovery or not snapshot_panel):
                not_finite.append(f"{title}: {expr}")
        assert not empty, "panel queries without data:\n" + "\n".join(empty)
        assert not not_finite, "panel queries with only NaN/Inf:\n" + "\n".join(not_finite)

        # The last values in Prometheus are run.json's final counters ...
        records = 0.0
        for side in SIDES:
            want = counters[side]
            sel = f'{{side="{side}"}}'
            got = {
                "events_in": _last(prom, f"streamjoin_join_events_total{sel}"),
                "late": _last(prom, f"streamjoin_late_events_total{sel}"),
                "duplicates": _last(prom, f"streamjoin_duplicate_events_total{sel}"),
                "stored": _last(prom, f"streamjoin_stored_events_total{sel}"),
                "unmatched_emitted": _last(prom, f"streamjoin_unmatched_rows_total{sel}"),
                "unmatched_dropped": _last(prom, f"streamjoin_unmatched_dropped_events_total{sel}"),
                "retained": _last(prom, f"streamjoin_retained_events{sel}"),
            }
            evicted = _last(prom, f"streamjoin_evicted_events_total{sel}")
            got["evicted_matched"] = evicted - got["unmatched_emitted"] - got["unmatched_dropped"]
            for name, value in got.items():
                assert value == want[name], (side, name, value, want[name])
            # ... and the conservation law holds on them (retained is 0 at the end).
            assert got["events_in"] == (
                got["late"]
                + got["duplicates"]
                + got["evicted_matched"]
                + got["unmatched_emitted"]
                + got["unmatched_dropped"]
                + got["retained"]
            )
            assert got["events_in"] == got["late"] + got["duplicates"] + got["stored"]
            assert got["stored"] - evicted == got["retained"] == 0
            # What the sources read: valid events reach the join, the rest are invalid.
            read = _last(prom, f'streamjoin_input_events_total{{stream="{side}"}}')
            invalid = _last(prom, f'streamjoin_invalid_events_total{{stream="{side}"}}')
            assert read == summary["events_read"][side] == got["events_in"]
            assert invalid == counters["invalid"][side]
            records += read + invalid
            assert got["late"] > 0 or side == "right"
            assert got["duplicates"] > 0
            assert invalid > 0
        assert records == summary["records_in"]
        # The processes fed the batch and scrape-time metrics too.
        assert _last(prom, "streamjoin_batch_events_total") == sum(
            counters[s]["events_in"] for s in SIDES
        )
        lag = prom.scalar("max(max_over_time(streamjoin_watermark_lag_seconds[10m]))")
        assert 3_600 < lag < 3 * 3_600, lag  # event times are ~2 h behind the wall clock
        assert prom.scalar("max(max_over_time(streamjoin_state_entries[10m]))") > 0
        snapshots = _last(prom, "streamjoin_snapshot_duration_seconds_count")
        assert (snapshots > 0) == recovery, snapshots
