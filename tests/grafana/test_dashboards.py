"""The committed dashboards are the generator's output, and use only real metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dataflows.metrics import DEFAULT_METRICS_PORT, JoinMetrics, process_port

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"

#: Series Prometheus makes itself for every target.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
#: PromQL words that look like metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for m in _NAME.finditer(text):
        rest = text[m.end() :].lstrip()
        word = m.group()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue  # a function or aggregation, or a keyword
        before = text[: m.start()]
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # the exponent or suffix of a number
        names.add(word)
    return names


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry can expose, including type suffixes."""
    names: set[str] = set()
    for fam in registry.collect():
        names.update(s.name for s in fam.samples)
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names.update(fam.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(fam.name)
    return names


def dashboard_files() -> list[Path]:
    return sorted((GRAFANA / "dashboards").glob("*.json"))


def targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def test_metric_names_are_parsed_out_of_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, side) (rate(a_bucket{job="x",le!="1e3"}[5m]))) '
        "- on (side) group_left b_total * 1e3 + time() - max(c:recorded) offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c:recorded"}


def test_committed_files_equal_the_generators_output() -> None:
    generator = load_generator()
    files = generator.outputs()
    assert set(files) >= set(dashboard_files())
    assert len(dashboard_files()) == 2
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python grafana/generate.py"
        )


def test_every_metric_a_panel_uses_exists() -> None:
    registry = CollectorRegistry()
    JoinMetrics(registry)
    known = exposed_names(registry) | PROMETHEUS_SYNTHETIC
    used: set[str] = set()
    for path in dashboard_files():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for title, expr in targets(dashboard):
            names = metric_names(expr)
            assert names, f"{path.name}: panel {title!r} selects no metric: {expr}"
            missing = names - known
            assert not missing, f"{path.name}: panel {title!r} uses unknown {missing}"
            used |= names
    # And the dashboards show (nearly) every family the bundle exports.
    families = {f.name for f in registry.collect() if f.name.startswith("streamjoin_")}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families - shown == {
        "streamjoin_process_info",
        "streamjoin_start_time_seconds",
        "streamjoin_resumed_shards",
        "streamjoin_last_snapshot_bytes",
    }


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboards_are_provisionable(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["uid"].startswith("streamjoin-")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "streamjoin-prometheus"}
        assert "?" in panel["description"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    provisioned = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: streamjoin-prometheus" in provisioned


def test_readme_lists_every_panel_with_its_query() -> None:
    readme = (GRAFANA / "README.md").read_text(encoding="utf-8")
    for path in dashboard_files():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert f"| {panel['title']} | {panel['description']} |" in readme
            for target in panel["targets"]:
                assert target["expr"].replace("|", "\\|") in readme


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-docker.yml"])
def test_scrape_configs_are_valid(name: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    done = subprocess.run(
        [promtool, "check", "config", str(GRAFANA / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_local_scrape_targets_are_the_process_ports() -> None:
    text = (GRAFANA / "prometheus.yml").read_text(encoding="utf-8")
    wanted = [f"127.0.0.1:{process_port(DEFAULT_METRICS_PORT, i)}" for i in range(8)]
    found = re.findall(r"- (127\.0\.0\.1:\d+)", text)
    assert found[:8] == wanted
