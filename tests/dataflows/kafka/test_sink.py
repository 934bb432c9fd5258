"""The Kafka sinks through real Bytewax dataflows (``run_main``), against a real
Kafka protocol server: a crash and resume with transactions per shard and
epoch, and at least once; Avro values under the registered output schema."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import fastavro
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main
from confluent_kafka import Consumer, KafkaError, TopicPartition
from conftest import KafkaHost

from dataflows.inputs import Invalid
from dataflows.inputs.confluent_wire import unframe
from dataflows.kafka import KafkaSettings, LocalSchemaRegistry, SchemaRegistry, parse_kafka_url
from dataflows.kafka.clients import librdkafka_log
from dataflows.shards import shard_names
from dataflows.sinks.kafka import KafkaRowSink, KafkaSinkOptions, transactional_id
from joins import Event, Late, Matched

SHARDS = shard_names(2)


def read_topic(bootstrap: str, topic: str, partitions: int) -> list[dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.partition.eof": True, "isolation.level": "read_committed",
                         "logger": librdkafka_log})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    rows, ends = [], 0
    try:
        while ends < partitions:
            msg = consumer.poll(10)
            assert msg is not None, "no end of partition within 10 s"
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                ends += 1
                continue
            rows.append({"key": msg.key(), "value": msg.value(),
                         "headers": {k: v.decode() for k, v in msg.headers() or []}})
    finally:
        consumer.close()
    return rows


def dead_letters(n: int) -> list[tuple[str, list[Invalid]]]:
    return [(SHARDS[i % 2], [Invalid("left", "bad", f"raw{i}".encode(), "left:in:0", i)])
            for i in range(n)]


def run_with_crash(tmp_path: Path, topic_url: str, options: KafkaSinkOptions,
                   commits: list[tuple[str, int]]) -> None:
    """40 dead letters through a recovering dataflow, epochs of about 5 items (a
    pause after every fifth); the first run crashes in the middle of an epoch,
    after item 22 was written, the second resumes and finishes."""
    rec = tmp_path / "rec"
    rec.mkdir()
    init_db_dir(rec, 1)
    items: list[Any] = []
    for i, item in enumerate(dead_letters(40)):
        items.append(item)
        if i == 22:
            items.append(TestingSource.ABORT())
        if i % 5 == 4:
            items.append(TestingSource.PAUSE(timedelta(milliseconds=300)))

    def flow() -> Dataflow:
        df = Dataflow("sink")
        stream = op.input("in", df, TestingSource(items, batch_size=1))
        sink = KafkaRowSink("invalid", parse_kafka_url(topic_url), KafkaSettings(), options,
                            SHARDS, SHARDS, on_commit=lambda tid, n: commits.append((tid, n)))
        op.output("out", stream, sink)
        return df

    config = RecoveryConfig(str(rec))
    epoch = timedelta(milliseconds=150)
    run_main(flow(), epoch_interval=epoch, recovery_config=config)  # stops at ABORT
    first = len(commits)
    run_main(flow(), epoch_interval=epoch, recovery_config=config)
    if options.delivery == "transactional":
        assert 0 < first < len(commits)


def test_transactions_per_shard_commit_exactly_the_output_across_a_crash(
    tmp_path: Path, kafka: KafkaHost
) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic, 3)
    commits: list[tuple[str, int]] = []
    run_with_crash(tmp_path, f"kafka://{kafka.bootstrap}/{topic}",
                   KafkaSinkOptions(delivery="transactional"), commits)
    rows = read_topic(kafka.bootstrap, topic, 3)
    committed = {f"{tid}#{n}" for tid, n in commits}
    assert {tid for tid, _ in commits} == {transactional_id(topic, s) for s in SHARDS}
    in_committed = Counter(r["headers"]["id"] for r in rows if r["headers"]["txn"] in committed)
    # The committed transactions hold every output: none lost, ids deduplicate ...
    assert set(in_committed) == {f"left:in:0@{i}" for i in range(40)}
    # ... and repeat only what the resume replayed: Bytewax resumes from the last
    # durable epoch, and a shard may have committed an epoch's transaction (in
    # its snapshot) that was not durable yet. Here about one epoch (~5 items).
    repeated = sum(n - 1 for n in in_committed.values())
    others = [r for r in rows if r["headers"]["txn"] not in committed]
    print(f"{len(commits)} commits, {len(rows)} records, {repeated} repeated in committed "
          f"transactions, {len(others)} in transactions never committed")
    assert repeated <= 10
    assert all(r["key"] == b"left:in:0" for r in rows)  # dead letters: keyed by source partition


def test_at_least_once_resends_at_most_an_epoch_and_ids_deduplicate(
    tmp_path: Path, kafka: KafkaHost
) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic, 2)
    run_with_crash(tmp_path, f"kafka://{kafka.bootstrap}/{topic}",
                   KafkaSinkOptions(delivery="at-least-once"), [])
    ids = Counter(r["headers"]["id"] for r in read_topic(kafka.bootstrap, topic, 2))
    assert set(ids) == {f"left:in:0@{i}" for i in range(40)}  # nothing lost
    resent = sum(n - 1 for n in ids.values())
    print(f"{sum(ids.values())} records, {resent} sent again")
    assert resent <= 10  # the epochs replayed after the resume (about one here)
    assert all("txn" not in r["headers"] for r in read_topic(kafka.bootstrap, topic, 2))


def test_avro_values_under_the_registered_schema_keyed_by_join_key(
    kafka: KafkaHost, registry: LocalSchemaRegistry
) -> None:
    topics = {kind: f"out-{uuid.uuid4().hex[:10]}.{kind}" for kind in ("joined", "late")}
    for name in topics.values():
        kafka.create_topic(name, 1)
    left = Event("left", "user:1", 1000, b"\x01" * 8, {"key": "user:1", "ts": 1000}, "l:0", 4)
    right = Event("right", "user:1", 2000, b"\x02" * 8, {"key": "user:1", "ts": 2000}, "r:0", 9)
    options = KafkaSinkOptions(value_format="confluent-avro", registry_url=registry.url)
    for kind, item in (("joined", Matched(left, right)), ("late", Late(right, 9000, 7000))):
        df = Dataflow(f"avro-{kind}")
        stream = op.input("in", df, TestingSource([(SHARDS[0], [item])]))
        op.output("out", stream, KafkaRowSink(
            kind, parse_kafka_url(f"kafka://{kafka.bootstrap}/{topics[kind]}"),  # type: ignore[arg-type]
            KafkaSettings(), options, SHARDS, SHARDS))
        run_main(df)
    client = SchemaRegistry(registry.url)
    [joined] = read_topic(kafka.bootstrap, topics["joined"], 1)
    assert joined["key"] == b"user:1"
    schema_id = unframe(joined["value"])
    assert client.latest(f"{topics['joined']}-value")[0] == schema_id
    datum = fastavro.schemaless_reader(io.BytesIO(joined["value"][5:]),
                                       client.writer_schema(schema_id), None)
    assert datum["kind"] == "match"
    assert datum["id"] == Matched(left, right).id == joined["headers"]["id"]
    assert datum["left"] == '{"key":"user:1","ts":1000}'
    [late] = read_topic(kafka.bootstrap, topics["late"], 1)
    late_id = unframe(late["value"])
    late_datum = fastavro.schemaless_reader(io.BytesIO(late["value"][5:]),
                                            client.writer_schema(late_id), None)
    assert (late_datum["watermark_ms"], late_datum["lateness_ms"]) == (9000, 7000)
    assert late["key"] == b"user:1"
