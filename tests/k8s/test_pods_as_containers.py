"""The operator's producer pods as real containers of the built image, on the real control plane
and the real broker.

The pods are scheduled (``spec.podTemplate.nodeSelector``) onto the node of the pod runner
(testbed/pods.py), which starts each pod's container with podman from the pod spec the
operator wrote — image, env with the downward-API shard index, volumes, security context — and
reports its real state back to the pod's status, so the StatefulSet controller and the operator
see real readiness, exits and restarts. The image's base is a stand-in (testbed/containers.py).
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from domain.machine_ids import machine_ids
from testbed.cluster import KubeCluster
from testbed.operator import OperatorProcess
from testbed.pods import NODE_LABEL, TOLERATION, PodRunner
from testbed.polling import wait_until
from testbed.watching import Change, Watch
from tests.k8s.test_operator_e2e import (
    TIMEOUT,
    Api,
    condition,
    crd,  # noqa: F401 - fixture: the CRD, established
    minimal_example,
    rolled_out,
    wait_ready,
)

pytestmark = pytest.mark.container

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
        wait_until(
            enough, timeout=120, message=f"{cycles} records of each of {len(machines)} machines"
        )
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
    wait_until(lambda: rolled_out(api, "plant"), timeout=TIMEOUT, message="rollout")
    states = container_states(api, "plant")
    assert len(states) == 3
    assert all(s["containerID"].startswith("podman://") and s["ready"] for s in states), states
    assert_one_producer_per_machine(sequences_from_now(kafka_bootstrap, topic, ids, cycles=5))

    api.kubectl("scale", "sensim/plant", "--replicas=5")
    wait_ready(api, "plant")
    wait_until(lambda: rolled_out(api, "plant"), timeout=TIMEOUT, message="rollout to 5 shards")
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
    status = wait_until(
        lambda: crash_looping(api, "broken-0"),
        timeout=TIMEOUT,
        message="broken-0 in CrashLoopBackOff",
    )
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
    wait_until(
        lambda: crash_looping(api, "broken-0"),
        timeout=TIMEOUT,
        message="broken-0 in CrashLoopBackOff",
    )

    def degraded() -> dict[str, Any] | None:
        found = condition(api.simulation("broken"), "Degraded")
        return found if found.get("status") == "True" else None

    found = wait_until(degraded, timeout=120, message="the simulation to turn Degraded")
    assert "broken-0" in found["message"], found


# --- handover on a replica change -------------------------------------------------------------


def pod_shards(pod: dict[str, Any]) -> int:
    env = pod["spec"]["containers"][0]["env"]
    return int(next(e["value"] for e in env if e["name"] == "SHARD_COUNT"))


def overlaps(changes: list[Change]) -> list[str]:
    """Moments, in the API server's order, when a pod of the new shard count existed while a pod
    of another shard count still existed (running or terminating)."""
    alive: dict[str, tuple[str, int]] = {}
    found = []
    for change in changes:
        meta = change.object["metadata"]
        if change.type == "DELETED":
            alive.pop(meta["uid"], None)
            continue
        alive[meta["uid"]] = (meta["name"], pod_shards(change.object))
        if len({shards for _, shards in alive.values()}) > 1:
            found.append(f"{change.type} {meta['name']}: {sorted(alive.values())}")
    return found


Record = tuple[int, int, int]
"""A machine's record as read back: (seq header, timestamp ms, skipped_cycles header or 0)."""


def describe_breaks(stream: list[Record]) -> str:
    """Where a machine's ``seq`` stream jumps (a gap or a repeat), as ``a -> b`` pairs, each
    with the ``skipped_cycles`` header of record ``b`` if it has one (a catch-up skip)."""
    jumps = [
        f"{a} -> {b}" + (f" (skipped_cycles={skipped})" if skipped else "")
        for (a, _, _), (b, _, skipped) in itertools.pairwise(stream)
        if b != a + 1
    ]
    if not stream:
        return "no records"
    first, _, skipped = stream[0]
    marked = f" (skipped_cycles={skipped})" if skipped else ""
    return f"{len(stream)} records, first {first}{marked}; jumps: {', '.join(jumps)}"


def records_until(
    kafka_bootstrap: str, topic: str, machines: set[str], last_seq: int
) -> dict[str, list[Record]]:
    """Every machine's records from the topic's beginning, until every machine of ``machines``
    has published ``last_seq``."""
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: dict[str, list[Record]] = defaultdict(list)

    def enough() -> bool:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                body = json.loads(record.value)
                headers = dict(record.headers)
                seq = int(headers["seq"])
                assert body["seq"] == seq, body  # the extended body carries it too
                skipped = int(headers.get("skipped_cycles", b"0"))
                records[body["machine_id"]].append((seq, record.timestamp, skipped))
        return set(records) == machines and all(
            any(seq >= last_seq for seq, _, _ in r) for r in records.values()
        )

    try:
        # After each handover the pods catch up the pause as fast as they can; on a loaded
        # machine, at 20 ms, that can take minutes.
        wait_until(
            enough, timeout=300, message=f"seq {last_seq} of each of {len(machines)} machines"
        )
    finally:
        consumer.close()
    return records


_CONTINUITY_LOG_WORDS = ("checkpoint", "restor", "resume", "replac", "failed", "skip", "SIG")


def continuity_log_lines(api: Api, runner: PodRunner, pods: list[str]) -> str:
    """What each of ``pods`` logged about checkpoints, restores, client replacements, failures
    and skips: the diagnostics of a gap or a repeat."""
    lines = []
    for pod in pods:
        for line in runner.logs(api.namespace, pod).splitlines():
            if any(word in line for word in _CONTINUITY_LOG_WORDS):
                lines.append(f"{pod}: {line}")
    return "\n".join(lines)


def test_a_replica_change_hands_every_machine_over_without_overlap_or_gap(
    api: Api, runner: PodRunner, kafka_bootstrap: str, topic: str
) -> None:
    # At 20 ms the producer's default catch-up bound (600 cycles) is 12 s, shorter than any
    # handover's pause: the pause is caught up, not skipped, only thanks to the bound the
    # operator sets for its handovers (CATCH_UP_MAX_CYCLES, docs/operator.md "Grace period").
    machines, interval_ms = 12, 20
    ids = set(machine_ids("handover", range(machines)))
    api.apply(
        minimal_example(
            "handover",
            replicas=2,
            machines=machines,
            intervalMs=interval_ms,
            seed=11,
            messageFormat="extended",
            kafka={"bootstrapServers": kafka_bootstrap, "topic": topic},
            **ON_THE_RUNNER,
        )
    )
    wait_ready(api, "handover")
    epoch = datetime.fromisoformat(api.simulation("handover")["metadata"]["creationTimestamp"])
    pods = Watch(api.cluster, api.namespace, "pods", "app.kubernetes.io/instance=handover")
    simulations = Watch(api.cluster, api.namespace, "sensim")
    took: dict[int, float] = {}
    scaled: dict[int, float] = {}
    try:
        wait_until(
            lambda: len(pods.snapshot()) >= 2,
            timeout=TIMEOUT,
            message="the watch to list the 2 running pods",
        )
        wait_until(
            simulations.snapshot, timeout=TIMEOUT, message="the watch to list the simulation"
        )
        for shards in (5, 3):  # up, then down
            scaled[shards] = scaled_at = time.time()
            api.kubectl("scale", "sensim/handover", f"--replicas={shards}")
            wait_ready(api, "handover")
            wait_until(
                lambda: rolled_out(api, "handover"),
                timeout=TIMEOUT,
                message=f"rollout to {shards} shards",
            )
            took[shards] = time.time() - scaled_at
    finally:
        pod_changes, simulation_changes = pods.stop(), simulations.stop()

    found = overlaps(pod_changes)
    assert not found, found[:3]
    assert {pod_shards(c.object) for c in pod_changes} == {2, 5, 3}
    # Each replica change was a handover (Progressing/Handover while the old pods stopped),
    # reported in the status between that change and the next.
    handovers = [
        (c.arrived, condition(c.object, "Progressing")["message"])
        for c in simulation_changes
        if condition(c.object, "Progressing").get("reason") == "Handover"
    ]
    up = [m for at, m in handovers if scaled[5] <= at < scaled[3]]
    down = [m for at, m in handovers if at >= scaled[3]]
    assert any("stopping every old pod" in m for m in up), handovers
    assert any("stopping every old pod" in m for m in down), handovers

    # Every machine's stream, from cycle 0 (the resource's creation) to past both handovers.
    last_seq = int((time.time() - epoch.timestamp()) * 1000 / interval_ms) + 10
    records = records_until(kafka_bootstrap, topic, ids, last_seq)
    broken = {
        machine: stream
        for machine, stream in records.items()
        if [seq for seq, _, _ in stream] != list(range(len(stream)))
    }
    if broken:  # what the pods said about checkpoints, restores and skips, for the diagnosis
        pods_seen = sorted({c.object["metadata"]["name"] for c in pod_changes})
        print(continuity_log_lines(api, runner, pods_seen))
    assert not broken, {machine: describe_breaks(stream) for machine, stream in broken.items()}
    # What a handover costs (printed, not asserted): each machine's two longest waits between
    # two records (one per handover).
    gaps = [
        sorted((b - a) / 1000 for (_, a, _), (_, b, _) in itertools.pairwise(stream))[-2:]
        for stream in records.values()
    ]
    pauses = sorted(gap for pair in gaps for gap in pair)
    stopped = {
        new: max(
            c.arrived
            for c in pod_changes
            if c.type == "DELETED" and pod_shards(c.object) == old and c.arrived > scaled[new]
        )
        - scaled[new]
        for old, new in ((2, 5), (5, 3))
    }
    print(
        f"\nhandovers 2 -> 5 -> 3 shards: scale to the last old pod gone {stopped[5]:.1f} s and "
        f"{stopped[3]:.1f} s, to all new pods Ready {took[5]:.1f} s and {took[3]:.1f} s; "
        f"per machine and handover, the gap between two records: "
        f"median {statistics.median(pauses):.2f} s, max {pauses[-1]:.2f} s ({len(pauses)} gaps)"
    )
