"""Wiring the metrics into a run: one bundle and one endpoint per process.

A worker process of ``streamjoin run`` calls :meth:`ProcessMetrics.start`
before it builds its flow (the :class:`~dataflows.metrics.JoinMetrics` goes into
the shard runtime and the sources' ``inspect`` step, :func:`observe_source_batch`),
and :meth:`ProcessMetrics.finish` after ``cluster_main`` returns: if Prometheus
has been scraping, the process waits (at most ``--metrics-linger``, and at most
three of the scrape intervals it saw) for one scrape that *started* after the
final counts, so that the last values in Prometheus equal ``run.json``'s. A
process nobody scraped exits at once.

Each process serves on ``metrics_port + process index`` (``0``: an ephemeral
port each). With no port configured, the default base port is used when free
and an ephemeral port otherwise (with a warning); a port given explicitly must
be free: the run checks them all with :func:`check_metrics_ports` before it
starts any process (a config error, exit status 2), and a process that still
finds its port taken fails. The endpoint actually served is written to
``OUT/.run/metrics-<index>.json``, which the run reads into ``run.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from prometheus_client import CollectorRegistry

from dataflows.config import RunConfig
from dataflows.console import logger
from dataflows.errors import ConfigError, RunError
from dataflows.metrics.bundle import JoinMetrics
from dataflows.metrics.server import (
    DEFAULT_METRICS_PORT,
    MetricsServer,
    check_bindable,
    host_port,
    process_port,
    serve_metrics,
)
from dataflows.sources import SourceBatch

#: The linger is also bounded by this many of the scrape intervals seen.
LINGER_SCRAPE_INTERVALS = 3
_log = logger("metrics")


def endpoint_path(out_dir: str, process_id: int) -> str:
    """Where process ``process_id`` of a run records the endpoint it serves."""
    return os.path.join(out_dir, ".run", f"metrics-{process_id}.json")


def read_endpoints(out_dir: str, processes: int) -> list[dict[str, Any]]:
    """The endpoints the processes of a run recorded (missing ones left out)."""
    found = []
    for i in range(processes):
        try:
            with open(endpoint_path(out_dir, i), encoding="utf-8") as f:
                found.append(json.load(f))
        except (OSError, ValueError):
            continue
    return found


def check_metrics_ports(cfg: RunConfig) -> None:
    """Raise :class:`~dataflows.errors.ConfigError` unless every port that
    ``--metrics-port`` gives the processes of ``cfg`` can be bound on
    ``--metrics-host`` now.

    Called by the run before it starts any process. Without ``--metrics-port``
    (the default base port, falling back to ephemeral ones) and with ``0``
    (ephemeral ports) there is nothing to check.
    """
    base = cfg.metrics_port
    if not base:
        return
    for i in range(cfg.processes):
        port = process_port(base, i)
        try:
            check_bindable(cfg.metrics_host, port)
        except OSError as exc:
            msg = (
                f"--metrics-port {base}: process {i} cannot serve metrics on "
                f"{host_port(cfg.metrics_host, port)} ({exc.strerror or exc}); process i "
                f"serves on {base} + i: choose free ports, or 0 for ephemeral ones"
            )
            raise ConfigError(msg) from exc


@dataclass
class ProcessMetrics:
    """A process's metrics bundle and the HTTP endpoint serving it."""

    metrics: JoinMetrics
    server: MetricsServer
    process_id: int
    out_dir: str

    @classmethod
    def start(cls, cfg: RunConfig, process_id: int, *, log: TextIO | None = None) -> ProcessMetrics:
        """Create the bundle of process ``process_id`` and start serving it; what
        it serves is logged (or written to ``log``)."""
        registry = CollectorRegistry()
        metrics = JoinMetrics(registry, process=str(process_id), spec=cfg.spec)
        explicit = cfg.metrics_port is not None
        base = cfg.metrics_port if cfg.metrics_port is not None else DEFAULT_METRICS_PORT
        port = process_port(base, process_id)
        try:
            server = serve_metrics(registry, port, host=cfg.metrics_host)
        except OSError as exc:
            if explicit:
                msg = (
                    f"process {process_id}: {exc.strerror or exc} (--metrics-port {base} "
                    f"serves process i on {base} + i; choose free ports, or 0 for ephemeral ones)"
                )
                raise RunError(msg) from exc
            server = serve_metrics(registry, 0, host=cfg.metrics_host)
            _say(
                log,
                logging.WARNING,
                f"process {process_id}: metrics port {port} is taken; "
                f"serving on {server.port} instead (set --metrics-port to choose)",
            )
        _write_endpoint(cfg.out_dir, process_id, server, {})
        _say(log, logging.INFO, f"process {process_id} serves metrics at {server.url}")
        return cls(metrics, server, process_id, cfg.out_dir)

    def finish(self, linger_s: float) -> bool:
        """After the last observation: wait for a fresh scrape if anyone scrapes
        (at most ``linger_s``), then stop serving. True if the final counts were
        scraped."""
        since = time.monotonic()
        finished_at = time.time()
        scraped = False
        try:
            if linger_s > 0 and self.server.scrapes > 0:
                timeout = linger_s
                interval = self.server.scrape_interval_s
                if interval is not None:
                    timeout = min(timeout, LINGER_SCRAPE_INTERVALS * interval + 0.5)
                deadline = time.monotonic() + timeout
                scraped = self.server.wait_for_scrape_since(since, timeout)
                if scraped:
                    # And one more: a scrape is counted once the registry was
                    # read, but Prometheus drops it if it took longer than its
                    # timeout (the interval, for short ones) to arrive, as on a
                    # loaded machine; the next one then carries the final counts.
                    self.server.wait_for_scrape_since(
                        time.monotonic(), max(0.0, deadline - time.monotonic())
                    )
        finally:
            self.server.close()
        # The run's elapsed time ends here, not after the linger (see run.summarize).
        extra = {
            "flow_finished_at": finished_at,
            "lingered_s": round(time.monotonic() - since, 3),
            "final_counts_scraped": scraped,
        }
        _write_endpoint(self.out_dir, self.process_id, self.server, extra)
        return scraped


def _say(log: TextIO | None, level: int, line: str) -> None:
    if log is None:
        _log.log(level, "%s", line)
        return
    log.write(line + "\n")
    log.flush()


def _write_endpoint(
    out_dir: str, process_id: int, server: MetricsServer, extra: dict[str, Any]
) -> None:
    path = endpoint_path(out_dir, process_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        record = {"process": process_id, "host": server.host, "port": server.port}
        json.dump({**record, "url": server.url, **extra}, f)
    os.replace(tmp, path)


def source_observer(metrics: JoinMetrics) -> Callable[[str, SourceBatch], None]:
    """The ``op.inspect`` callback that counts what the sources read: one call
    per batch, never per event."""

    def observe(_step_id: str, batch: SourceBatch) -> None:
        observe_source_batch(metrics, batch)

    return observe


def observe_source_batch(metrics: JoinMetrics, batch: SourceBatch) -> None:
    """Count one :class:`~dataflows.sources.SourceBatch` into ``metrics``."""
    mark = batch.mark
    metrics.observe_input(
        batch.side,
        mark.partition,
        len(batch.events),
        mark.max_ts,
        closed=mark.closed,
        read=batch.read,
    )
    if batch.invalid:
        metrics.observe_invalid(
            batch.side,
            [i.reason for i in batch.invalid],
            truncated=sum(1 for i in batch.invalid if i.raw_truncated),
        )
