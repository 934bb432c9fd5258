"""The metrics wired into the engine, in process: a real flow over real RocksDB
feeds its JoinMetrics while another thread scrapes it; the endpoint, its
fallback, the end-of-run linger and the configuration keys."""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bytewax.testing import run_main
from prometheus_client import CollectorRegistry, generate_latest

from dataflows.config import RunConfig, build_config
from dataflows.errors import ConfigError, RunError
from dataflows.flow import build_flow
from dataflows.generator import GeneratorConfig, generate
from dataflows.metrics import JoinMetrics, ProcessMetrics, check_metrics_ports, read_endpoints
from dataflows.metrics.wiring import endpoint_path
from dataflows.run import format_summary, prepare_out_dir, summarize

SIDES = ("left", "right")


def _config(tmp_path: Path, **values: Any) -> RunConfig:
    ds = generate(
        tmp_path / "data",
        GeneratorConfig(
            impressions=3_000,
            keys=500,
            partitions=2,
            malformed_fraction=0.01,
            late_fraction=0.01,
            duplicate_fraction=0.01,
            late_lag_ms=15_000,
            rate_per_s=100.0,  # 30 s of event time: late events fall behind the watermark
        ),
        progress=False,
    )
    return build_config(
        {
            "left": [str(p) for p in ds.left_paths],
            "right": [str(p) for p in ds.right_paths],
            "out": str(tmp_path / "out"),
            "shards": 4,
            "batch_size": 200,
            **values,
        }
    )


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_run_feeds_the_metrics_its_final_counters(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    prepare_out_dir(cfg)
    registry = CollectorRegistry()
    metrics = JoinMetrics(registry, spec=cfg.spec, process_collector=False)
    flow = build_flow(cfg, 0, metrics=metrics)
    scrapes: list[bytes] = []
    done = threading.Event()

    def scrape() -> None:  # Prometheus' HTTP thread, concurrent with the worker
        while not done.is_set():
            scrapes.append(generate_latest(registry))
            time.sleep(0.005)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        run_main(flow)
    finally:
        done.set()
        scraper.join()
    summary = summarize(cfg, 1.0, datetime.now(UTC), 0, 0)
    c = summary["counters"]
    assert _value(registry, "streamjoin_matched_pairs_total") == c["pairs"] > 0
    for side in SIDES:
        want = c[side]
        got = {
            "events_in": _value(registry, "streamjoin_join_events_total", side=side),
            "late": _value(registry, "streamjoin_late_events_total", side=side),
            "duplicates": _value(registry, "streamjoin_duplicate_events_total", side=side),
            "stored": _value(registry, "streamjoin_stored_events_total", side=side),
            "unmatched_emitted": _value(registry, "streamjoin_unmatched_rows_total", side=side),
            "unmatched_dropped": _value(
                registry, "streamjoin_unmatched_dropped_events_total", side=side
            ),
        }
        for name, value in got.items():
            assert value == want[name], (side, name)
        evicted = _value(registry, "streamjoin_evicted_events_total", side=side)
        assert evicted == want["stored"] - want["retained"]
        read = sum(
            s.value
            for fam in registry.collect()
            if fam.name == "streamjoin_input_events"
            for s in fam.samples
            if s.name.endswith("_total") and s.labels["stream"] == side
        )
        assert read == summary["events_read"][side] == want["events_in"]
        invalid = sum(
            _value(registry, "streamjoin_invalid_events_total", stream=side, reason=r)
            for r in ("parse", "encoding", "missing_field", "empty_value", "bad_type",
                      "bad_key", "out_of_range", "avro", "other")
        )  # fmt: skip
        assert invalid == c["invalid"][side] > 0
    assert c["left"]["late"] > 0
    assert _value(registry, "streamjoin_batch_events_total") == sum(
        c[s]["events_in"] for s in SIDES
    )
    assert _value(registry, "streamjoin_batch_duration_seconds_count") > 0
    # Every shard was read while open and let go at its end; no scrape failed.
    assert len(scrapes) > 3
    assert any(b'streamjoin_state_entries{shard="' in s for s in scrapes)
    assert metrics.state.shards == ()
    assert _value(registry, "streamjoin_state_scrape_errors_total") == 0
    assert b"streamjoin_state_entries{" not in generate_latest(registry)


def test_the_default_port_falls_back_but_an_explicit_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr("dataflows.metrics.wiring.DEFAULT_METRICS_PORT", port)
        log = io.StringIO()
        served = ProcessMetrics.start(cfg, 0, log=log)
        try:
            assert served.server.port not in (0, port)
            assert f"metrics port {port} is taken" in log.getvalue()
            assert f"serves metrics at {served.server.url}" in log.getvalue()
            assert read_endpoints(cfg.out_dir, 1)[0]["port"] == served.server.port
        finally:
            served.server.close()
        explicit = RunConfig(**{**cfg.__dict__, "metrics_port": port})
        with pytest.raises(RunError, match=f"--metrics-port {port}"):
            ProcessMetrics.start(explicit, 0, log=io.StringIO())


def test_the_run_checks_explicit_ports_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path, processes=3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The default base port falls back to ephemeral ones, 0 asks for them.
        monkeypatch.setattr("dataflows.metrics.wiring.DEFAULT_METRICS_PORT", port)
        check_metrics_ports(cfg)
        check_metrics_ports(replace(cfg, metrics_port=0))
        # Process 2 of 3 would serve on base + 2.
        base = replace(cfg, metrics_port=port - 2)
        with pytest.raises(ConfigError) as err:
            check_metrics_ports(base)
    assert str(err.value) == (
        f"--metrics-port {port - 2}: process 2 cannot serve metrics on 127.0.0.1:{port} "
        f"({os.strerror(errno.EADDRINUSE)}); process i serves on {port - 2} + i: choose free "
        "ports, or 0 for ephemeral ones"
    )


def test_an_ipv6_endpoint_is_recorded_with_brackets(tmp_path: Path) -> None:
    cfg = _config(tmp_path, metrics_port=0, metrics_host="::1")
    log = io.StringIO()
    try:
        served = ProcessMetrics.start(cfg, 0, log=log)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    served.finish(linger_s=0)
    url = f"http://[::1]:{served.server.port}/metrics"
    assert f"process 0 serves metrics at {url}" in log.getvalue()
    assert [e["url"] for e in read_endpoints(cfg.out_dir, 1)] == [url]
    summary = summarize(cfg, 1.0, datetime.now(UTC), 0, 0)
    assert [e["url"] for e in summary["metrics"]] == [url]
    assert f"metrics        {url}  (one per process" in format_summary(summary)


def test_a_process_lingers_for_a_fresh_scrape_only_when_scraped(tmp_path: Path) -> None:
    cfg = _config(tmp_path, metrics_port=0)
    served = ProcessMetrics.start(cfg, 0, log=io.StringIO())
    t0 = time.monotonic()
    assert served.finish(linger_s=10) is False  # nobody scraped: no wait
    assert time.monotonic() - t0 < 1
    record = json.loads(Path(endpoint_path(cfg.out_dir, 0)).read_text())
    assert record["final_counts_scraped"] is False
    assert record["flow_finished_at"] <= time.time()

    served = ProcessMetrics.start(cfg, 1, log=io.StringIO())
    url = served.server.url
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
                    resp.read()
            except OSError:
                return
            stop.wait(0.2)

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        while served.server.scrapes < 2:
            time.sleep(0.02)
        t0 = time.monotonic()
        assert served.finish(linger_s=10) is True
        assert time.monotonic() - t0 < 1.5  # about one scrape interval, not the linger
    finally:
        stop.set()
        thread.join()
    record = json.loads(Path(endpoint_path(cfg.out_dir, 1)).read_text())
    assert record["final_counts_scraped"] is True
    assert 0 <= record["lingered_s"] < 1.5


def test_metrics_keys_from_flags_and_files(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert (cfg.metrics_port, cfg.metrics_host, cfg.metrics_linger_ms) == (
        None,
        "127.0.0.1",
        30_000,
    )
    left, right = list(cfg.left.paths), list(cfg.right.paths)
    base = {"left": left, "right": right, "out": cfg.out_dir}
    file = tmp_path / "join.toml"
    file.write_text('metrics-port = 9500\nmetrics_host = "::1"\nmetrics-linger = "2s"\n')
    got = build_config({**base, "metrics_port": 9600}, str(file))
    assert (got.metrics_port, got.metrics_host, got.metrics_linger_ms) == (9600, "::1", 2_000)
    assert RunConfig.from_json(got.to_json()) == got
    old = {k: v for k, v in got.to_json().items() if not k.startswith("metrics_")}
    assert RunConfig.from_json(old).metrics_port is None  # a config.json from before
    with pytest.raises(ConfigError, match="metrics-port must be an integer from 0 to 65535"):
        build_config({**base, "metrics_port": 70_000})
    with pytest.raises(ConfigError, match="up to 65536"):
        build_config({**base, "metrics_port": 65535, "processes": 2})
    with pytest.raises(ConfigError, match="metrics-linger"):
        build_config({**base, "metrics_linger": "soon"})


def test_the_summary_says_where_metrics_were_served() -> None:
    endpoints = [{"process": i, "url": f"http://127.0.0.1:{9464 + i}/metrics"} for i in range(2)]
    counters = {"pairs": 0, "invalid": {"left": 0, "right": 0}}
    for side in SIDES:
        counters[side] = dict.fromkeys(
            ("events_in", "late", "duplicates", "unmatched_emitted", "unmatched_dropped",
             "retained"), 0)  # fmt: skip
    summary = {
        "spec": {"how": "left"}, "elapsed_s": 1.0, "processes": 2, "workers_per_process": 1,
        "shards": 4, "counters": counters, "events_per_s": 0.0, "peak_state_bytes": 0,
        "peak_rss_bytes": 0, "outputs": {"joined": "out/joined"}, "metrics": endpoints,
    }  # fmt: skip
    text = format_summary(summary)
    assert "metrics        http://127.0.0.1:9464/metrics  http://127.0.0.1:9465/metrics" in text
