"""The chart's producer monitoring: the PodMonitor selects the pods the operator creates and adds
the labels the queries group by; the dashboard and the alerts query only metrics a real
producer exports (read from the /metrics of a producer run here)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sensorsim_operator import names
from testbed.polling import wait_until
from tests.chart_support import ALL_OPTIONS_VALUES, CHART_DIR, Manifest, find, render

pytestmark = pytest.mark.tools  # helm renders the chart

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = CHART_DIR / "files" / "dashboards" / "sensorsim-producers.json"
METRIC = re.compile(r"\bsensorsim_[a-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}
"""Labels the Prometheus Operator puts on every series a PodMonitor scrapes."""


@pytest.fixture(scope="module")
def monitoring() -> list[Manifest]:
    return render("-f", str(ALL_OPTIONS_VALUES), release="everything", namespace="sim-system")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_queries(manifests: list[Manifest]) -> list[str]:
    rule = find(manifests, "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def exported_samples() -> set[str]:
    """The sample names (``_total``, ``_bucket``, ... included) a producer serves on /metrics
    once it has run a few cycles: ``python -m producer --sink stdout`` with HTTP_PORT set."""
    port = free_port()
    env = {**os.environ, "HTTP_PORT": str(port), "NUM_MACHINES": "4",
           "SIMULATION_INTERVAL_MS": "50", "SIMULATION_SEED": "1"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "producer", "--sink", "stdout"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def scrape() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return text if re.search(r"^sensorsim_cycles_total [1-9]", text, re.MULTILINE) else None

    try:
        text = wait_until(scrape, timeout=60, message="producer /metrics", process=process)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


@pytest.mark.subprocess
def test_every_dashboard_and_alert_query_names_metrics_the_producer_exports(
    monitoring: list[Manifest], exported_samples: set[str]
) -> None:
    queries = dashboard_queries() + rule_queries(monitoring)
    used = {name for query in queries for name in METRIC.findall(query)}
    assert "sensorsim_ack_latency_seconds_bucket" in used
    assert used <= exported_samples, sorted(used - exported_samples)


def relabelled(pod_monitor: Manifest) -> dict[str, str]:
    """Target label -> the source meta label of each relabeling."""
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    return {r["targetLabel"]: r["sourceLabels"][0] for r in endpoint["relabelings"]}


def meta_label(kind: str, key: str) -> str:
    return f"__meta_kubernetes_pod_{kind}_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def test_the_pod_monitor_selects_the_operators_producer_pods(monitoring: list[Manifest]) -> None:
    pod_monitor = find(monitoring, "PodMonitor")
    selector = pod_monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= names.selector_labels("any-simulation").items()
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == names.HTTP_PORT_NAME
    assert endpoint["path"] == "/metrics"
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["plant-a", "plant-b"]}
    assert relabelled(pod_monitor) == {
        "simulation": meta_label("label", names.INSTANCE_LABEL),
        "shard": meta_label("label", names.POD_INDEX_LABEL),
        "stream_hash": meta_label("annotation", names.STREAM_HASH_ANNOTATION),
    }


def test_queries_group_only_by_labels_a_scraped_series_has(monitoring: list[Manifest]) -> None:
    pod_monitor = find(monitoring, "PodMonitor")
    available = TARGET_LABELS | set(relabelled(pod_monitor)) | {"le", "type"}
    for query in dashboard_queries() + rule_queries(monitoring):
        for group in GROUPING.findall(query):
            labels = {label.strip() for label in group.split(",") if label.strip()}
            assert labels <= available, (query, labels - available)


def test_the_dashboard_ships_for_the_grafana_sidecar(monitoring: list[Manifest]) -> None:
    [config_map] = [
        m
        for m in monitoring
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Simulations"
    shipped = json.loads(config_map["data"]["sensorsim-producers.json"])
    assert shipped == json.loads(DASHBOARD.read_text())
    titles = " ".join(panel["title"].lower() for panel in shipped["panels"])
    for topic in ("records per second", "latency", "lag", "failing", "handovers", "restarts",
                  "shards"):  # fmt: skip
        assert topic in titles
    variables = {v["name"] for v in shipped["templating"]["list"]}
    assert variables == {"datasource", "namespace", "simulation"}
    for panel in shipped["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"


def alert(manifests: list[Manifest], name: str) -> dict[str, Any]:
    rules = [r for g in find(manifests, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    return next(r for r in rules if r["alert"] == name)


def test_alerts_take_their_windows_and_labels_from_the_values(monitoring: list[Manifest]) -> None:
    stalled = alert(monitoring, "SensorsimDeliveryStalled")
    assert "increase(sensorsim_records_delivered_total[3m]) == 0" in stalled["expr"]
    assert stalled["for"] == "2m"
    assert stalled["labels"] == {"severity": "critical", "team": "data"}
    assert "{{ $labels.simulation }}" in stalled["annotations"]["description"]
    assert alert(monitoring, "SensorsimLagGrowing")["for"] == "10m"
    missing = alert(monitoring, "SensorsimShardMissing")
    assert "count by (namespace, simulation) (sensorsim_shards)" in missing["expr"]


def test_nothing_of_it_by_default() -> None:
    kinds = {m["kind"] for m in render()}
    assert not kinds & {"PodMonitor", "PrometheusRule"}
    assert "ConfigMap" not in kinds
