"""The Kafka sinks through real Bytewax dataflows (``run_main``), against a real
Kafka protocol server: a crash and resume with transactions per shard and
epoch committed once the epoch is durable (deferred commits, the spool's
re-send), and at least once; Avro values under the registered output schema."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import fastavro
from bytewax.dataflow import Dataflow
from bytewax.inputs import AbortExecution, FixedPartitionedSource, StatefulSourcePartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main
from conftest import KafkaHost
from kafka_read import read_records

from dataflows.inputs import Invalid
from dataflows.inputs.confluent_wire import unframe
from dataflows.kafka import KafkaSettings, LocalSchemaRegistry, SchemaRegistry, parse_kafka_url
from dataflows.shards import shard_names
from dataflows.sinks.kafka import (
    KafkaRowPartition,
    KafkaRowSink,
    KafkaSinkOptions,
    KafkaSinkPosition,
    transactional_id,
)
from joins import Event, Late, Matched

SHARDS = shard_names(2)


def read_topic(bootstrap: str, topic: str, partitions: int) -> list[dict[str, Any]]:
    return read_records(bootstrap, topic, partitions, committed=True)


def dead_letters(n: int) -> list[tuple[str, list[Invalid]]]:
    return [(SHARDS[i % 2], [Invalid("left", "bad", f"raw{i}".encode(), "left:in:0", i)])
            for i in range(n)]


class _Paced(StatefulSourcePartition[Any, int]):
    """Items one a read, ``pause_s`` apart, with an exact resume position
    (``TestingSource`` does not count its ``PAUSE`` markers in its snapshot, so
    its resumes replay items the crashed run had already consumed); aborts the
    flow once before item ``crash_at``."""

    def __init__(self, items: list[Any], pause_s: float, crash_at: list[int],
                 resume: int | None) -> None:
        self._items, self._pause_s, self._crash_at = items, pause_s, crash_at
        self._next = resume or 0
        self._awake: datetime | None = None

    def next_batch(self) -> list[Any]:
        if self._next >= len(self._items):
            raise StopIteration
        if self._crash_at and self._next == self._crash_at[0]:
            self._crash_at.clear()
            raise AbortExecution
        item = self._items[self._next]
        self._next += 1
        self._awake = datetime.now(UTC) + timedelta(seconds=self._pause_s)
        return [item]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next


class PacedSource(FixedPartitionedSource[Any, int]):
    def __init__(self, items: list[Any], pause_s: float, crash_at: list[int]) -> None:
        self._args = (items, pause_s, crash_at)

    def list_parts(self) -> list[str]:
        return ["items"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Paced:
        return _Paced(*self._args, resume_state)


def run_with_crash(tmp_path: Path, topic_url: str, options: KafkaSinkOptions,
                   commits: list[str]) -> None:
    """40 dead letters through a recovering dataflow, one every 40 ms in epochs
    of 150 ms (about 4 items an epoch); the first run aborts before item 23,
    the second resumes and finishes."""
    rec = tmp_path / "rec"
    rec.mkdir()
    init_db_dir(rec, 1)
    crash_at = [23]

    def flow() -> Dataflow:
        df = Dataflow("sink")
        stream = op.input("in", df, PacedSource(dead_letters(40), 0.04, crash_at))
        sink = KafkaRowSink("invalid", parse_kafka_url(topic_url), KafkaSettings(), options,
                            SHARDS, SHARDS, on_commit=commits.append)
        op.output("out", stream, sink)
        return df

    config = RecoveryConfig(str(rec))
    epoch = timedelta(milliseconds=150)
    run_main(flow(), epoch_interval=epoch, recovery_config=config)  # stops at the abort
    first = len(commits)
    assert not crash_at
    run_main(flow(), epoch_interval=epoch, recovery_config=config)
    if options.delivery == "transactional":
        assert 0 < first < len(commits)


def test_transactions_per_shard_commit_exactly_the_output_across_a_crash(
    tmp_path: Path, kafka: KafkaHost
) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic, 3)
    commits: list[str] = []
    options = KafkaSinkOptions(delivery="transactional", spool_dir=str(tmp_path / "spool"))
    run_with_crash(tmp_path, f"kafka://{kafka.bootstrap}/{topic}", options, commits)
    rows = read_topic(kafka.bootstrap, topic, 3)
    committed = set(commits)
    assert len(committed) == len(commits)
    assert {c.split("#")[0] for c in commits} == {
        f"{transactional_id(topic, s)}.{i}" for s in SHARDS for i in (0, 1)}
    in_committed = Counter(r["headers"]["id"] for r in rows if r["headers"]["txn"] in committed)
    # The committed transactions hold every output exactly once: an epoch's
    # transaction is committed only once Bytewax made the epoch durable, so the
    # epoch the resume replays was never committed before.
    assert in_committed == Counter({f"left:in:0@{i}": 1 for i in range(40)})
    others = [r for r in rows if r["headers"]["txn"] not in committed]
    print(f"{len(commits)} commits, {len(rows)} records, {len(others)} in transactions "
          "never committed (the mock cluster shows aborted records)")
    assert all(r["key"] == b"left:in:0" for r in rows)  # dead letters: keyed by source partition
    assert not list((tmp_path / "spool").rglob("*.spool"))  # every spool committed and gone


def _partition(url: str, spool: Path, resume: KafkaSinkPosition | None,
               commits: list[str]) -> KafkaRowPartition:
    sink = KafkaRowSink("invalid", parse_kafka_url(url), KafkaSettings(),
                        KafkaSinkOptions(spool_dir=str(spool)), SHARDS, SHARDS[:1],
                        on_commit=commits.append)
    return sink.build_part("out", SHARDS[0], resume)


def test_a_durable_epoch_whose_commit_the_crash_prevented_is_sent_again_from_the_spool(
    tmp_path: Path, kafka: KafkaHost
) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic, 1)
    url = f"kafka://{kafka.bootstrap}/{topic}"
    commits: list[str] = []
    first = _partition(url, tmp_path, None, commits)
    batches = dead_letters(9)
    first.write_batch([batches[0][1], batches[1][1]])  # epoch 1
    at_epoch_1 = first.snapshot()
    assert at_epoch_1.pending == 1
    assert commits == []
    first.write_batch([batches[2][1]])  # epoch 2: then a kill -9 (no close, no commit)
    first._producers = [None, None]  # what a killed process leaves: nothing flushed later
    # Bytewax resumes from epoch 1's snapshot: its transaction was never
    # committed, so it is sent again (epoch 2 is replayed by the flow itself).
    second = _partition(url, tmp_path, at_epoch_1, commits)
    assert second.resent == 2
    assert len(commits) == 1
    rows = read_topic(kafka.bootstrap, topic, 1)
    ids = Counter(r["headers"]["id"] for r in rows if r["headers"]["txn"] in set(commits))
    assert ids == Counter({"left:in:0@0": 1, "left:in:0@1": 1})
    second.close()


def test_a_transaction_committed_before_the_crash_is_not_sent_again(
    tmp_path: Path, kafka: KafkaHost
) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic, 1)
    url = f"kafka://{kafka.bootstrap}/{topic}"
    commits: list[str] = []
    first = _partition(url, tmp_path, None, commits)
    batches = dead_letters(3)
    first.write_batch([batches[0][1]])
    at_epoch_1 = first.snapshot()
    first.write_batch([batches[1][1]])
    first.snapshot()  # commits epoch 1's transaction; epoch 2 not durable yet: kill -9
    assert len(commits) == 1
    second = _partition(url, tmp_path, at_epoch_1, commits)
    assert second.resent == 0
    assert len(commits) == 1
    rows = read_topic(kafka.bootstrap, topic, 1)
    ids = Counter(r["headers"]["id"] for r in rows if r["headers"]["txn"] in set(commits))
    assert ids == Counter({"left:in:0@0": 1})
    second.close()


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
