"""Fixtures of the Kafka tests: a real Kafka protocol server and a real Schema
Registry over HTTP.

``kafka`` is librdkafka's mock cluster (in this process; clients reach it over
TCP on 127.0.0.1), or the broker named by ``STREAMJOIN_TEST_KAFKA=host:port``
when that is set (topics are then created through the admin API, and tests of
the mock's own behaviour skip). ``registry`` is the local Schema Registry
server. Every test makes its own topics (``new_topic``), so tests share the
cluster without seeing each other's records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_env import REAL_KAFKA

from dataflows.kafka import LocalSchemaRegistry, MockCluster


class KafkaHost(Protocol):
    bootstrap: str

    def create_topic(self, name: str, partitions: int) -> None: ...


class RealKafka:
    """A broker given by ``STREAMJOIN_TEST_KAFKA``."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AdminClient({"bootstrap.servers": bootstrap})

    def create_topic(self, name: str, partitions: int) -> None:
        futures = self._admin.create_topics([NewTopic(name, partitions, 1)])
        futures[name].result(30)




@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaHost]:
    if REAL_KAFKA:
        yield RealKafka(REAL_KAFKA)
        return
    with MockCluster() as cluster:
        yield cluster


@pytest.fixture
def new_topic(kafka: KafkaHost) -> Callable[[int], str]:
    """Makes a topic of a unique name with the given partition count."""

    def make(partitions: int) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        kafka.create_topic(name, partitions)
        return name

    return make


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalSchemaRegistry]:
    with LocalSchemaRegistry() as server:
        yield server
