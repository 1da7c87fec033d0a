"""Every kind of spec change rolled out through ONE running simulation whose producer pods are
real containers of the image (testbed/pods.py), on the real control plane and the real broker,
with the operator as a process.

The tests run in order on the module's simulation; each makes one change and checks what the
change did to the stream, then the invariants that hold from the simulation's first record on:

- no producer pod ever restarted or waited in CrashLoopBackOff (every pod change is watched);
- no machine was ever owned by two existing pods, and pods with different stream-shaping
  settings never existed at once (from the pods' own env, in the API server's order);
- per machine, ``seq`` is contiguous from the machine's first record: no gap, no duplicate;
- every machine follows one schedule (a cycle's due time is the same on every machine, and
  grows with the cycle);
- the simulation is Ready with its latest generation observed.

Run one test alone (``-k``) to see what a single change does to a fresh simulation; the machine
steps (lowered, then raised) are one test.
"""

from __future__ import annotations

import json
import pprint
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from domain.machine_ids import machine_ids
from testbed.cluster import KubeCluster
from testbed.operator import OperatorProcess
from testbed.pods import PodRunner
from testbed.polling import WaitTimeoutError, wait_until
from testbed.watching import Watch
from tests.k8s.rollout_checks import (
    Reading,
    TopicRecorder,
    between,
    double_owner_problems,
    failing_share,
    lag1_autocorrelation,
    mid_handover,
    mixed_settings_problems,
    old_pods_gone_after,
    quiet_snapshot,
    reference_config_map,
    restart_problems,
    schedule_problems,
    sequence_problems,
    spacings,
    split_by_age,
    value_range,
)
from tests.k8s.test_operator_e2e import (
    Api,
    crd,  # noqa: F401 - fixture: the CRD, established
    minimal_example,
    rolled_out,
    settled_ready,
)
from tests.k8s.test_pods_as_containers import (
    ON_THE_RUNNER,
    PARTITIONS,
    operator,  # noqa: F401 - fixture: the operator process
    runner,  # noqa: F401 - fixture: the podman pod runner
)

pytestmark = pytest.mark.container

NAME = "rollout"
REFERENCE = "reference"
MACHINES = 10
INTERVAL_MS = 400
EPISODE = {"minCycles": 2, "maxCycles": 4, "rampCycles": 0}
SETTLE_TIMEOUT = 240.0


def simulation(bootstrap: str, topic: str) -> dict[str, Any]:
    return minimal_example(
        NAME,
        replicas=3,
        machines=MACHINES,
        intervalMs=INTERVAL_MS,
        seed=17,
        sensors=4,
        model="learned",
        persistence=0.95,
        messageFormat="extended",
        failures={"probability": 0.0, **EPISODE},
        referenceData={"configMapName": REFERENCE, "key": "data.csv"},
        kafka={"bootstrapServers": bootstrap, "topic": topic},
        **ON_THE_RUNNER,
    )


def create_namespace(cluster: KubeCluster, prefix: str) -> Api:
    """A namespace enforcing the Pod Security "restricted" profile."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    return Api(cluster, namespace)


def now_ms() -> float:
    return time.time() * 1000


@dataclass
class Fleet:
    """The module's simulation and everything recorded about it since before it existed."""

    api: Api
    operator: OperatorProcess
    runner: PodRunner
    bootstrap: str
    topic: str
    recorder: TopicRecorder
    pods: Watch
    interval_ms: int = INTERVAL_MS
    machines: int = MACHINES
    # The machines whose stream is checked, with the seq each one's stream starts at.
    first_seq: dict[str, int] = field(default_factory=dict)

    def ids(self, machines: int | None = None) -> list[str]:
        return list(machine_ids(NAME, range(self.machines if machines is None else machines)))

    def settle(self) -> float:
        """Wait until the simulation is Ready at its latest generation and every pod runs the
        StatefulSet's latest revision; the time (ms) it was. Fails at once when a producer
        restarted or a machine had two owners meanwhile."""

        def outcome() -> str | None:
            broken = self.broken()
            if broken:
                return broken
            ready = settled_ready(self.api, NAME) and rolled_out(self.api, NAME)
            return "settled" if ready else None

        try:
            found = wait_until(outcome, timeout=SETTLE_TIMEOUT, message="Ready and rolled out")
        except WaitTimeoutError as error:
            found = str(error)
        if found != "settled":
            status = (self.api.get("sensim", NAME) or {}).get("status")
            raise AssertionError(f"{found}\nstatus: {pprint.pformat(status)}")
        return now_ms()

    def broken(self) -> str | None:
        """What shows the simulation cannot come right any more: a producer that restarted,
        a machine owned by two pods (with the pods' last log lines)."""
        changes = self.pods.snapshot()
        found = {
            "restarts": restart_problems(changes),
            "owned twice": double_owner_problems(changes),
        }
        return pprint.pformat(found, width=110) + self.pod_logs() if any(found.values()) else None

    def change(self, spec: Mapping[str, Any]) -> tuple[float, float]:
        """Patch the spec and wait until it is rolled out: (patched, settled) in ms."""
        patched = now_ms()
        self.api.patch_spec(NAME, dict(spec))
        self.machines = int(spec.get("machines", self.machines))
        self.interval_ms = int(spec.get("intervalMs", self.interval_ms))
        return patched, self.settle()

    def records_after(self, since_ms: float, cycles: int) -> dict[str, list[Reading]]:
        """Every record once each current machine has one due ``cycles`` cycles after
        ``since_ms``."""
        return self.recorder.wait_until_due(
            self.ids(), since_ms + cycles * self.interval_ms, broken=self.broken
        )

    def problems(self, records: Mapping[str, Sequence[Reading]] | None = None) -> dict[str, Any]:
        records = self.recorder.snapshot() if records is None else records
        changes = self.pods.snapshot()
        obj = settled_ready(self.api, NAME)
        return {
            "restarts": restart_problems(changes),
            "owned twice": double_owner_problems(changes),
            "mixed settings": mixed_settings_problems(changes),
            "seq": sequence_problems(records, self.first_seq),
            "schedule": schedule_problems(records),
            "unknown machines": sorted(set(records) - set(self.first_seq)),
            "not ready": [] if obj else [self.api.simulation(NAME).get("status")],
        }

    def assert_invariants(self, records: Mapping[str, Sequence[Reading]] | None = None) -> None:
        found = self.problems(records)
        if any(found.values()):
            raise AssertionError(pprint.pformat(found, width=110) + self.pod_logs())

    def pod_logs(self, namespace: str | None = None) -> str:
        """The last lines of every producer pod of the name that ever existed in ``namespace``
        (default: the simulation's) for a failure message."""
        names = {c.object["metadata"]["name"] for c in self.pods.snapshot()}
        text = ""
        for name in sorted(names):
            lines = self.runner.logs(namespace or self.api.namespace, name).splitlines()
            text += f"\n--- {name}: {len(lines)} lines, the last:\n" + "\n".join(lines[-3:])
        return text


@contextmanager
def running_fleet(
    cluster: KubeCluster,
    operator_process: OperatorProcess,
    pod_runner: PodRunner,
    bootstrap: str,
    prefix: str,
) -> Iterator[Fleet]:
    """The simulation in a new namespace ``prefix-...`` on a new topic, settled, with its first
    records; the namespace is deleted after."""
    api = create_namespace(cluster, prefix)
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()
    recorder = TopicRecorder(bootstrap, topic, PARTITIONS).start()
    pods = Watch(cluster, api.namespace, "pods", f"app.kubernetes.io/instance={NAME}")
    running = Fleet(api, operator_process, pod_runner, bootstrap, topic, recorder, pods)
    running.first_seq = dict.fromkeys(running.ids(), 0)
    try:
        api.apply(reference_config_map(REFERENCE, api.namespace, 0.0))
        api.apply(simulation(bootstrap, topic))
        started = running.settle()
        running.records_after(started, cycles=3)
        running.assert_invariants()
        yield running
    finally:
        pods.stop()
        recorder.stop()
        cluster.kubectl("delete", "namespace", api.namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def fleet(
    k8s_cluster: KubeCluster,
    operator: OperatorProcess,  # noqa: F811
    runner: PodRunner,  # noqa: F811
    kafka_bootstrap: str,
) -> Iterator[Fleet]:
    with running_fleet(k8s_cluster, operator, runner, kafka_bootstrap, "rollout") as running:
        yield running


# --- the steps, in order ---------------------------------------------------------------------


def test_failure_probability_raised_then_lowered_changes_the_failing_share(fleet: Fleet) -> None:
    records = fleet.records_after(now_ms(), cycles=5)
    share, count = failing_share(records)
    assert share == 0.0, f"probability 0: {share:.2f} of {count} records failing"

    _, settled = fleet.change({"failures": {"probability": 0.3}})
    records = fleet.records_after(settled, cycles=30)
    share, count = failing_share(between(records, settled))
    # Stationary share with episodes of 2-4 cycles (mean 3): 0.3 * 3 / (1 + 0.3 * 3) = 0.47.
    assert share > 0.15, f"probability 0.3: only {share:.2f} of {count} records failing"
    fleet.assert_invariants(records)

    _, settled = fleet.change({"failures": {"probability": 0.0}})
    calm = settled + (EPISODE["maxCycles"] + 1) * fleet.interval_ms  # every episode has ended
    records = fleet.records_after(calm, cycles=10)
    share, count = failing_share(between(records, calm))
    assert share == 0.0, f"probability back to 0: {share:.2f} of {count} records failing"
    fleet.assert_invariants(records)


def test_interval_change_respaces_the_cycles_and_keeps_timestamps_monotone(fleet: Fleet) -> None:
    before = fleet.interval_ms
    patched, settled = fleet.change({"intervalMs": 200})
    records = fleet.records_after(settled, cycles=20)
    assert spacings(between(records, 0, patched)) == {before}
    assert spacings(between(records, settled)) == {200}
    fleet.assert_invariants(records)  # schedule: due times grow with seq on every machine


def test_persistence_change_changes_the_autocorrelation(fleet: Fleet) -> None:
    start = now_ms()
    records = fleet.records_after(start, cycles=30)
    persistent = lag1_autocorrelation(between(records, start))
    _, settled = fleet.change({"persistence": 0.0})
    records = fleet.records_after(settled, cycles=40)
    independent = lag1_autocorrelation(between(records, settled))
    assert persistent > 0.5, f"persistence 0.95: lag-1 autocorrelation {persistent:.2f}"
    assert independent < 0.3, f"persistence 0: lag-1 autocorrelation {independent:.2f}"
    fleet.assert_invariants(records)


def test_reference_data_edited_and_rollout_restart_use_the_new_data(fleet: Fleet) -> None:
    edited = now_ms()
    fleet.api.apply(reference_config_map(REFERENCE, fleet.api.namespace, 1000.0))
    fleet.api.kubectl("rollout", "restart", f"statefulset/{NAME}")
    settled = fleet.settle()
    records = fleet.records_after(settled, cycles=10)
    low, high = value_range(between(records, 0, edited))
    assert high < 100, f"the first data (around 10): readings {low:.1f}..{high:.1f}"
    low, high = value_range(between(records, settled))
    assert low > 500, f"the edited data (around 1010): readings {low:.1f}..{high:.1f}"
    fleet.assert_invariants(records)


def test_machines_lowered_then_raised(fleet: Fleet) -> None:
    ids = fleet.ids()
    _, settled = fleet.change({"machines": 7})
    records = fleet.records_after(settled, cycles=10)
    removed = ids[7:]
    late = {m: [r.seq for r in between(records, settled)[m]] for m in removed}
    assert not any(late.values()), f"removed machines still emitting: {late}"
    fleet.assert_invariants(records)

    patched, settled = fleet.change({"machines": 12})
    records = fleet.records_after(settled, cycles=10)
    added = fleet.ids()[MACHINES:]
    for machine in added:
        first = records[machine][0]
        # A new machine starts at the simulation's current cycle, on the shared schedule.
        assert patched - 2 * fleet.interval_ms <= first.due_ms <= settled + 2 * fleet.interval_ms, (
            machine,
            first,
            patched,
            settled,
        )
        fleet.first_seq[machine] = first.seq
    # The machines removed and added back continue from their checkpoints: their seq runs on
    # from 0 without a gap (sequence check) and they are on schedule again.
    fleet.assert_invariants(records)


def test_replicas_changed(fleet: Fleet) -> None:
    _, settled = fleet.change({"replicas": 2})
    records = fleet.records_after(settled, cycles=10)
    fleet.assert_invariants(records)


def test_statefulset_deleted_mid_handover(fleet: Fleet) -> None:
    current = int(fleet.api.simulation(NAME)["spec"]["replicas"])
    patched = time.time()
    fleet.api.patch_spec(NAME, {"replicas": current + 1})
    mid_handover(fleet.pods, current, patched)
    deleted = time.time()
    fleet.api.kubectl("delete", "statefulset", NAME, "--wait=false")
    settled = fleet.settle()
    assert old_pods_gone_after(fleet.pods.snapshot(), deleted, current), (
        "the handover was over before the delete"
    )
    records = fleet.records_after(settled, cycles=10)
    fleet.assert_invariants(records)


def test_operator_killed_mid_handover(fleet: Fleet) -> None:
    current = int(fleet.api.simulation(NAME)["spec"]["replicas"])
    patched = time.time()
    fleet.api.patch_spec(NAME, {"replicas": current - 1})
    mid_handover(fleet.pods, current, patched)
    process = fleet.operator.process
    assert process is not None
    killed = time.time()
    process.kill()
    process.wait(timeout=10)
    fleet.operator.start()
    settled = fleet.settle()
    assert old_pods_gone_after(fleet.pods.snapshot(), killed, current), (
        "the handover was over before the kill"
    )
    records = fleet.records_after(settled, cycles=10)
    fleet.assert_invariants(records)


# --- identity: the same name again ------------------------------------------------------------


def test_same_name_in_a_second_namespace_on_the_same_topic_starts_at_cycle_0(
    fleet: Fleet, k8s_cluster: KubeCluster
) -> None:
    other = create_namespace(k8s_cluster, "rollout-twin")
    twin_pods = Watch(k8s_cluster, other.namespace, "pods", f"app.kubernetes.io/instance={NAME}")
    twin_ids = fleet.ids(MACHINES)

    def old_enough() -> dict[str, list[Reading]] | None:  # to tell the two streams apart
        records = fleet.recorder.snapshot()
        return records if all(records[m][-1].seq >= 100 for m in twin_ids) else None

    try:
        before = wait_until(
            old_enough, timeout=120, message="the first simulation to pass cycle 100"
        )
        other.apply(reference_config_map(REFERENCE, other.namespace, 0.0))
        other.apply(simulation(fleet.bootstrap, fleet.topic))

        def twin_ready() -> list[str] | None:
            problems = restart_problems(twin_pods.snapshot())
            return problems or (["ready"] if settled_ready(other, NAME) else None)

        found = wait_until(twin_ready, timeout=SETTLE_TIMEOUT, message="the twin Ready")
        assert found == ["ready"], pprint.pformat(found) + fleet.pod_logs(other.namespace)

        def twin_records() -> dict[str, list[Reading]] | None:
            _, young = split_by_age(fleet.recorder.snapshot(), before)
            return young if all(len(young.get(m, ())) >= 10 for m in twin_ids) else None

        wait_until(twin_records, timeout=120, message="10 records of each machine of the twin")
        old, young = split_by_age(fleet.records_after(now_ms(), cycles=2), before)
        twin_problems = {
            "restarts": restart_problems(twin_pods.snapshot()),
            "seq": sequence_problems(young, dict.fromkeys(twin_ids, 0)),
            "not ready": [] if settled_ready(other, NAME) else [other.simulation(NAME)],
        }
        assert not any(twin_problems.values()), pprint.pformat(twin_problems, width=110)
        fleet.assert_invariants(old)  # the first simulation goes on undisturbed
    finally:
        twin_pods.stop()
        k8s_cluster.kubectl("delete", "namespace", other.namespace, "--wait=false", check=False)


def test_a_re_created_simulation_starts_at_cycle_0(fleet: Fleet, k8s_cluster: KubeCluster) -> None:
    fleet.api.kubectl("delete", "sensim", NAME, "--wait=true")
    selector = f"app.kubernetes.io/instance={NAME}"

    def no_producer() -> bool:  # of this name in any namespace (also the twin's)
        listing = k8s_cluster.kubectl("get", "pods", "-A", "-l", selector, "-o", "json").stdout
        return not json.loads(listing)["items"]

    wait_until(
        no_producer, timeout=SETTLE_TIMEOUT, message="every producer pod of the name to be gone"
    )
    before = quiet_snapshot(fleet.recorder)
    recreated = time.time()
    fleet.api.apply(simulation(fleet.bootstrap, fleet.topic))
    fleet.machines, fleet.interval_ms = MACHINES, INTERVAL_MS
    settled = fleet.settle()
    records = fleet.records_after(settled, cycles=5)
    fresh = {m: records[m][len(before.get(m, ())) :] for m in fleet.ids()}
    later = [c for c in fleet.pods.snapshot() if c.arrived > recreated]
    problems = {
        "restarts": restart_problems(later),
        "seq": sequence_problems(fresh, dict.fromkeys(fleet.ids(), 0)),
        "schedule": schedule_problems(fresh),
    }
    assert not any(problems.values()), pprint.pformat(problems, width=110)
