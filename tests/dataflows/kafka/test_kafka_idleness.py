"""Idleness of Kafka partitions in real runs: a partition that has caught up
and stays silent stops holding the watermark back after the idle timeout (an
unbounded run, watched through its metrics); a lagging partition, even one
whose reads bring only dead letters for longer than the idle timeout, never
counts as idle, so its events are not late."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_runs import (
    Server,
    kafka_server,
    kill_group,
    put,
    run_json,
    scrape,
    start,
    streamjoin,
    topics,
    url,
    validate,
    wait_for,
)

pytestmark = pytest.mark.slow

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from kafka_server()


def event(key: str, ts_ms: int) -> bytes:
    return json.dumps({"key": key, "ts": T0 + ts_ms}).encode()


def test_a_caught_up_silent_partition_stops_holding_the_watermark(
    tmp_path: Path, server: Server
) -> None:
    t = topics(server, impressions=1, plays=3)
    put(server, t["plays"], 1, [event("early", 0), event("early", 1000)])  # then silent
    # partition 2 of plays stays empty; impressions and plays partition 0 go on
    # (a new event each 100 ms, a second of event time apart), so they stay active.
    stop = threading.Event()

    def feed() -> None:
        second = 0
        while not stop.is_set() and second < 300:
            put(server, t["impressions"], 0, [event(f"l{second}", second * 1000)])
            put(server, t["plays"], 0, [event(f"p{second}", second * 1000)])
            second += 1
            stop.wait(0.1)

    feeder = threading.Thread(target=feed)
    feeder.start()
    out = tmp_path / "out"
    proc = start("run", "--left", url(server, t["impressions"]), "--right",
                 url(server, t["plays"]), "--idle-timeout", "3s", "--max-out-of-orderness", "1s",
                 "--upper", "1s", "--shards", "4", "--out", str(out), "--metrics-port", "0",
                 "--metrics-linger", "0", "--snapshot-interval", "500ms")
    try:
        endpoint = out / ".run" / "metrics-0.json"
        wait_for(endpoint.exists, 30, "the metrics endpoint")
        port = int(json.loads(endpoint.read_text())["port"])

        def watermark() -> float:
            return scrape(port, "streamjoin_watermark_seconds") or 0.0

        # The silent partition holds W at its newest event (1 s) minus the
        # out-of-orderness bound until it has been silent for the idle timeout;
        # then W follows the partitions that go on.
        wait_for(lambda: watermark() >= (T0 + 10_000) / 1000, 25,
                 "the watermark past the idle partition")
    finally:
        stop.set()
        feeder.join()
        kill_group(proc, signal.SIGTERM)


def test_a_lagging_partition_reading_only_dead_letters_causes_no_late_events(
    tmp_path: Path, server: Server
) -> None:
    t = topics(server, impressions=2, plays=2)
    put(server, t["impressions"], 0, [event(f"k{s}", s * 1000) for s in range(20)])
    # Impressions partition 1 goes on (open, its watermark far ahead) for as long
    # as plays partition 1 reads its backlog: 300 undecodable records, then the
    # plays of the impressions of partition 0, far behind in event time.
    put(server, t["impressions"], 1, [event(f"x{s}", 600_000 + s) for s in range(600)])
    put(server, t["plays"], 0, [event(f"k{s}", 600_000 + s) for s in range(5)])
    put(server, t["plays"], 1, [b"{not json"] * 300 + [event(f"k{s}", s * 1000 + 500)
                                                       for s in range(20)])
    out = tmp_path / "out"
    done = streamjoin("run", "--left", url(server, t["impressions"]), "--right",
                      url(server, t["plays"]), "--until-end", "--idle-timeout", "500ms",
                      "--max-out-of-orderness", "1s", "--upper", "1s", "--shards", "2",
                      "--batch-size", "10", "--read-delay", "30ms", "--out", str(out),
                      "--max-invalid-fraction", "1",  # the backlog is mostly dead letters
                      "--metrics-port", "0", "--metrics-linger", "0",
                      # A quiet partition reports itself once a heartbeat: well
                      # within the idle timeout.
                      env={"STREAMJOIN_HEARTBEAT": "100ms"})
    assert done.returncode == 0, done.stderr[-3000:]
    counters = run_json(out)["counters"]
    assert counters["invalid"]["right"] == 300
    # Reading the backlog took far longer than the idle timeout, yet the
    # partition was lagging all along: it held W, its plays were on time.
    assert counters["right"]["late"] == 0
    assert counters["pairs"] == 20
    ok, report = validate(out)
    assert ok, report
