"""Reading a topic's values back, per partition (Kafka tests)."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaError, TopicPartition

from dataflows.kafka.clients import librdkafka_log


def read_values(bootstrap: str, topic: str, partitions: int) -> dict[int, list[bytes]]:
    """Every value of every partition, in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.partition.eof": True, "logger": librdkafka_log})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
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
            out[msg.partition() or 0].append(msg.value() or b"")
    finally:
        consumer.close()
    return out
