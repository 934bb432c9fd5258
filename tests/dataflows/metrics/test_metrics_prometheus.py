"""A real Prometheus scrapes two real processes serving JoinMetrics; every panel
query of the dashboards returns data, and the counters agree and conserve.

The two processes are this file run as a script (``python THIS PROCESS_INDEX
WORKDIR``): each joins a deterministic workload with real RocksDB stores (two
shards), takes and restores a checkpoint, feeds its JoinMetrics exactly as the
engine does, writes its joiners' final counters to ``WORKDIR/counters-N.json``
and keeps serving until terminated. The same check against a real
``streamjoin run`` with 2 processes is ``test_metrics_run.py``; this one also
covers checkpoints and a resume on toy processes.

Prometheus is the Debian package (``apt-get install prometheus``), installed by
the test if missing and possible; otherwise the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_harness import (
    REPO,
    Prometheus,
    free_port,
    panel_queries,
    prometheus_binary,
    wait_for,
)

SCRAPE_S = 1

pytestmark = pytest.mark.slow


# -- the serving process ---------------------------------------------------------


def serve(index: int, workdir: Path) -> None:  # pragma: no cover - runs in a subprocess
    from prometheus_client import CollectorRegistry

    from dataflows.metrics import JoinMetrics, serve_metrics
    from joins import Event, IntervalJoiner, JoinCounters, JoinSpec, Side, content_id
    from state.store import RocksStore

    spec = JoinSpec(lower_ms=0, upper_ms=20_000, how="left", max_out_of_orderness_ms=2_000)
    registry = CollectorRegistry()
    metrics = JoinMetrics(registry, process=str(index), spec=spec)
    server = serve_metrics(registry, 0)
    rng = random.Random(index)
    base = int(time.time() * 1000) - 3_600_000
    partitions = [f"left-{index}", f"right-{index}"]
    joiners: dict[str, IntervalJoiner] = {}
    for s in range(2):
        shard = f"shard-{index}-{s}"
        store = RocksStore(workdir / f"p{index}" / shard)
        joiners[shard] = IntervalJoiner(spec, store, partitions, lambda: int(time.time() * 1000))
        metrics.state.register(shard, store)
    n = 0
    for step in range(60):
        events: list[Event] = []
        for _ in range(200):
            side: Side = "left" if rng.random() < 0.6 else "right"
            ts = base + step * 1_000 + rng.randint(-6_000, 0)
            key = "hot" if rng.random() < 0.2 else f"k{rng.randrange(300)}"
            raw = f"{side}|{key}|{ts}|{n}".encode()
            part = partitions[0] if side == "left" else partitions[1]
            events.append(Event(side, key, ts, content_id(raw), {"n": n}, part, n))
            n += 1
        events.extend(events[:5])  # duplicates
        for stream, part in (("left", partitions[0]), ("right", partitions[1])):
            mine = [e for e in events if e.side == stream]
            newest = max(e.ts for e in mine)
            metrics.observe_input(stream, part, len(mine), newest)
        metrics.observe_invalid("left", ["missing field 'ts'", "invalid JSON: x at column 1"])
        for shard, joiner in joiners.items():
            batch = [e for e in events if (hash(e.key) % 2 == 0) == shard.endswith("0")]
            t0 = time.perf_counter()
            out = joiner.process(batch)
            metrics.observe_batch(shard, out, joiner.counters, time.perf_counter() - t0, batch)
        time.sleep(0.02)
    # A snapshot of each shard, and a resume from one (a real checkpoint and clone).
    for shard, joiner in joiners.items():
        rocks = joiner.store
        assert isinstance(rocks, RocksStore)
        t0 = time.perf_counter()
        ckpt = rocks.checkpoint(workdir / f"p{index}" / f"ckpt-{shard}")
        size = sum(f.stat().st_size for f in ckpt.iterdir())
        metrics.observe_snapshot(time.perf_counter() - t0, size)
    t0 = time.perf_counter()
    clone = RocksStore.open_clone(
        workdir / f"p{index}" / f"ckpt-shard-{index}-0", workdir / f"p{index}" / "clone"
    )
    metrics.observe_resume(time.perf_counter() - t0)
    clone.close()
    total = JoinCounters()
    for joiner in joiners.values():
        total.add(joiner.counters)
    (workdir / f"counters-{index}.tmp").write_text(json.dumps(total.to_dict()))
    os.replace(workdir / f"counters-{index}.tmp", workdir / f"counters-{index}.json")
    (workdir / f"port-{index}").write_text(str(server.port))
    while True:
        time.sleep(1)


# -- the test ----------------------------------------------------------------------


def test_prometheus_scrapes_every_panel_query(tmp_path: Path) -> None:
    binary = prometheus_binary()
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stack = contextlib.ExitStack()
    try:
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, str(i), str(tmp_path)], cwd=REPO, env=env
                )
            )
        ports = [
            int(wait_for(f"process {i}", lambda i=i: _read(tmp_path / f"port-{i}"), 60))
            for i in range(2)
        ]
        web = free_port()
        query = Prometheus(web)
        config = tmp_path / "prometheus.yml"
        prom_log = stack.enter_context((tmp_path / "prometheus.log").open("wb"))
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in ports)
        config.write_text(
            f"global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: {SCRAPE_S}s\n"
            "scrape_configs:\n  - job_name: streamjoin\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )
        prom = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=prom_log,
        )
        procs.append(prom)

        def both_up() -> bool:
            try:
                return query.scalar('sum(up{job="streamjoin"})') == 2
            except (OSError, AssertionError):
                return False

        wait_for("Prometheus to scrape both processes", both_up, 60)
        # Final counters written, then enough scrapes after them for rate() windows.
        for i in range(2):
            wait_for(
                f"counters of process {i}", lambda i=i: _read(tmp_path / f"counters-{i}.json"), 60
            )
        time.sleep(4 * SCRAPE_S)

        empty = []
        for title, expr in panel_queries():
            result = query.api("query", query=expr)["result"]
            if not result:
                empty.append(f"{title}: {expr}")
        assert not empty, "panel queries without data:\n" + "\n".join(empty)

        want: dict[str, Any] = {"pairs": 0, "left": {}, "right": {}}
        for i in range(2):
            c = json.loads((tmp_path / f"counters-{i}.json").read_text())
            want["pairs"] += c["pairs"]
            for side in ("left", "right"):
                for k, v in c[side].items():
                    want[side][k] = want[side].get(k, 0) + v
        assert query.scalar("sum(streamjoin_matched_pairs_total)") == want["pairs"] > 0
        for side in ("left", "right"):
            w = want[side]
            sel = f'{{side="{side}"}}'
            got = {
                "events_in": query.scalar(f"sum(streamjoin_join_events_total{sel})"),
                "late": query.scalar(f"sum(streamjoin_late_events_total{sel})"),
                "duplicates": query.scalar(f"sum(streamjoin_duplicate_events_total{sel})"),
                "stored": query.scalar(f"sum(streamjoin_stored_events_total{sel})"),
                "retained": query.scalar(f"sum(streamjoin_state_entries{sel})"),
                "unmatched_emitted": query.scalar(f"sum(streamjoin_unmatched_rows_total{sel})"),
            }
            for k, v in got.items():
                assert v == w[k], (side, k, v, w[k])
            assert got["late"] > 0
            assert got["duplicates"] > 0
            assert got["events_in"] == got["late"] + got["duplicates"] + got["stored"]
            evicted = query.scalar(f"sum(streamjoin_evicted_events_total{sel})")
            assert got["stored"] - evicted == got["retained"] > 0
            input_events = query.scalar(f'sum(streamjoin_input_events_total{{stream="{side}"}})')
            assert input_events == w["events_in"]
        assert query.scalar("sum(streamjoin_invalid_events_total)") == 2 * 2 * 60
        assert query.scalar("max(streamjoin_hot_key_share)") > 0.1
        lag = query.scalar("max(streamjoin_watermark_lag_seconds)")
        assert 3_000 < lag < 3_700, lag  # the workload's event times are ~1 h old
        assert math.isfinite(query.scalar("sum(streamjoin_rocksdb_estimated_keys)"))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stack.close()


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
