"""Kafka client plumbing: where topics are, how clients are made, the Schema
Registry, and a mock cluster and a local registry for tests and ``kafka-dev``.
No engine here (Bytewax's Kafka source and sinks are in
:mod:`dataflows.sources.kafka` and :mod:`dataflows.sinks.kafka`; decoding record
values is :mod:`dataflows.inputs.kafka_records`).

- :mod:`~dataflows.kafka.urls`: ``kafka://HOST:PORT[,HOST:PORT]/TOPIC``
  (:func:`parse_kafka_url`, :class:`KafkaUrl`, :func:`output_topics`);
- :mod:`~dataflows.kafka.settings`: :class:`KafkaSettings`, librdkafka
  properties from a config section or ``KEY=VALUE`` flags, secrets masked;
- :mod:`~dataflows.kafka.clients`: consumers, producers and admin clients,
  broker errors logged and counted (:class:`ClientErrors`), topic metadata;
- :mod:`~dataflows.kafka.registry`: :class:`SchemaRegistry`, writer schemas by
  id (cached), registration, compatibility;
- :mod:`~dataflows.kafka.registry_server`: :class:`LocalSchemaRegistry`, the
  registry's REST endpoints on ``http.server``;
- :mod:`~dataflows.kafka.mock_cluster`: librdkafka's mock cluster over ctypes
  (:class:`MockCluster`, :class:`MockClusterProcess`);
- :mod:`~dataflows.kafka.produce`: records to a topic as JSON or Confluent Avro
  (tests, ``generate --to kafka://``);
- :mod:`~dataflows.kafka.spool`: the records of a sink shard's transactions
  on disk until each is committed, and the committed set (:func:`committed_labels`);
- :mod:`~dataflows.kafka.dev`: a mock cluster and a registry to try things by
  hand (``streamjoin kafka-dev``);
- :mod:`~dataflows.kafka.errors`: :class:`KafkaClientError`, :class:`RegistryError`.
"""

from __future__ import annotations

from dataflows.kafka.clients import (
    ClientErrors,
    ensure_topic,
    make_admin,
    make_consumer,
    make_producer,
    topic_partitions,
    watermarks,
)
from dataflows.kafka.errors import KafkaClientError, NoSubject, RegistryError
from dataflows.kafka.mock_cluster import MockCluster, MockClusterProcess, parse_topic_spec
from dataflows.kafka.registry import SchemaRegistry, subject_of
from dataflows.kafka.registry_server import LocalSchemaRegistry
from dataflows.kafka.settings import KafkaSettings
from dataflows.kafka.urls import KafkaUrl, is_kafka_url, output_topics, parse_kafka_url

__all__ = [
    "ClientErrors",
    "KafkaClientError",
    "KafkaSettings",
    "KafkaUrl",
    "LocalSchemaRegistry",
    "MockCluster",
    "MockClusterProcess",
    "NoSubject",
    "RegistryError",
    "SchemaRegistry",
    "ensure_topic",
    "is_kafka_url",
    "make_admin",
    "make_consumer",
    "make_producer",
    "output_topics",
    "parse_kafka_url",
    "parse_topic_spec",
    "subject_of",
    "topic_partitions",
    "watermarks",
]
