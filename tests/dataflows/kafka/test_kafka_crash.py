"""kill -9 and resume with a Kafka source and Kafka sinks: the whole process
group (the run's parent and its workers) is killed at random moments, the same
command resumes from the recovery store, and at the end ``streamjoin
validate`` (which reads the output topics, deduplicating by id) finds the
exact batch join, nothing lost.

With transactions (the default), an epoch's transaction is committed only once
the epoch is durable, and a resume sends the spooled records of a durable but
uncommitted epoch again: the committed transactions hold every output row
exactly once (no duplicate to remove). The records of aborted transactions,
which librdkafka's mock cluster shows to every reader, are at most the open and
the pending transaction of each shard per kill. At least once: every row is
there, the repeats are counted and removed by id."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_runs import (
    Server,
    dataset,
    kafka_server,
    kill_group,
    produce_dataset,
    read_topic,
    run_json,
    start,
    stat,
    streamjoin,
    topics,
    url,
    validate,
)

from dataflows.kafka.spool import committed_labels

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from kafka_server()


@pytest.mark.parametrize(("delivery", "processes", "kills"),
                         [("transactional", 2, 3), ("at-least-once", 1, 2)])
def test_kill_9_and_resume_with_kafka_sources_and_sinks(
    tmp_path: Path, server: Server, delivery: str, processes: int, kills: int
) -> None:
    t = topics(server, impressions=3, plays=3, joined=4, late=1, invalid=1)
    ds = dataset(tmp_path / "data", impressions=1_200, keys=200)
    produce_dataset(server, ds, t["impressions"], t["plays"])
    out, rec = tmp_path / "out", tmp_path / "rec"
    prefix = t["impressions"].rsplit(".", 1)[0]
    args = ["run", "--left", url(server, t["impressions"]), "--right", url(server, t["plays"]),
            "--until-end", "--how", "left", "--upper", "1m", "--shards", "4",
            "--processes", str(processes), "--out-kafka", url(server, prefix),
            "--kafka-delivery", delivery, "--out", str(out), "--recovery-dir", str(rec),
            "--snapshot-interval", "300ms", "--read-delay", "120ms", "--batch-size", "40",
            "--metrics-port", "0", "--metrics-linger", "0"]
    rng = random.Random(7)
    for _ in range(kills):
        proc = start(*args)
        time.sleep(rng.uniform(3.0, 6.0))
        assert proc.poll() is None, "the run ended before the kill; make it slower"
        kill_group(proc)
    done = streamjoin(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert run_json(out)["recovery"]["mode"] == "resume"
    ok, report = validate(out)
    assert ok, report
    rows = stat(report, "joined rows")
    duplicates = stat(report, "kafka joined duplicates removed")
    print(f"{delivery}: {rows} rows, {duplicates} duplicates removed")
    if delivery == "transactional":
        # The committed set is exactly the output: nothing to deduplicate.
        assert duplicates == 0
        committed = committed_labels(str(rec / "kafka-spool"))
        records = read_topic(server, t["joined"], 4)
        aborted = Counter(r["headers"]["txn"].split("#")[0].rsplit(".", 1)[0]
                          for r in records if r["headers"]["txn"] not in committed)
        labels = {r["headers"]["txn"] for r in records if r["headers"]["txn"] not in committed}
        per_shard = Counter(label.split("#")[0].rsplit(".", 1)[0] for label in labels)
        print(f"records of uncommitted transactions per shard: {dict(aborted)}")
        # Per kill and shard at most two: the open one and the pending one.
        assert all(n <= 2 * kills for n in per_shard.values())
        assert stat(report, "kafka joined uncommitted, left out") == sum(aborted.values())
    else:
        assert stat(report, "kafka joined records") == rows + duplicates
