"""The chart's producer monitoring against a real Prometheus scraping real producers.

Prometheus (the pinned build) scrapes producer processes that stand in for a simulation's pods:
its scrape job is what the Prometheus Operator generates from the chart's rendered PodMonitor,
with each process as a static target carrying the meta labels Kubernetes would give the pod, and
its rules file is the rendered PrometheusRule's groups. Every panel query of the rendered
dashboard must answer with data; the rules must load and evaluate; and a producer whose broker
hangs must raise SensorsimDeliveryStalled. That producer writes to a broker of this module, never
to the session's shared one, which other tests use.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import tools
from testbed.kafka import KafkaBroker
from testbed.polling import wait_until
from testbed.procs import free_port, http_ok, running
from testbed.prometheus import PrometheusServer, promtool
from tests import prometheus_support
from tests.chart_support import Manifest, find
from tests.producer_kafka_support import REPO, producer_env, unique_topic
from tests.prometheus_support import (
    ProducerPod,
    assert_a_frozen_broker_fires_delivery_stalled,
    assert_every_panel_answers,
    dashboard,
    render_monitoring,
    rule_groups,
    scrape_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.tools]

NAMESPACE = "plant-a"
SIMULATION = "line-1"
"""Two shards on the shared broker: the healthy simulation every panel shows."""
STALLING = "line-2"
"""One shard on this module's broker, which the alert test freezes."""
CRASHING = "line-3"
"""One shard on the shared broker, whose producer the shard-missing test kills."""
SCRAPE_SECONDS = 1
MACHINES = 6
INTERVAL_MS = 200
RECORDS_PER_SECOND = MACHINES * 1000 / INTERVAL_MS
"""What a simulation sends once running: one record per machine and cycle."""
STALLED_WINDOW = "10s"
STALLED_FOR = "5s"
SHARD_MISSING_FOR = "5s"
RATE_INTERVAL = f"{4 * SCRAPE_SECONDS}s"
"""Grafana's ``$__rate_interval`` for this scrape interval (four scrapes)."""
ALERTS = {
    "SensorsimDeliveryStalled",
    "SensorsimDeliveryErrors",
    "SensorsimLagGrowing",
    "SensorsimShardMissing",
}


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return render_monitoring(
        NAMESPACE,
        f"producerMonitoring.podMonitor.interval={SCRAPE_SECONDS}s",
        f"producerMonitoring.prometheusRule.deliveryStalled.window={STALLED_WINDOW}",
        f"producerMonitoring.prometheusRule.deliveryStalled.for={STALLED_FOR}",
        f"producerMonitoring.prometheusRule.shardMissing.for={SHARD_MISSING_FOR}",
    )


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker this module may freeze."""
    with running(KafkaBroker(tmp_path_factory.mktemp("kafka-monitoring"))) as broker:
        yield broker


def start_producer(
    pod: ProducerPod, shards: int, bootstrap: str, topic: str, log: Path
) -> subprocess.Popen[bytes]:
    env = producer_env(
        bootstrap, topic,
        HTTP_PORT=str(pod.port), SIMULATION_NAME=pod.simulation, SHARD_INDEX=str(pod.shard),
        SHARD_COUNT=str(shards), NUM_MACHINES=str(MACHINES),
        SIMULATION_INTERVAL_MS=str(INTERVAL_MS), KAFKA_DELIVERY_TIMEOUT_MS="300000",
    )  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "producer"], cwd=REPO, env=env, stdout=out, stderr=out
        )


@pytest.fixture(scope="module")
def pods() -> list[ProducerPod]:
    return [
        ProducerPod(NAMESPACE, SIMULATION, 0, "hash-a", free_port()),
        ProducerPod(NAMESPACE, SIMULATION, 1, "hash-a", free_port()),
        ProducerPod(NAMESPACE, STALLING, 0, "hash-b", free_port()),
        ProducerPod(NAMESPACE, CRASHING, 0, "hash-c", free_port()),
    ]


@pytest.fixture(scope="module")
def producers(
    pods: list[ProducerPod],
    kafka_bootstrap: str,
    own_broker: KafkaBroker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    logs = tmp_path_factory.mktemp("producer-logs")
    topic = unique_topic("monitoring")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for pod in pods:
            shards = sum(1 for other in pods if other.simulation == pod.simulation)
            bootstrap = own_broker.bootstrap if pod.simulation == STALLING else kafka_bootstrap
            processes.append(start_producer(pod, shards, bootstrap, topic, logs / pod.name))
        for pod, process in zip(pods, processes, strict=True):
            # Four producers start at once: on a loaded machine that takes minutes.
            wait_until(
                lambda: http_ok(f"http://127.0.0.1:{pod.port}/metrics"),  # noqa: B023
                timeout=240,
                message=f"producer {pod.name} /metrics",
                process=process,
                log_file=logs / pod.name,
            )
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def prometheus(
    manifests: list[Manifest],
    pods: list[ProducerPod],
    producers: list[subprocess.Popen[bytes]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer]:
    tools.install(tools.PROMETHEUS)
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        scrape_configs=[scrape_config(find(manifests, "PodMonitor"), [pod.target for pod in pods])],
        rule_groups=rule_groups(manifests),
        interval=f"{SCRAPE_SECONDS}s",
    )
    with running(server):
        yield server


def delivering(prometheus: PrometheusServer, simulation: str, shards: int) -> bool:
    return prometheus_support.delivering(prometheus, simulation, shards, RATE_INTERVAL)


def test_every_dashboard_panel_query_returns_data(
    prometheus: PrometheusServer, manifests: list[Manifest]
) -> None:
    started = time.monotonic()
    wait_until(
        lambda: delivering(prometheus, SIMULATION, 2),
        timeout=120,
        message="Prometheus sees both shards delivering",
        log_file=prometheus.log_file,
    )
    targets = prometheus.targets()
    assert {t["health"] for t in targets} == {"up"}, targets
    assert {t["labels"]["pod"] for t in targets} == {"line-1-0", "line-1-1", "line-2-0", "line-3-0"}
    for target in targets:
        labels = target["labels"]
        assert labels["namespace"] == NAMESPACE
        assert labels["job"] == "sensorsim"  # the PodMonitor's jobLabel
        assert labels["shard"] == labels["pod"].rsplit("-", 1)[1]
        assert labels["stream_hash"] in {"hash-a", "hash-b", "hash-c"}

    elapsed = math.ceil(time.monotonic() - started) + 5
    variables = {
        "namespace": NAMESPACE,
        "simulation": SIMULATION,
        "__rate_interval": RATE_INTERVAL,
        "__range": f"{elapsed}s",
    }
    assert_every_panel_answers(prometheus, manifests, variables, shards=2)


def test_the_dashboards_variables_list_the_scraped_simulations(
    prometheus: PrometheusServer, manifests: list[Manifest]
) -> None:
    wait_until(
        lambda: delivering(prometheus, SIMULATION, 2),
        timeout=120,
        message="Prometheus sees both shards delivering",
    )
    found = {}
    for variable in dashboard(manifests)["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector = match.group(1).replace("$namespace", NAMESPACE)
        found[variable["name"]] = set(
            prometheus.api(f"label/{match.group(2)}/values", **{"match[]": selector})
        )
    assert found == {"namespace": {NAMESPACE}, "simulation": {SIMULATION, STALLING, CRASHING}}


def test_the_rules_load_and_evaluate_and_the_healthy_simulation_alerts_nothing(
    prometheus: PrometheusServer,
) -> None:
    checked = promtool("check", "rules", str(prometheus.rules_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout, checked.stdout

    def evaluated() -> list[dict[str, object]] | None:
        rules = prometheus.rules()
        return rules if all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_until(evaluated, timeout=60, message="every rule evaluated")
    assert {rule["name"]: rule["health"] for rule in rules} == dict.fromkeys(ALERTS, "ok")
    wait_until(
        lambda: delivering(prometheus, SIMULATION, 2),
        timeout=120,
        message="Prometheus sees both shards delivering",
    )
    # Long enough for the stall window to be filled with evaluations of healthy producers.
    window_end = time.monotonic() + 2 * int(STALLED_WINDOW.removesuffix("s"))
    while time.monotonic() < window_end:
        active = [a for a in prometheus.alerts() if a["labels"].get("simulation") == SIMULATION]
        assert not active, active
        time.sleep(SCRAPE_SECONDS)


def test_a_hung_broker_fires_delivery_stalled(
    prometheus: PrometheusServer, own_broker: KafkaBroker
) -> None:
    wait_until(
        lambda: delivering(prometheus, STALLING, 1),
        timeout=120,
        message=f"Prometheus sees {STALLING} delivering",
    )
    assert_a_frozen_broker_fires_delivery_stalled(prometheus, own_broker, STALLING, shards=1)


def test_a_producer_that_dies_fires_shard_missing(
    prometheus: PrometheusServer,
    pods: list[ProducerPod],
    producers: list[subprocess.Popen[bytes]],
) -> None:
    wait_until(
        lambda: delivering(prometheus, CRASHING, 1),
        timeout=120,
        message=f"Prometheus sees {CRASHING} delivering",
    )

    def shard_missing() -> list[dict[str, object]]:
        return [
            alert["labels"]
            for alert in prometheus.alerts()
            if alert["labels"]["alertname"] == "SensorsimShardMissing"
            and alert["state"] == "firing"
        ]

    assert not shard_missing()
    [crashing] = [p for pod, p in zip(pods, producers, strict=True) if pod.simulation == CRASHING]
    crashing.kill()
    crashing.wait(timeout=30)
    missing = wait_until(shard_missing, timeout=90, message="SensorsimShardMissing firing")
    assert missing == [
        {"alertname": "SensorsimShardMissing", "namespace": NAMESPACE, "simulation": CRASHING,
         "severity": "critical"}
    ]  # fmt: skip
