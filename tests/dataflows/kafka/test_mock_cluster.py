"""librdkafka's mock cluster, as a helper process other processes connect to,
and what it does with transactions (measured; docs/kafka.md relies on it)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka_env import mock_only

from dataflows.errors import ConfigError
from dataflows.kafka import (
    KafkaClientError,
    KafkaSettings,
    MockCluster,
    MockClusterProcess,
    make_producer,
    parse_topic_spec,
    topic_partitions,
)
from dataflows.kafka.clients import librdkafka_log


def _read_all(bootstrap: str, topic: str, partition: int, **conf: str) -> list[tuple[int, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "read",
                         "enable.partition.eof": True, "logger": librdkafka_log, **conf})
    consumer.assign([TopicPartition(topic, partition, 0)])
    got = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None, "no end of partition within 10 s"
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                return got
            got.append((msg.offset(), msg.value()))
    finally:
        consumer.close()


def test_helper_process_serves_other_processes() -> None:
    with MockClusterProcess(brokers=2, topics={"a": 3}) as cluster:
        cluster.create_topic("b", 5)
        settings = KafkaSettings()
        assert topic_partitions(settings, cluster.bootstrap, "a") == [0, 1, 2]
        assert topic_partitions(settings, cluster.bootstrap, "b") == [0, 1, 2, 3, 4]
        producer = make_producer(settings, cluster.bootstrap)
        for p in range(5):
            producer.produce("b", value=f"v{p}".encode(), partition=p)
        assert producer.flush(10) == 0
        del producer
        assert _read_all(cluster.bootstrap, "b", 4) == [(0, b"v4")]
        with pytest.raises(KafkaClientError, match="at least 1 partition"):
            cluster.create_topic("c", 0)
        with pytest.raises(KafkaClientError, match=r"does not exist|no partitions"):
            topic_partitions(settings, cluster.bootstrap, "never-made", timeout_s=3)
        pid = cluster.pid
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone once its stdin closed


def test_topic_specs() -> None:
    assert parse_topic_spec("impressions:4") == ("impressions", 4)
    for bad in ("x", "x:0", ":3", "x:y"):
        with pytest.raises(ConfigError, match="NAME:PARTITIONS"):
            parse_topic_spec(bad)
    with pytest.raises(ConfigError, match="1 to 16 brokers"):
        MockCluster(0)


@mock_only
def test_mock_transactions_commit_and_abort_but_do_not_fence_or_filter() -> None:
    """What the mock does with transactions, as docs/kafka.md states it: commit
    and abort markers are written (offsets 3 and 7 below), but ``read_committed``
    shows aborted records, ``init_transactions`` by a new producer with the same
    ``transactional.id`` neither aborts the open transaction nor fences the old
    producer."""
    with MockCluster() as cluster:
        cluster.create_topic("t", 1)

        def producer() -> Producer:
            p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": "tx",
                          "linger.ms": 5, "logger": librdkafka_log})
            p.init_transactions(10)
            return p

        old = producer()
        for values, end in ((b"c", "commit"), (b"a", "abort"), (b"o", None)):
            old.begin_transaction()
            for i in range(3):
                old.produce("t", value=values + bytes([48 + i]))
            old.flush(10)
            if end == "commit":
                old.commit_transaction(10)
            elif end == "abort":
                old.abort_transaction(10)
        new = producer()  # on a real broker: aborts "o*" and fences `old`
        new.begin_transaction()
        new.produce("t", value=b"n0")
        new.commit_transaction(10)
        old.produce("t", value=b"z0")
        old.commit_transaction(10)  # a real broker refuses: the zombie is fenced
        committed = _read_all(cluster.bootstrap, "t", 0, **{"isolation.level": "read_committed"})
        assert committed == [(0, b"c0"), (1, b"c1"), (2, b"c2"), (4, b"a0"), (5, b"a1"),
                             (6, b"a2"), (8, b"o0"), (9, b"o1"), (10, b"o2"), (11, b"n0"),
                             (13, b"z0")]
