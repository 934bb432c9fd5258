"""The join's Prometheus metrics: the typed bundle, what it computes at scrape
time, and how a run serves it.

- :mod:`~dataflows.metrics.bundle`: :class:`JoinMetrics`, one bundle per
  process against an injected registry (the names and the conservation law
  they obey are in its docstring);
- :mod:`~dataflows.metrics.collector`: sizes, watermarks and RocksDB properties
  read at scrape time; :mod:`~dataflows.metrics.progress`: how far one
  process's shards and inputs have got; :mod:`~dataflows.metrics.hotkeys`: the
  hottest keys' share, without naming a key;
  :mod:`~dataflows.metrics.histogram`: a histogram observed a batch at a time;
  :mod:`~dataflows.metrics.reasons`: the bounded ``reason`` label of dead
  letters; :mod:`~dataflows.metrics.kafka`: Kafka consumer lag per partition
  and client errors;
- :mod:`~dataflows.metrics.server`: serving ``/metrics`` over HTTP;
  :mod:`~dataflows.metrics.wiring`: one bundle and one endpoint per process of
  a run;
- :mod:`~dataflows.metrics.status`: each worker's progress in a small status
  file; :mod:`~dataflows.metrics.watch`: the parent's progress line drawn from
  them (live on a terminal, logged otherwise).

Every metric, its query and its dashboard panel: ``grafana/README.md``.
"""

from __future__ import annotations

from dataflows.metrics.bundle import JoinMetrics
from dataflows.metrics.collector import ROCKSDB_PROPERTIES, StateCollector
from dataflows.metrics.hotkeys import HOT_KEY_RANKS
from dataflows.metrics.kafka import KafkaCollector
from dataflows.metrics.reasons import REASON_CLASSES, reason_class
from dataflows.metrics.server import (
    DEFAULT_METRICS_PORT,
    MetricsServer,
    check_bindable,
    host_port,
    process_port,
    serve_metrics,
)
from dataflows.metrics.status import StatusWriter, read_statuses, status_path
from dataflows.metrics.watch import ProgressWatch, RunProgress, aggregate, format_progress
from dataflows.metrics.wiring import (
    ProcessMetrics,
    check_metrics_ports,
    read_endpoints,
    source_observer,
)

__all__ = [
    "DEFAULT_METRICS_PORT",
    "HOT_KEY_RANKS",
    "REASON_CLASSES",
    "ROCKSDB_PROPERTIES",
    "JoinMetrics",
    "KafkaCollector",
    "MetricsServer",
    "ProcessMetrics",
    "ProgressWatch",
    "RunProgress",
    "StateCollector",
    "StatusWriter",
    "aggregate",
    "check_bindable",
    "check_metrics_ports",
    "format_progress",
    "host_port",
    "process_port",
    "read_endpoints",
    "read_statuses",
    "reason_class",
    "serve_metrics",
    "source_observer",
    "status_path",
]
