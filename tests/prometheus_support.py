"""The chart's producer monitoring as a plain Prometheus runs it (tests/kafka/test_monitoring_*):
the scrape configuration the Prometheus Operator generates from the rendered PodMonitor, for
static targets that carry the meta labels Kubernetes service discovery would give a producer
pod; the rules of the rendered PrometheusRule; the dashboard's queries with Grafana's variables
replaced; the checks the monitoring tests share (delivery seen, every panel answered, the
stalled alert raised by a frozen broker)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensorsim_operator import names
from testbed.kafka import KafkaBroker
from testbed.polling import wait_until
from testbed.prometheus import PrometheusServer
from tests.chart_support import Manifest, find, render

DASHBOARD_FILE = "sensorsim-producers.json"


@dataclass(frozen=True)
class ScrapeTarget:
    """One target of Kubernetes service discovery's ``pod`` role: the address Prometheus
    scrapes and the target's ``__meta_kubernetes_*`` labels."""

    address: str
    meta_labels: dict[str, str]


def _label_name(key: str) -> str:
    """A Kubernetes label or annotation key as Prometheus' service discovery spells it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def pod_role_targets(pod: Manifest, address: Callable[[int], str]) -> list[ScrapeTarget]:
    """The targets Prometheus' ``pod`` role makes of a pod object: one per port of each
    container, with the pod's and the container's meta labels; ``address`` maps a container
    port to where it is reached (``podIP:port`` in a cluster)."""
    meta, status = pod["metadata"], pod.get("status", {})
    labels = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_ip": status.get("podIP", ""),
        "__meta_kubernetes_pod_node_name": pod["spec"].get("nodeName", ""),
        "__meta_kubernetes_pod_host_ip": status.get("hostIP", ""),
        "__meta_kubernetes_pod_uid": meta.get("uid", ""),
        "__meta_kubernetes_pod_phase": status.get("phase", ""),
    }
    ready = [c["status"] for c in status.get("conditions", []) if c["type"] == "Ready"]
    labels["__meta_kubernetes_pod_ready"] = ready[0].lower() if ready else "unknown"
    for owner in meta.get("ownerReferences", []):
        if owner.get("controller"):
            labels["__meta_kubernetes_pod_controller_kind"] = owner["kind"]
            labels["__meta_kubernetes_pod_controller_name"] = owner["name"]
    for kind in ("label", "annotation"):
        for key, value in meta.get(f"{kind}s", {}).items():
            labels[f"__meta_kubernetes_pod_{kind}_{_label_name(key)}"] = value
            labels[f"__meta_kubernetes_pod_{kind}present_{_label_name(key)}"] = "true"
    return [
        ScrapeTarget(address(port["containerPort"]), {
            **labels,
            "__meta_kubernetes_pod_container_name": container["name"],
            "__meta_kubernetes_pod_container_image": container.get("image", ""),
            "__meta_kubernetes_pod_container_init": "false",
            "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
            "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
            "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
        })
        for container in pod["spec"]["containers"]
        for port in container.get("ports", [])
    ]  # fmt: skip


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
    def manifest(self) -> Manifest:
        """What service discovery reads of the pod object, the process's port as the producer
        container's ``http`` port."""
        labels = {**names.selector_labels(self.simulation), names.POD_INDEX_LABEL: str(self.shard)}
        return {
            "metadata": {"namespace": self.namespace, "name": self.name, "labels": labels,
                         "annotations": {names.STREAM_HASH_ANNOTATION: self.stream_hash}},
            "spec": {"containers": [{"name": names.PRODUCER_CONTAINER, "ports": [
                {"name": names.HTTP_PORT_NAME, "containerPort": self.port}]}]},
            "status": {"podIP": "127.0.0.1", "phase": "Running"},
        }  # fmt: skip

    @property
    def target(self) -> ScrapeTarget:
        [target] = pod_role_targets(self.manifest, lambda port: f"127.0.0.1:{port}")
        return target


def _relabeling(rule: dict[str, Any]) -> dict[str, Any]:
    """A PodMonitor relabeling (camelCase) as a Prometheus relabel_config (snake_case)."""
    return {re.sub(r"([A-Z])", r"_\1", key).lower(): value for key, value in rule.items()}


def scrape_config(pod_monitor: Manifest, targets: list[ScrapeTarget]) -> dict[str, Any]:
    """The scrape job the Prometheus Operator generates for ``pod_monitor`` (its
    ``generatePodMonitorConfig``: keep the selected pods and port, set namespace, container,
    pod, job and endpoint, then the PodMonitor's own relabelings), with ``targets`` as static
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
            {"targets": [target.address], "labels": target.meta_labels} for target in targets
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


def delivering(prometheus: PrometheusServer, simulation: str, shards: int, rate: str) -> bool:
    """Prometheus sees every shard of ``simulation`` acknowledged and timing acknowledgements
    (rates over ``rate``)."""
    selector = f'simulation="{simulation}"'
    acked = prometheus.query(f"rate(sensorsim_records_delivered_total{{{selector}}}[{rate}]) > 0")
    timed = prometheus.query(f"rate(sensorsim_ack_latency_seconds_count{{{selector}}}[{rate}]) > 0")
    return len(acked) == shards and len(timed) == shards


def assert_every_panel_answers(
    prometheus: PrometheusServer, manifests: list[Manifest], variables: dict[str, str], shards: int
) -> None:
    """Every panel query of the rendered dashboard, with Grafana's ``variables``, returns a
    finite number for ``variables["simulation"]`` only, and the shards panel counts ``shards``."""
    simulation = variables["simulation"]
    answers = {
        (title, query): prometheus.query(query)
        for title, query in panel_queries(dashboard(manifests), variables)
    }
    empty = [key for key, series in answers.items() if not series]
    assert not empty, f"panel queries without data: {empty}"
    for (title, query), series in answers.items():
        for one in series:
            assert one["metric"].get("simulation") == simulation, (title, query, one)
            assert math.isfinite(float(one["value"][1])), (title, query, one)
    counts = [s for (title, q), s in answers.items() if title.startswith("Shards") and "count" in q]
    assert [float(one["value"][1]) for series in counts for one in series] == [float(shards)]


def assert_a_frozen_broker_fires_delivery_stalled(
    prometheus: PrometheusServer,
    broker: KafkaBroker,
    simulation: str,
    shards: int,
    timeout: float = 120,
) -> None:
    """Freeze ``broker`` (which only ``simulation`` writes to): SensorsimDeliveryStalled goes
    pending, then firing, for each of the simulation's ``shards`` pods and nothing else;
    thawed, the alert resolves."""
    states: dict[str, list[str]] = {}  # pod -> the alert's states, in the order seen

    def firing() -> bool:
        for alert in prometheus.alerts():
            labels = alert["labels"]
            if labels["alertname"] == "SensorsimDeliveryStalled":
                assert labels["simulation"] == simulation, alert
                assert labels["severity"] == "critical", alert
                seen = states.setdefault(labels["pod"], [])
                if not seen or seen[-1] != alert["state"]:
                    seen.append(alert["state"])
        fired = [seen for seen in states.values() if seen[-1] == "firing"]
        return len(fired) == shards

    assert not firing()
    assert not states
    broker.freeze()
    try:
        wait_until(firing, timeout=timeout, message="SensorsimDeliveryStalled firing",
                   log_file=prometheus.log_file)  # fmt: skip
    finally:
        broker.thaw()
    assert list(states.values()) == [["pending", "firing"]] * shards, states
    wait_until(
        lambda: not any(a["labels"]["alertname"] == "SensorsimDeliveryStalled"
                        for a in prometheus.alerts()),
        timeout=timeout,
        message="SensorsimDeliveryStalled resolved once the broker answers again",
    )  # fmt: skip
