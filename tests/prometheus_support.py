"""The chart's producer monitoring as a plain Prometheus runs it (tests/kafka/test_monitoring_*):
the scrape configuration the Prometheus Operator generates from the rendered PodMonitor, for
static targets that carry the meta labels Kubernetes service discovery would give a producer
pod; the rules of the rendered PrometheusRule; the dashboard's queries with Grafana's variables
replaced."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sensorsim_operator import names
from tests.chart_support import Manifest, find, render

DASHBOARD_FILE = "sensorsim-producers.json"


@dataclass(frozen=True)
class ProducerPod:
    """A producer process standing in for one pod of a simulation: where its /metrics listens
    and what Kubernetes would know of the pod."""

    namespace: str
    simulation: str
    shard: int
    stream_hash: str
    port: int

    @property
    def name(self) -> str:
        return names.pod_name(self.simulation, self.shard)

    @property
    def labels(self) -> dict[str, str]:
        return {**names.selector_labels(self.simulation), names.POD_INDEX_LABEL: str(self.shard)}

    @property
    def annotations(self) -> dict[str, str]:
        return {names.STREAM_HASH_ANNOTATION: self.stream_hash}


def _label_name(key: str) -> str:
    """A Kubernetes label or annotation key as Prometheus' service discovery spells it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def pod_meta_labels(pod: ProducerPod) -> dict[str, str]:
    """The ``__meta_kubernetes_*`` labels of the pod's target under the ``pod`` role."""
    meta = {
        "__meta_kubernetes_namespace": pod.namespace,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_container_name": names.PRODUCER_CONTAINER,
        "__meta_kubernetes_pod_container_port_name": names.HTTP_PORT_NAME,
    }
    for key, value in pod.labels.items():
        meta[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
        meta[f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}"] = "true"
    for key, value in pod.annotations.items():
        meta[f"__meta_kubernetes_pod_annotation_{_label_name(key)}"] = value
        meta[f"__meta_kubernetes_pod_annotationpresent_{_label_name(key)}"] = "true"
    return meta


def _relabeling(rule: dict[str, Any]) -> dict[str, Any]:
    """A PodMonitor relabeling (camelCase) as a Prometheus relabel_config (snake_case)."""
    return {re.sub(r"([A-Z])", r"_\1", key).lower(): value for key, value in rule.items()}


def scrape_config(pod_monitor: Manifest, pods: list[ProducerPod]) -> dict[str, Any]:
    """The scrape job the Prometheus Operator generates for ``pod_monitor`` (its
    ``generatePodMonitorConfig``: keep the selected pods and port, set namespace, container,
    pod, job and endpoint, then the PodMonitor's own relabelings), with the pods as static
    targets instead of Kubernetes service discovery."""
    spec = pod_monitor["spec"]
    [endpoint] = spec["podMetricsEndpoints"]
    meta = pod_monitor["metadata"]
    relabel: list[dict[str, Any]] = []
    for key, value in spec["selector"]["matchLabels"].items():
        relabel.append({
            "action": "keep",
            "source_labels": [f"__meta_kubernetes_pod_label_{_label_name(key)}",
                              f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}"],
            "regex": f"({value});true",
        })  # fmt: skip
    relabel += [
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"],
         "regex": endpoint["port"]},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
    ]  # fmt: skip
    if "jobLabel" in spec:
        relabel.append({
            "source_labels": [f"__meta_kubernetes_pod_label_{_label_name(spec['jobLabel'])}"],
            "target_label": "job",
            "regex": "(.+)",
            "replacement": "${1}",
        })  # fmt: skip
    relabel.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    relabel += [_relabeling(rule) for rule in endpoint.get("relabelings", [])]
    job: dict[str, Any] = {
        "job_name": f"podMonitor/{meta['namespace']}/{meta['name']}/0",
        "metrics_path": endpoint.get("path", "/metrics"),
        "static_configs": [
            {"targets": [f"127.0.0.1:{pod.port}"], "labels": pod_meta_labels(pod)} for pod in pods
        ],
        "relabel_configs": relabel,
    }
    for key, name in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout")):
        if endpoint.get(key):
            job[name] = endpoint[key]
    if endpoint.get("metricRelabelings"):
        job["metric_relabel_configs"] = [_relabeling(r) for r in endpoint["metricRelabelings"]]
    return job


def render_monitoring(namespace: str, *sets: str) -> list[Manifest]:
    """The chart with the PodMonitor, the dashboard and the PrometheusRule, for simulations in
    ``namespace``; ``sets`` are extra ``key=value`` values."""
    flags = [
        "--set", "producerMonitoring.podMonitor.enabled=true",
        "--set", "producerMonitoring.dashboard.enabled=true",
        "--set", "producerMonitoring.prometheusRule.enabled=true",
    ]  # fmt: skip
    for value in sets:
        flags += ["--set", value]
    return render(*flags, release="sensorsim", namespace=namespace)


def rule_groups(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """The rules file the Prometheus Operator makes of the PrometheusRule: its ``spec.groups``."""
    return list(find(manifests, "PrometheusRule")["spec"]["groups"])


def dashboard(manifests: list[Manifest]) -> dict[str, Any]:
    [config_map] = [
        m for m in manifests if m["kind"] == "ConfigMap" and DASHBOARD_FILE in m.get("data", {})
    ]
    return dict(json.loads(config_map["data"][DASHBOARD_FILE]))


def panel_queries(board: dict[str, Any], variables: dict[str, str]) -> list[tuple[str, str]]:
    """(panel title, query) of every panel target, each ``$name`` / ``${name}`` of
    ``variables`` replaced by its value; a query left with a ``$`` variable is an error."""
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(variables, key=len, reverse=True):
                expr = expr.replace("${" + name + "}", variables[name])
                expr = expr.replace("$" + name, variables[name])
            assert "$" not in expr, f"{panel['title']}: a variable is left in {expr}"
            queries.append((panel["title"], expr))
    return queries
