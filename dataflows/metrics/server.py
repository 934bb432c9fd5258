"""Serving a process's metrics over HTTP for Prometheus to scrape.

Every process of a run serves its own :class:`~dataflows.metrics.JoinMetrics`
registry on its own port, ``base port + process index`` (:func:`process_port`),
bound to ``127.0.0.1`` unless told otherwise: the metrics say nothing secret,
but a port open to the network is a decision for whoever runs the service.
``grafana/prometheus.yml`` scrapes ``127.0.0.1:9464`` and up.

Bytewax's own endpoint is separate and may stay available: ``python -m
bytewax.run`` with the environment variable ``BYTEWAX_DATAFLOW_API_ENABLED=true``
serves ``http://0.0.0.0:3030/metrics`` (port set by ``BYTEWAX_DATAFLOW_API_PORT``),
with Bytewax's own per-step metrics and prometheus_client's *default* registry.
Runs started by ``streamjoin run`` (``bytewax.testing.cluster_main``) do not
start it, and it has no watermark, state or lag metrics: those are here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, RestrictedRegistry

#: The default base port (Prometheus' "default port allocations" wiki lists
#: 9464 for OpenTelemetry's Prometheus exporter; any free port will do).
DEFAULT_METRICS_PORT = 9464
DEFAULT_METRICS_HOST = "127.0.0.1"


class _ScrapeCounter(Collector):
    """``registry`` as served over HTTP, counting the scrapes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._cond = threading.Condition()
        self.scrapes = 0
        #: Monotonic start times of the last two complete scrapes (newest last).
        self.started: tuple[float, ...] = ()

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        yield from self._registry.collect()
        with self._cond:
            self.scrapes += 1
            self.started = (*self.started[-1:], started)
            self._cond.notify_all()

    def restricted_registry(self, names: Iterable[str]) -> RestrictedRegistry:
        # ``/metrics?name[]=...``; such partial reads are not counted as scrapes.
        return self._registry.restricted_registry(names)

    def wait_started(self, since: float, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self.started or self.started[-1] < since:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait(self, after: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.scrapes <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


@dataclass(frozen=True)
class MetricsServer:
    """A running metrics endpoint: ``http://{host}:{port}/metrics`` (:func:`metrics_url`)."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread
    _counter: _ScrapeCounter

    @property
    def scrapes(self) -> int:
        """Complete reads of ``/metrics`` so far."""
        return self._counter.scrapes

    def wait_for_scrape(self, after: int, timeout_s: float) -> bool:
        """Wait until ``/metrics`` has been read more than ``after`` times.

        At the end of a run, a process takes ``n = server.scrapes`` after its last
        observation and waits for scrape ``n + 1`` (a few scrape intervals at
        most) before it exits, so that Prometheus sees the final counters.
        Returns False on timeout (nobody is scraping).
        """
        return self._counter.wait(after, timeout_s)

    def wait_for_scrape_since(self, since: float, timeout_s: float) -> bool:
        """Wait until a scrape that *started* at or after ``since`` (a
        ``time.monotonic()`` value) has been served.

        Unlike :meth:`wait_for_scrape`, a scrape that was already reading the
        registry at ``since`` does not count: it may hold values from before.
        Returns False on timeout.
        """
        return self._counter.wait_started(since, timeout_s)

    @property
    def scrape_interval_s(self) -> float | None:
        """Seconds between the starts of the last two scrapes (None before two)."""
        started = self._counter.started
        return started[-1] - started[-2] if len(started) == 2 else None

    @property
    def address(self) -> tuple[str, int]:
        """The address the listening socket is bound to."""
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """Where to scrape it (an IPv6 host in brackets)."""
        return metrics_url(self.host, self.port)

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:9464``, RFC 3986)."""
    if ":" in host and not host.startswith("["):
        # A zone index ("fe80::1%eth0") is written %25 in a URI (RFC 6874).
        return f"[{host.replace('%', '%25')}]:{port}"
    return f"{host}:{port}"


def metrics_url(host: str, port: int) -> str:
    """The URL of the metrics served on ``host`` and ``port``."""
    return f"http://{host_port(host, port)}/metrics"


def process_port(base_port: int, process_index: int) -> int:
    """The metrics port of process ``process_index`` of a run (0 stays 0: ephemeral)."""
    if base_port < 0 or process_index < 0:
        msg = f"ports and process indexes are >= 0, got port {base_port}, process {process_index}"
        raise ValueError(msg)
    if base_port == 0:
        return 0
    port = base_port + process_index
    if port > 65535:
        msg = f"metrics port {base_port} + process {process_index} = {port} is above 65535"
        raise ValueError(msg)
    return port


def serve_metrics(
    registry: CollectorRegistry,
    port: int = DEFAULT_METRICS_PORT,
    *,
    host: str = DEFAULT_METRICS_HOST,
) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` on a daemon thread.

    ``port=0`` picks a free port; the returned server says which. Raises
    ``OSError`` (e.g. the port is taken) with the address in the message.
    """
    counter = _ScrapeCounter(registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=counter)
    except OSError as exc:
        msg = f"cannot serve metrics on {host_port(host, port)}: {exc.strerror or exc}"
        raise OSError(exc.errno, msg) from exc
    return MetricsServer(host, int(server.server_port), server, thread, counter)


def check_bindable(host: str, port: int) -> None:
    """Raise ``OSError`` unless :func:`serve_metrics` could bind ``host:port`` now.

    Binds a socket as prometheus_client's server does (the first address
    ``getaddrinfo`` gives, ``SO_REUSEADDR``) and closes it at once, so that a
    run can refuse a taken port before it starts any process.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _name, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
