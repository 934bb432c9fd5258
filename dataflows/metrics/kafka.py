"""Kafka metrics of one process, computed at scrape time: consumer lag per
partition and the Kafka clients' error counts.

The Kafka source partitions and sink partitions this process builds register
here (:meth:`KafkaCollector.register_source`, :meth:`KafkaCollector.register_sink`;
the flow passes these as the builders' hooks). A scrape then reads, per source
partition, librdkafka's cached high watermark (no request to the broker) and
the partition's position, and the error counts each client's ``error_cb`` kept
(:class:`~dataflows.kafka.ClientErrors`). Nothing here runs on the hot path.

- ``streamjoin_kafka_consumer_lag_records{stream, partition}``: records on the
  broker not yet read (``partition`` is ``side:topic:N``: bounded by the
  topics' partition counts);
- ``streamjoin_kafka_consumer_lag_seconds{stream, partition}``: 0 when nothing
  waits, else the wall clock minus the event time of the last event read;
- ``streamjoin_kafka_client_errors_total{client, error}``: broker and client
  errors librdkafka reported (and retried), by client kind (``source``,
  ``sink``) and librdkafka error name; the common ones (:data:`COMMON_ERRORS`)
  are exported at 0 from the first client of a kind on, so that ``rate()``
  sees a series before the first error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: librdkafka's errors of an unreachable or refusing cluster, exported at 0.
COMMON_ERRORS = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_AUTHENTICATION")


class ErrorCounts(Protocol):
    """A client's error counts (:class:`dataflows.kafka.ClientErrors`)."""

    @property
    def counts(self) -> dict[str, int]: ...


class LagSource(Protocol):
    """What a Kafka source partition offers (:class:`dataflows.sources.kafka.KafkaPartition`)."""

    @property
    def name(self) -> str: ...

    @property
    def errors(self) -> ErrorCounts: ...

    @property
    def side(self) -> str: ...

    def lag_records(self) -> int: ...

    def lag_seconds(self, now_ms: int | None = None) -> float: ...


class ErrorSource(Protocol):
    """What a Kafka sink partition offers (:class:`dataflows.sinks.kafka.KafkaRowPartition`)."""

    @property
    def errors(self) -> ErrorCounts: ...


class KafkaCollector(Collector):
    """Lag and client errors of this process's Kafka sources and sinks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, LagSource] = {}
        self._sinks: list[ErrorSource] = []

    def register_source(self, part: LagSource) -> None:
        with self._lock:
            self._sources[part.name] = part  # a rebuilt partition replaces the old one

    def register_sink(self, part: ErrorSource) -> None:
        with self._lock:
            self._sinks.append(part)

    def lags(self) -> dict[str, tuple[str, int, float]]:
        """``partition -> (side, lag records, lag seconds)`` now."""
        with self._lock:
            sources = list(self._sources.values())
        return {p.name: (p.side, p.lag_records(), p.lag_seconds()) for p in sources}

    def describe(self) -> Iterable[Metric]:
        return _families()

    def collect(self) -> Iterator[Metric]:
        records, seconds, errors = _families()
        with self._lock:
            sources = list(self._sources.values())
            sinks = list(self._sinks)
        for part in sorted(sources, key=lambda p: p.name):
            lag = part.lag_records()
            records.add_metric([part.side, part.name], lag)
            seconds.add_metric([part.side, part.name], part.lag_seconds())
        for client, parts in (("source", sources), ("sink", sinks)):
            if not parts:
                continue
            counts = dict.fromkeys(COMMON_ERRORS, 0)
            counts.update(_sum(p.errors.counts for p in parts))
            for name, n in sorted(counts.items()):
                errors.add_metric([client, name], n)
        yield from (records, seconds, errors)


def _sum(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Error counts of several clients added up by name."""
    total: dict[str, int] = {}
    for one in counts:
        for name, n in list(one.items()):
            total[name] = total.get(name, 0) + n
    return total


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
    return (
        GaugeMetricFamily(
            "streamjoin_kafka_consumer_lag_records",
            "Records on the broker a Kafka source partition has not read yet (with "
            "--until-end: up to the end offset taken at start).",
            labels=["stream", "partition"],
        ),
        GaugeMetricFamily(
            "streamjoin_kafka_consumer_lag_seconds",
            "0 when a Kafka source partition has read everything on the broker, else the "
            "wall clock minus the event time of the last event it read.",
            labels=["stream", "partition"],
        ),
        CounterMetricFamily(
            "streamjoin_kafka_client_errors",
            "Errors librdkafka reported for this process's Kafka clients (and retried), "
            "by client kind and error name.",
            labels=["client", "error"],
        ),
    )
