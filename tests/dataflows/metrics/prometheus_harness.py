"""A real Prometheus on loopback for the metrics tests: the Debian binary
(installed with apt-get if missing, else the test is skipped with the reason),
its HTTP API, and the panel queries of the committed dashboards."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dataflows.run import free_ports

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = REPO / "grafana" / "dashboards"

T = TypeVar("T")


def prometheus_binary() -> str:
    """The ``prometheus`` binary; installs the Debian package if it can."""
    found = shutil.which("prometheus")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("prometheus is not installed and cannot be (needs apt-get as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:  # a new machine's package lists may be missing or old
        subprocess.run(
            ["apt-get", "update"], env=env, capture_output=True, timeout=900, check=False
        )
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=900, check=False
        )
    found = shutil.which("prometheus")
    if not found:
        tail = (done.stderr or done.stdout)[-500:]
        pytest.skip(f"apt-get install prometheus failed (exit {done.returncode}): {tail}")
    return found


def free_port() -> int:
    """A free port below the ephemeral range (as the run picks its workers')."""
    return free_ports(1)[0]


def free_port_range(n: int, attempts: int = 50) -> int:
    """A base port ``p`` such that ``p .. p + n - 1`` are free on loopback now."""
    for _ in range(attempts):
        base = free_port()
        if base + n - 1 > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    pytest.fail(f"no {n} consecutive free ports on 127.0.0.1 in {attempts} attempts")


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


#: Panels only a run with Kafka inputs or outputs feeds (the Kafka row).
KAFKA_PANEL = "Kafka "


def panel_queries(kafka: bool | None = False) -> list[tuple[str, str]]:
    """``(dashboard: panel title, expr)`` of every target of every panel; with
    ``kafka`` False those of file runs (no Kafka panels), True only the Kafka
    panels, None all."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            if kafka is not None and panel["title"].startswith(KAFKA_PANEL) != kafka:
                continue
            for target in panel.get("targets", []):
                out.append((f"{path.stem}: {panel['title']}", target["expr"]))
    return out


class Prometheus:
    """A running Prometheus (``web`` is its port) and its query API."""

    def __init__(self, web: int) -> None:
        self.web = web

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.web}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def vector(self, expr: str, at: float | None = None) -> list[Any]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        result: list[Any] = self.api("query", **params)["result"]
        return result

    def scalar(self, expr: str, at: float | None = None) -> float:
        result = self.vector(expr, at)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    def series(self, expr: str, start: float, end: float, step_s: float = 1.0) -> list[Any]:
        """What a Grafana panel asks for: the range query over ``start .. end``."""
        result: list[Any] = self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=str(step_s)
        )["result"]
        return result

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.web}/-/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False


@contextmanager
def running_prometheus(
    workdir: Path, targets: Sequence[str], scrape_s: int = 1
) -> Iterator[Prometheus]:
    """Prometheus on an ephemeral loopback port, scraping ``targets`` (host:port)
    as job ``streamjoin`` every ``scrape_s`` seconds, with its TSDB in ``workdir``."""
    binary = prometheus_binary()
    web = free_port()
    config = workdir / "prometheus.yml"
    listed = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        f"global:\n  scrape_interval: {scrape_s}s\n  evaluation_interval: {scrape_s}s\n"
        "scrape_configs:\n  - job_name: streamjoin\n"
        f"    static_configs:\n      - targets: [{listed}]\n",
        encoding="utf-8",
    )
    with (workdir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            prom = Prometheus(web)
            wait_for("Prometheus to be ready", prom.ready, 60)
            yield prom
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
