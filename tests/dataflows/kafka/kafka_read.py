"""Reading a topic back, per partition (Kafka tests)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from dataflows.kafka.clients import librdkafka_log


def read_records(
    bootstrap: str, topic: str, partitions: int, *, committed: bool = False
) -> list[dict[str, Any]]:
    """Every record of a topic (key, value, headers, partition, offset), each
    partition in offset order; ``committed``: with ``read_committed`` (which
    librdkafka's mock cluster ignores)."""
    conf = {"bootstrap.servers": bootstrap, "group.id": "check",
            "enable.partition.eof": True, "logger": librdkafka_log}
    if committed:
        conf["isolation.level"] = "read_committed"
    consumer = Consumer(conf)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    rows: list[dict[str, Any]] = []
    ends = 0
    try:
        while ends < partitions:
            msg = consumer.poll(10)
            assert msg is not None, "no end of partition within 10 s"
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                ends += 1
                continue
            rows.append({"key": msg.key(), "value": msg.value(), "partition": msg.partition(),
                         "offset": msg.offset(),
                         "headers": {k: v.decode() for k, v in msg.headers() or []}})
    finally:
        consumer.close()
    return rows


def read_values(bootstrap: str, topic: str, partitions: int) -> dict[int, list[bytes]]:
    """Every value of every partition, in offset order."""
    out: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for row in read_records(bootstrap, topic, partitions):
        out[row["partition"] or 0].append(row["value"] or b"")
    return out
