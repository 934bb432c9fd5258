"""Making Kafka clients, and what every client does with broker errors.

:func:`make_consumer`, :func:`make_producer` and :func:`make_admin` build
confluent-kafka clients from :class:`~dataflows.kafka.settings.KafkaSettings`
and the brokers; a bad property is refused with a one-line
:class:`~dataflows.errors.ConfigError` that names it (secrets masked).

Broker and client errors (brokers down, timeouts, authentication) arrive
through librdkafka's ``error_cb``; :class:`ClientErrors` logs them (once per
error code per ``log_every_ms``, so a broker outage does not flood the log),
counts them by code for the metrics, and lets librdkafka go on retrying: a
transient error never stops a run. A *fatal* error (librdkafka gives up on the
client, e.g. a fenced transactional producer) is raised by the caller that
meets it.

:func:`topic_partitions` and :func:`watermarks` read metadata and a partition's
low and high watermark offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from dataflows.errors import ConfigError
from dataflows.kafka.errors import KafkaClientError
from dataflows.kafka.settings import REDACTED, KafkaSettings, is_secret

log = logging.getLogger("streamjoin.kafka")
#: librdkafka's own log lines (connection failures, retries), routed into Python
#: logging instead of stderr, where a broker outage would print one every 50 ms.
librdkafka_log = logging.getLogger("streamjoin.kafka.librdkafka")


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class ClientErrors:
    """The ``error_cb`` of the clients of one source or sink: logs, counts."""

    def __init__(
        self, what: str, log_every_ms: int = 10_000, clock: Callable[[], int] = _monotonic_ms
    ) -> None:
        self.what = what
        self.counts: dict[str, int] = {}
        self.fatal: KafkaError | None = None
        self._log_every_ms = log_every_ms
        self._clock = clock
        self._logged: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, err: KafkaError) -> None:
        name = err.name()
        now = self._clock()
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            if err.fatal():
                self.fatal = err
            last = self._logged.get(name)
            due = last is None or now - last >= self._log_every_ms
            if due:
                self._logged[name] = now
        if due:
            level = logging.ERROR if err.fatal() else logging.WARNING
            log.log(level, "%s: Kafka client error %s: %s (%d so far; retrying)",
                    self.what, name, err.str(), self.counts[name])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _creation_error(kind: str, exc: KafkaException, settings: KafkaSettings) -> ConfigError:
    text = str(exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc)
    for key, value in settings.values.items():
        if is_secret(key) and value:
            text = text.replace(value, REDACTED)
    return ConfigError(f"cannot make a Kafka {kind}: {text}; check --kafka-config")


def make_consumer(
    settings: KafkaSettings, bootstrap: str, errors: ClientErrors | None = None, **extra: Any
) -> Consumer:
    """An assign-only consumer (no consumer group needed): commits nothing,
    reports end of partition."""
    config = settings.client_config(
        bootstrap,
        **{"logger": librdkafka_log,
           "group.id": settings.values.get("group.id", "streamjoin"),
           "enable.auto.commit": False,
           "enable.auto.offset.store": False,
           "enable.partition.eof": True,
           **({"error_cb": errors} if errors is not None else {}),
           **extra},
    )
    try:
        return Consumer(config)
    except KafkaException as exc:
        kind = "consumer"
        raise _creation_error(kind, exc, settings) from exc


def make_producer(
    settings: KafkaSettings, bootstrap: str, errors: ClientErrors | None = None, **extra: Any
) -> Producer:
    """A producer; ``extra`` adds the service's own properties (``transactional.id``)."""
    config = settings.client_config(
        bootstrap, logger=librdkafka_log,
        **({"error_cb": errors} if errors is not None else {}), **extra
    )
    try:
        return Producer(config)
    except KafkaException as exc:
        kind = "producer"
        raise _creation_error(kind, exc, settings) from exc


def make_admin(settings: KafkaSettings, bootstrap: str) -> AdminClient:
    """An admin client (metadata only: the service creates no topics)."""
    try:
        return AdminClient(settings.client_config(bootstrap, logger=librdkafka_log))
    except KafkaException as exc:
        kind = "admin client"
        raise _creation_error(kind, exc, settings) from exc


def topic_partitions(
    settings: KafkaSettings, bootstrap: str, topic: str, timeout_s: float = 10.0
) -> list[int]:
    """The partition ids of ``topic``, sorted (raises ``KafkaClientError`` when the
    brokers cannot be reached or the topic does not exist)."""
    admin = make_admin(settings, bootstrap)
    try:
        # All topics, not list_topics(topic=...): asking for one by name lets a
        # broker with auto-creation (the mock cluster has it) create it.
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        msg = (f"cannot read metadata of topic {topic!r} from {bootstrap}: {exc.args[0].str()}; "
               "check that the brokers are up and reachable")
        raise KafkaClientError(msg) from exc
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        why = info.error.str() if info is not None and info.error is not None else "no partitions"
        msg = (f"Kafka topic {topic!r} on {bootstrap} cannot be read ({why}); "
               "create it first (streamjoin creates no topics)")
        raise KafkaClientError(msg)
    return sorted(info.partitions)


def watermarks(consumer: Consumer, topic: str, partition: int, timeout_s: float = 10.0
               ) -> tuple[int, int]:
    """``(low, high)``: the first offset still stored and the offset after the last
    record of one partition, asked of its leader."""
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s, cached=False
        )
    except KafkaException as exc:
        msg = (f"cannot read the end offsets of {topic}[{partition}]: {exc.args[0].str()}; "
               "check that the brokers are up")
        raise KafkaClientError(msg) from exc
    return int(low), int(high)


def ensure_topic(settings: KafkaSettings, bootstrap: str, topic: str, partitions: int,
                 timeout_s: float = 10.0) -> int:
    """Make sure ``topic`` exists with at least ``partitions`` partitions (created
    through the admin API when missing, where the brokers allow it); returns its
    partition count."""
    try:
        return len(topic_partitions(settings, bootstrap, topic, timeout_s))
    except KafkaClientError:
        pass
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = make_admin(settings, bootstrap)
    future = admin.create_topics([NewTopic(topic, partitions)],
                                 operation_timeout=timeout_s)[topic]
    try:
        future.result(timeout_s)
    except Exception as exc:  # a KafkaException, or a timeout where CreateTopics is missing
        why = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else (
            str(exc) or type(exc).__name__)
        msg = (f"Kafka topic {topic!r} does not exist on {bootstrap} and cannot be created "
               f"here ({why}); create it with {partitions} partitions first (with "
               f"librdkafka's mock cluster: streamjoin kafka-dev --topic {topic}:{partitions})")
        raise KafkaClientError(msg) from exc
    return len(topic_partitions(settings, bootstrap, topic, timeout_s))
