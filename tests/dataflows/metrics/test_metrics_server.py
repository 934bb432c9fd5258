"""The metrics endpoint: a real HTTP server on loopback."""

from __future__ import annotations

import socket
import threading
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from dataflows.metrics import JoinMetrics, check_bindable, process_port, serve_metrics
from dataflows.metrics.server import metrics_url


def test_serves_the_bundle_on_an_ephemeral_loopback_port() -> None:
    registry = CollectorRegistry()
    metrics = JoinMetrics(registry, process="1")
    metrics.observe_input("left", "left-0", 42, 1_000)
    server = serve_metrics(registry, 0)
    try:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as resp:  # noqa: S310 -- loopback
            text = resp.read().decode()
        assert 'streamjoin_input_events_total{partition="left-0",stream="left"} 42.0' in text
        assert 'streamjoin_process_info{process="1"} 1.0' in text
        assert server.address == ("127.0.0.1", server.port)
    finally:
        server.close()


def test_waits_for_the_scrape_after_the_final_counts() -> None:
    registry = CollectorRegistry()
    metrics = JoinMetrics(registry)
    server = serve_metrics(registry, 0)
    try:
        metrics.observe_input("right", "right-0", 7, 1_000)
        seen = server.scrapes
        assert not server.wait_for_scrape(seen, timeout_s=0.05)  # nobody scraped yet
        scraped: list[str] = []

        def scrape() -> None:
            with urllib.request.urlopen(server.url, timeout=5) as resp:  # noqa: S310
                scraped.append(resp.read().decode())

        thread = threading.Thread(target=scrape)
        thread.start()
        assert server.wait_for_scrape(seen, timeout_s=5)
        thread.join()
        assert server.scrapes == seen + 1
        assert 'stream="right"} 7.0' in scraped[0]
    finally:
        server.close()


def test_a_taken_port_is_reported_with_the_address() -> None:
    registry = CollectorRegistry()
    first = serve_metrics(registry, 0)
    try:
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{first.port}"):
            serve_metrics(registry, first.port)
    finally:
        first.close()


def test_each_process_has_its_own_port() -> None:
    assert [process_port(9464, i) for i in range(3)] == [9464, 9465, 9466]
    assert process_port(0, 5) == 0
    with pytest.raises(ValueError, match="above 65535"):
        process_port(65535, 1)
    with pytest.raises(ValueError, match=">= 0"):
        process_port(9464, -1)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9464/metrics"),
        ("localhost", "http://localhost:9464/metrics"),
        ("::1", "http://[::1]:9464/metrics"),
        ("::", "http://[::]:9464/metrics"),
        ("fe80::1%eth0", "http://[fe80::1%25eth0]:9464/metrics"),
    ],
)
def test_urls_put_ipv6_hosts_in_brackets(host: str, url: str) -> None:
    assert metrics_url(host, 9464) == url


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_endpoint_is_scraped_at_its_url() -> None:
    registry = CollectorRegistry()
    JoinMetrics(registry, process="3", process_collector=False)
    server = serve_metrics(registry, 0, host="::1")
    try:
        assert server.url == f"http://[::1]:{server.port}/metrics"
        with urllib.request.urlopen(server.url, timeout=5) as resp:  # noqa: S310 -- loopback
            assert 'streamjoin_process_info{process="3"} 1.0' in resp.read().decode()
        with pytest.raises(OSError, match=rf"\[::1\]:{server.port}"):
            serve_metrics(registry, server.port, host="::1")
    finally:
        server.close()


def test_a_port_is_bindable_until_something_listens_on_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            check_bindable("127.0.0.1", port)
    check_bindable("127.0.0.1", port)
    with socket.socket() as again:  # the check holds nothing (no SO_REUSEADDR here)
        again.bind(("127.0.0.1", port))
