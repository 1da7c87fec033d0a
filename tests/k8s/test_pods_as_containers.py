"""The operator's producer pods as real containers of the built image, on the real control plane
and the real broker.

The pods are scheduled (``spec.podTemplate.nodeSelector``) onto the node of the pod runner
(tests/infra/pods.py), which starts each pod's container with podman from the pod spec the
operator wrote — image, env with the downward-API shard index, volumes, security context — and
reports its real state back to the pod's status, so the StatefulSet controller and the operator
see real readiness, exits and restarts. The image's base is a stand-in (tests/infra/containers.py).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from domain.machine_ids import machine_ids
from tests.infra import procs
from tests.infra.cluster import KubeCluster
from tests.infra.operator import OperatorProcess
from tests.infra.pods import NODE_LABEL, TOLERATION, PodRunner
from tests.k8s.test_operator_e2e import (
    Api,
    condition,
    crd,  # noqa: F401 - fixture: the CRD, established
    minimal_example,
    rolled_out,
    wait_for,
    wait_ready,
)

PARTITIONS = 3
ON_THE_RUNNER = {
    "podTemplate": {"nodeSelector": {NODE_LABEL[0]: NODE_LABEL[1]}, "tolerations": [TOLERATION]}
}


@pytest.fixture(scope="module")
def runner(
    k8s_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    with PodRunner(k8s_cluster, tmp_path_factory.mktemp("pods")) as running:
        yield running
    assert not running.errors, running.errors


@pytest.fixture(scope="module")
def operator(
    k8s_cluster: KubeCluster,
    sensorsim_image: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    request.getfixturevalue("crd")
    with OperatorProcess(
        k8s_cluster.env,
        tmp_path_factory.mktemp("operator") / "operator.log",
        WATCH_NAMESPACES="",
        PRODUCER_IMAGE=sensorsim_image,
    ) as running:
        yield running


@pytest.fixture
def api(k8s_cluster: KubeCluster, operator: OperatorProcess, runner: PodRunner) -> Iterator[Api]:
    namespace = f"pods-{uuid.uuid4().hex[:8]}"
    k8s_cluster.kubectl("create", "namespace", namespace)
    # Every producer pod that exists has passed the Pod Security "restricted" profile.
    k8s_cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    yield Api(k8s_cluster, namespace)
    k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"pods-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()
    return name


def sequences_from_now(
    kafka_bootstrap: str, topic: str, machines: set[str], cycles: int
) -> dict[str, list[int]]:
    """Each machine's ``seq`` headers from the topic's current end on, until every machine of
    ``machines`` has published ``cycles`` records (a record of another machine fails)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    seqs: dict[str, list[int]] = defaultdict(list)

    def enough() -> bool:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                machine = json.loads(record.value)["machine_id"]
                assert machine in machines, f"record of unknown machine {machine}"
                seqs[machine].append(int(dict(record.headers)["seq"]))
        return set(seqs) == machines and all(len(s) >= cycles for s in seqs.values())

    try:
        procs.wait_until(enough, 120, f"{cycles} records of each of {len(machines)} machines")
    finally:
        consumer.close()
    return seqs


def assert_one_producer_per_machine(seqs: dict[str, list[int]]) -> None:
    """A machine published by two pods would repeat or skip sequence numbers."""
    for machine, numbers in seqs.items():
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (machine, numbers)


def container_states(api: Api, name: str) -> list[dict[str, Any]]:
    return [p["status"]["containerStatuses"][0] for p in api.pods(name)]


def test_every_machine_reaches_the_broker_from_container_pods_before_and_after_a_scale(
    api: Api, runner: PodRunner, kafka_bootstrap: str, topic: str
) -> None:
    machines = 11
    ids = set(machine_ids("plant", range(machines)))
    api.apply(
        minimal_example(
            "plant",
            replicas=3,
            machines=machines,
            intervalMs=200,
            seed=7,
            kafka={"bootstrapServers": kafka_bootstrap, "topic": topic},
            **ON_THE_RUNNER,
        )
    )
    wait_ready(api, "plant")
    wait_for(lambda: rolled_out(api, "plant"), "rollout")
    states = container_states(api, "plant")
    assert len(states) == 3
    assert all(s["containerID"].startswith("podman://") and s["ready"] for s in states), states
    assert_one_producer_per_machine(sequences_from_now(kafka_bootstrap, topic, ids, cycles=5))

    api.kubectl("scale", "sensim/plant", "--replicas=5")
    wait_ready(api, "plant")
    wait_for(lambda: rolled_out(api, "plant"), "rollout to 5 shards")
    states = container_states(api, "plant")
    assert len(states) == 5
    assert all(s["ready"] and s["restartCount"] == 0 for s in states), states
    assert_one_producer_per_machine(sequences_from_now(kafka_bootstrap, topic, ids, cycles=5))
    for pod in api.pods("plant"):
        logs = runner.logs(api.namespace, pod["metadata"]["name"])
        assert "Traceback" not in logs, logs


def crash_looping(api: Api, pod: str) -> dict[str, Any] | None:
    found = api.get("pod", pod)
    statuses = (found or {}).get("status", {}).get("containerStatuses", [])
    if statuses and (statuses[0]["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff":
        status: dict[str, Any] = statuses[0]
        return status
    return None


def start_crashing_simulation(api: Api, tmp_path: Path) -> None:
    """A simulation whose reference data (a ConfigMap mounted into the pod) has no sensor
    columns: the producer exits non-zero at start, every time."""
    bad = tmp_path / "data_sensors.csv"
    bad.write_text("time,Label\n1,\n")
    api.kubectl("create", "configmap", "bad-reference", f"--from-file={bad}")
    api.apply(
        minimal_example(
            "broken",
            replicas=1,
            machines=2,
            referenceData={"configMapName": "bad-reference"},
            **ON_THE_RUNNER,
        )
    )


def test_a_container_that_exits_non_zero_crash_loops_in_the_pod_status(
    api: Api, runner: PodRunner, tmp_path: Path
) -> None:
    start_crashing_simulation(api, tmp_path)
    status = wait_for(lambda: crash_looping(api, "broken-0"), "broken-0 in CrashLoopBackOff")
    terminated = status["lastState"]["terminated"]
    assert terminated["exitCode"] != 0
    assert terminated["reason"] == "Error"
    assert status["restartCount"] >= 1
    assert not status["ready"]
    logs = runner.logs(api.namespace, "broken-0")
    assert "data_sensors.csv" in logs, logs
    obj = api.simulation("broken")
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"].get("readyReplicas", 0) == 0


def test_a_crash_looping_pod_turns_the_simulation_degraded_naming_the_pod(
    api: Api, tmp_path: Path
) -> None:
    start_crashing_simulation(api, tmp_path)
    wait_for(lambda: crash_looping(api, "broken-0"), "broken-0 in CrashLoopBackOff")

    def degraded() -> dict[str, Any] | None:
        found = condition(api.simulation("broken"), "Degraded")
        return found if found.get("status") == "True" else None

    found = wait_for(degraded, "the simulation to turn Degraded", timeout=120)
    assert "broken-0" in found["message"], found
