"""A real Prometheus scrapes a real Kafka run: the Kafka panels of the
dashboards return data, the consumer lag per partition was above zero while the
run worked through its backlog and is zero at the end, as in run.json."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_runs import (
    Server,
    dataset,
    kafka_server,
    produce_dataset,
    run_json,
    streamjoin,
    topics,
    url,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
from prometheus_harness import (
    free_port_range,
    panel_queries,
    running_prometheus,
    wait_for,
)

pytestmark = pytest.mark.slow
SCRAPE_S = 1


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from kafka_server()


def test_prometheus_sees_the_kafka_panels_of_a_kafka_run(tmp_path: Path, server: Server) -> None:
    t = topics(server, impressions=2, plays=2, joined=2, late=1, invalid=1)
    ds = dataset(tmp_path / "data", impressions=2_000, partitions=2)
    produce_dataset(server, ds, t["impressions"], t["plays"])
    base = free_port_range(1)
    prefix = t["impressions"].rsplit(".", 1)[0]
    with running_prometheus(tmp_path, [f"127.0.0.1:{base}"], SCRAPE_S) as prom:
        wait_for("Prometheus to scrape the (down) target",
                 lambda: len(prom.vector('up{job="streamjoin"}')) == 1, 60)
        started = time.time()
        out = tmp_path / "out"
        done = streamjoin("run", "--left", url(server, t["impressions"]), "--right",
                          url(server, t["plays"]), "--until-end", "--out-kafka",
                          url(server, prefix), "--out", str(out), "--metrics-port", str(base),
                          "--metrics-linger", "15s", "--read-delay", "250ms", "--batch-size",
                          "100", "--shards", "4", "--snapshot-interval", "1s")
        ended = time.time()
        assert done.returncode == 0, done.stderr[-3000:]
        kafka_queries = panel_queries(kafka=True)
        assert len(kafka_queries) == 3
        empty = [f"{title}: {expr}" for title, expr in kafka_queries
                 if not prom.series(expr, started - SCRAPE_S, ended + SCRAPE_S, SCRAPE_S)]
        assert not empty, "Kafka panel queries without data:\n" + "\n".join(empty)
        # Working through the backlog, then caught up.
        peak = prom.scalar("max(max_over_time(streamjoin_kafka_consumer_lag_records[10m]))",
                           at=ended)
        last = prom.vector("last_over_time(streamjoin_kafka_consumer_lag_records[10m])", at=ended)
        assert peak > 0
        assert {s["metric"]["partition"] for s in last} == set(
            run_json(out)["kafka"]["partitions"])
        assert all(float(s["value"][1]) == 0 for s in last)
        for part in run_json(out)["kafka"]["partitions"].values():
            assert part["lag_records"] == 0
