"""The chart's producer monitoring against a real Prometheus scraping real producer PODS: one
SensorSimulation of two shards whose pods the operator creates on the real control plane and
the pod runner (testbed/pods) runs as containers of the built image.

Prometheus's scrape job is what the Prometheus Operator generates from the rendered PodMonitor;
its targets are what Kubernetes service discovery's ``pod`` role makes of the two pod objects
read from the API server (namespace, name, labels, annotations, container and port), each
reached on the host port the runner published the pod's ``http`` port on (every container
shares the host's network, so ``podIP:containerPort`` is not where it listens). Every panel
query of the rendered dashboard must answer for the simulation, and freezing the broker the
simulation writes to, a broker of this module (never the session's shared one), must raise
SensorsimDeliveryStalled for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from sensorsim_operator import names
from testbed import tools
from testbed.cluster import KubeCluster
from testbed.kafka import KafkaBroker
from testbed.operator import OperatorProcess
from testbed.pods import PodRunner
from testbed.polling import wait_until
from testbed.procs import running
from testbed.prometheus import PrometheusServer
from tests.chart_support import Manifest, find
from tests.k8s.test_operator_e2e import (
    TIMEOUT,
    Api,
    crd,  # noqa: F401 - fixture: the CRD, established
    minimal_example,
    rolled_out,
    wait_ready,
)
from tests.k8s.test_pods_as_containers import (
    ON_THE_RUNNER,
    operator,  # noqa: F401 - fixture: the operator process
    runner,  # noqa: F401 - fixture: the podman pod runner
)
from tests.k8s.test_rollout_containers import create_namespace
from tests.prometheus_support import (
    ScrapeTarget,
    assert_a_frozen_broker_fires_delivery_stalled,
    assert_every_panel_answers,
    delivering,
    pod_role_targets,
    render_monitoring,
    rule_groups,
    scrape_config,
)

pytestmark = [pytest.mark.container, pytest.mark.tools]

SIMULATION = "monitored"
SHARDS = 2
MACHINES = 4
INTERVAL_MS = 200
SCRAPE_SECONDS = 1
RATE_INTERVAL = f"{4 * SCRAPE_SECONDS}s"
"""Grafana's ``$__rate_interval`` for this scrape interval (four scrapes)."""


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The broker the simulation writes to, which this module freezes."""
    tools.install(tools.KAFKA)
    with running(KafkaBroker(tmp_path_factory.mktemp("kafka-monitored"))) as broker:
        yield broker


@pytest.fixture(scope="module")
def api(k8s_cluster: KubeCluster, operator: OperatorProcess, runner: PodRunner) -> Iterator[Api]:  # noqa: F811
    api = create_namespace(k8s_cluster, "monitored")
    yield api
    k8s_cluster.kubectl("delete", "namespace", api.namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def pods(api: Api, runner: PodRunner, own_broker: KafkaBroker) -> list[dict[str, Any]]:  # noqa: F811
    """The simulation's two producer pods as the API server has them, running and published."""
    admin = KafkaAdminClient(bootstrap_servers=own_broker.bootstrap)
    try:
        admin.create_topics([NewTopic(SIMULATION, num_partitions=SHARDS, replication_factor=1)])
    finally:
        admin.close()
    api.apply(
        minimal_example(
            SIMULATION,
            replicas=SHARDS,
            machines=MACHINES,
            intervalMs=INTERVAL_MS,
            kafka={"bootstrapServers": own_broker.bootstrap, "topic": SIMULATION},
            **ON_THE_RUNNER,
        )
    )
    wait_ready(api, SIMULATION)
    wait_until(lambda: rolled_out(api, SIMULATION), timeout=TIMEOUT, message="rollout")

    def published() -> list[dict[str, Any]] | None:
        found = api.pods(SIMULATION)
        ok = len(found) == SHARDS and all(runner.host_ports(p["metadata"]["uid"]) for p in found)
        return found if ok else None

    return wait_until(published, timeout=TIMEOUT, message="both pods' ports published")


def targets_of(pod: dict[str, Any], runner: PodRunner) -> list[ScrapeTarget]:  # noqa: F811
    """What service discovery makes of ``pod``, each port reached where the runner publishes
    it."""
    host_ports = runner.host_ports(pod["metadata"]["uid"])
    ip = pod["status"]["podIP"]
    return pod_role_targets(pod, lambda port: f"{ip}:{host_ports[port]}")


@pytest.fixture(scope="module")
def manifests(api: Api) -> list[Manifest]:
    return render_monitoring(
        api.namespace,
        f"producerMonitoring.podMonitor.interval={SCRAPE_SECONDS}s",
        "producerMonitoring.prometheusRule.deliveryStalled.window=10s",
        "producerMonitoring.prometheusRule.deliveryStalled.for=5s",
    )


@pytest.fixture(scope="module")
def prometheus(
    manifests: list[Manifest],
    pods: list[dict[str, Any]],
    runner: PodRunner,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer]:
    tools.install(tools.PROMETHEUS)
    targets = [target for pod in pods for target in targets_of(pod, runner)]
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        scrape_configs=[scrape_config(find(manifests, "PodMonitor"), targets)],
        rule_groups=rule_groups(manifests),
        interval=f"{SCRAPE_SECONDS}s",
    )
    with running(server):
        yield server


def wait_delivering(prometheus: PrometheusServer) -> None:
    wait_until(
        lambda: delivering(prometheus, SIMULATION, SHARDS, RATE_INTERVAL),
        timeout=120,
        message="Prometheus sees both pods delivering",
        log_file=prometheus.log_file,
    )


def test_every_dashboard_panel_query_returns_data_from_the_pods(
    prometheus: PrometheusServer, manifests: list[Manifest], pods: list[dict[str, Any]], api: Api
) -> None:
    started = time.monotonic()
    wait_delivering(prometheus)
    scraped = {t["labels"]["pod"]: t for t in prometheus.targets()}
    assert set(scraped) == {pod["metadata"]["name"] for pod in pods}
    for pod in pods:
        target = scraped[pod["metadata"]["name"]]
        assert target["health"] == "up", target
        meta = pod["metadata"]
        assert target["labels"] == {
            "namespace": api.namespace,
            "pod": meta["name"],
            "container": names.PRODUCER_CONTAINER,
            "endpoint": names.HTTP_PORT_NAME,
            "job": "sensorsim",  # the PodMonitor's jobLabel
            "instance": target["scrapeUrl"].split("/")[2],
            "simulation": SIMULATION,
            "shard": meta["labels"][names.POD_INDEX_LABEL],
            "stream_hash": meta["annotations"][names.STREAM_HASH_ANNOTATION],
        }, target

    elapsed = math.ceil(time.monotonic() - started) + 5
    variables = {
        "namespace": api.namespace,
        "simulation": SIMULATION,
        "__rate_interval": RATE_INTERVAL,
        "__range": f"{elapsed}s",
    }
    assert_every_panel_answers(prometheus, manifests, variables, shards=SHARDS)


def test_a_frozen_broker_fires_delivery_stalled_for_the_pods(
    prometheus: PrometheusServer, own_broker: KafkaBroker, api: Api
) -> None:
    wait_delivering(prometheus)
    assert_a_frozen_broker_fires_delivery_stalled(prometheus, own_broker, SIMULATION, SHARDS)
    restarts = [p["status"]["containerStatuses"][0]["restartCount"] for p in api.pods(SIMULATION)]
    assert restarts == [0] * SHARDS
