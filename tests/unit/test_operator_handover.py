"""A change of what shapes the machines' streams stops every old pod before the new template
starts: the decision (sensorsim_operator.handover), checked against each row of the table in
docs/operator.md, and the reconcile that carries it out, against an in-memory API."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import parse_spec
from sensorsim_operator.children.manifests import build_stateful_set
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.crd import crd, spec_schema
from sensorsim_operator.handover import Handover, StoppingPod, pending_handover, stream_hash_of
from sensorsim_operator.kube import object_path
from sensorsim_operator.simulation_reconciler import Reconciler
from tests.unit.test_operator_children import SIMULATION
from tests.unit.test_operator_reconciling import PATH, STS_PATH, FakeKube, reconciler, simulation

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operator.md"
DEFAULTS = BuildDefaults(producer_image="sensorsim:test")
BASE: dict[str, Any] = {
    "replicas": 3,
    "machines": 15,
    "kafka": {
        "bootstrapServers": "k:9092",
        "securityProtocol": "SASL_SSL",
        "sasl": {"credentialsSecret": {"name": "creds"}},
        "tls": {"caSecret": {"name": "ca"}},
    },
    "referenceData": {"configMapName": "csv"},
}


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def desired(change: dict[str, Any] | None = None, digest: str = "d1") -> dict[str, Any]:
    spec = parse_spec(merged(BASE, change or {}))
    stateful_set, _ = build_stateful_set(SIMULATION, spec, DEFAULTS, digest)
    return stateful_set


def as_found(
    stateful_set: dict[str, Any],
    *,
    replicas: int | None = None,
    status_replicas: int | None = None,
    generation: int = 3,
    observed: int = 3,
    version: str = "7",
) -> dict[str, Any]:
    """A built StatefulSet as the API server returns it, with its controller's status."""
    found = copy.deepcopy(stateful_set)
    spec_replicas = found["spec"]["replicas"] if replicas is None else replicas
    found["spec"]["replicas"] = spec_replicas
    found["metadata"] |= {"generation": generation, "resourceVersion": version}
    found["status"] = {
        "replicas": spec_replicas if status_replicas is None else status_replicas,
        "observedGeneration": observed,
    }
    return found


def pods_of(
    stateful_set: dict[str, Any], count: int | None = None, *, terminating: bool = False
) -> list[dict[str, Any]]:
    """The pods the StatefulSet controller makes from its template."""
    template = stateful_set["spec"]["template"]
    pods = []
    for ordinal in range(stateful_set["spec"]["replicas"] if count is None else count):
        meta: dict[str, Any] = {
            "name": f"line-a-{ordinal}",
            "namespace": "plant",
            "labels": dict(template["metadata"]["labels"]),
            "annotations": dict(template["metadata"]["annotations"]),
        }
        if terminating:
            meta["deletionTimestamp"] = "2026-11-29T08:00:00Z"
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": {
                    "nodeName": f"node-{ordinal}",
                    "terminationGracePeriodSeconds": template["spec"][
                        "terminationGracePeriodSeconds"
                    ],
                },
                "status": {"phase": "Running"},
            }
        )
    return pods


# --- the table in docs/operator.md, row by row ---------------------------------------------------

CALM = {"target": {"all": True}, "startCycle": 100, "noFailures": {"cycles": 50}}
# A change of each spec field the table names (a prefix.* row takes each of its examples).
CHANGES: dict[str, list[dict[str, Any]]] = {
    "replicas": [{"replicas": 5}],
    "machines": [{"machines": 12}, {"machines": 18}],
    "sensors": [{"sensors": 8}],
    "intervalMs": [{"intervalMs": 250}],
    "model": [{"model": "original"}],
    "persistence": [{"persistence": 0.5}],
    "regimes": [{"regimes": 1}],
    "failures.probability": [{"failures": {"probability": 0.01}}],
    "failures.share": [{"failures": {"share": 0.02}}],
    "failures.minCycles": [{"failures": {"minCycles": 20}}],
    "failures.maxCycles": [{"failures": {"maxCycles": 90}}],
    "failures.rampCycles": [{"failures": {"rampCycles": 0}}],
    "referenceData.configMapName": [{"referenceData": {"configMapName": "csv-2"}}],
    "referenceData.key": [{"referenceData": {"key": "other.csv"}}],
    "referenceData.sensorColumns": [{"referenceData": {"sensorColumns": "a,b"}}],
    "referenceData.labelColumn": [{"referenceData": {"labelColumn": "is_anomaly"}}],
    "referenceData.normalLabels": [{"referenceData": {"normalLabels": "0"}}],
    "referenceData.timeColumn": [{"referenceData": {"timeColumn": "timestamp"}}],
    "referenceData.groupColumn": [{"referenceData": {"groupColumn": "unit"}}],
    "scenarios": [{"scenarios": [CALM]}],
    "kafka.topic": [{"kafka": {"topic": "readings"}}],
    "seed": [{"seed": 7}],
    "kafka.bootstrapServers": [{"kafka": {"bootstrapServers": "other:9092"}}],
    "kafka.securityProtocol": [{"kafka": {"securityProtocol": "SASL_PLAINTEXT", "tls": None}}],
    "kafka.sasl.mechanism": [{"kafka": {"sasl": {"mechanism": "PLAIN"}}}],
    "kafka.sasl.credentialsSecret.*": [
        {"kafka": {"sasl": {"credentialsSecret": {"name": "other"}}}},
        {"kafka": {"sasl": {"credentialsSecret": {"usernameKey": "user"}}}},
        {"kafka": {"sasl": {"credentialsSecret": {"passwordKey": "pass"}}}},
        {"kafka": {"sasl": {"credentialsSecret": {"jaasConfigKey": "sasl.jaas.config"}}}},
    ],
    "kafka.sasl.username": [{"kafka": {"sasl": {"username": "line-a-producer"}}}],
    "kafka.tls.clientCertificateSecret.*": [
        {"kafka": {"tls": {"clientCertificateSecret": {"name": "user"}}}},
        {"kafka": {"tls": {"clientCertificateSecret": {"name": "user", "keyKey": "tls.key"}}}},
    ],
    "kafka.producer.*": [
        {"kafka": {"producer": {"lingerMs": 50}}},
        {"kafka": {"producer": {"batchSize": 1024}}},
        {"kafka": {"producer": {"maxPendingRecords": 10}}},
    ],
    "kafka.tls.caSecret.*": [
        {"kafka": {"tls": {"caSecret": {"name": "other-ca"}}}},
        {"kafka": {"tls": {"caSecret": {"key": "bundle.pem"}}}},
    ],
    "kafka.compression": [{"kafka": {"compression": "zstd"}}],
    "kafka.deliveryGuarantee": [{"kafka": {"deliveryGuarantee": "exactly-once"}}],
    "kafka.createTopic": [{"kafka": {"createTopic": True}}],
    "kafka.partitions": [{"kafka": {"partitions": 12}}],
    "messageFormat": [{"messageFormat": "extended"}],
    "logLevel": [{"logLevel": "DEBUG"}],
    "image": [{"image": "sensorsim:other"}],
    "imagePullPolicy": [{"imagePullPolicy": "Always"}],
    "resources.*": [
        {"resources": {"requests": {"cpu": "200m"}}},
        {"resources": {"limits": {"memory": "1Gi"}}},
    ],
    "podTemplate.*": [
        {"podTemplate": {"labels": {"team": "b"}}},
        {"podTemplate": {"annotations": {"note": "x"}}},
        {"podTemplate": {"nodeSelector": {"disk": "ssd"}}},
        {"podTemplate": {"tolerations": [{"key": "k", "operator": "Exists"}]}},
        {"podTemplate": {"serviceAccountName": "runner"}},
    ],
    "suspend": [{"suspend": True}],
}
CONTENT_ROW = "the reference-data ConfigMap's *content*"
NOT_INPUTS = ("the simulation's own labels or annotations", "the *content* of a referenced Secret")


def docs_rows() -> dict[str, str]:
    """First cell -> effect keyword of the table under "What rolls the pods"."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### What rolls the pods, and what does not", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (found := re.match(r"\*\*([a-z ]+)\*\*", cells[2])):
            rows[cells[0]] = found.group(1)
    return rows


def spec_field(cell: str) -> str | None:
    """The spec field a row is about (its first backticked name), or None for other rows."""
    found = re.match(r"`([A-Za-z.*]+)`", cell)
    return found.group(1) if found else None


def spec_leaves(node: dict[str, Any], prefix: str = "") -> list[str]:
    """Every leaf field of the CRD's spec schema (maps and lists count as leaves)."""
    properties = node.get("properties")
    if not properties:
        return [prefix]
    return [
        leaf
        for key, child in properties.items()
        for leaf in spec_leaves(child, f"{prefix}.{key}" if prefix else key)
    ]


def covers(row_field: str, leaf: str) -> bool:
    if row_field.endswith(".*"):
        return leaf.startswith(row_field[:-1])
    return leaf == row_field


def test_the_table_has_a_row_for_every_spec_field() -> None:
    fields = [f for f in map(spec_field, docs_rows()) if f is not None]
    missing = [
        leaf for leaf in spec_leaves(spec_schema()) if not any(covers(f, leaf) for f in fields)
    ]
    assert missing == []
    assert set(fields) == set(CHANGES)


def decide(change: dict[str, Any]) -> Handover | None:
    """The decision for ``change`` over a running fleet of the base spec."""
    before = as_found(desired())
    return pending_handover(before, desired(change), pods_of(before))


@pytest.mark.parametrize(("row", "effect"), sorted(docs_rows().items()))
def test_each_row_of_the_table_is_what_the_operator_does(row: str, effect: str) -> None:
    field = spec_field(row)
    if effect == "handover":
        changes = CHANGES[field] if field else []
        if row.startswith(CONTENT_ROW):
            running = as_found(desired(digest="d1"))
            handover = pending_handover(running, desired(digest="d2"), pods_of(running))
            assert handover is not None
            assert handover.scale_down
        for change in changes:
            handover = decide(change)
            assert handover is not None, change
            assert handover.scale_down
            assert [pod.name for pod in handover.stopping] == ["line-a-0", "line-a-1", "line-a-2"]
    elif effect == "rolling update":
        assert field is not None
        for change in CHANGES[field]:
            assert decide(change) is None, change
            template = desired(change)["spec"]["template"]
            assert template != desired()["spec"]["template"], f"{change} rolls nothing"
    elif effect == "refused":
        assert field == "seed"
        rules = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        seed_rules = [
            r for r in rules["x-kubernetes-validations"] if "oldSelf.seed" in str(r["rule"])
        ]
        assert len(seed_rules) == 1
        assert "create a new SensorSimulation" in seed_rules[0]["message"]
    elif effect == "scaled":
        assert field == "suspend"
        assert decide({"suspend": True}) is None
        suspended = desired({"suspend": True})
        assert suspended["spec"]["replicas"] == 0
        assert suspended["spec"]["template"] == desired()["spec"]["template"]
    else:
        assert effect == "nothing"
        assert row.startswith(NOT_INPUTS)


# --- the decision, case by case ------------------------------------------------------------------


def test_a_new_simulation_is_created_at_once() -> None:
    assert pending_handover(None, desired(), []) is None


def test_a_stream_change_scales_the_running_pods_to_zero_naming_them() -> None:
    old = as_found(desired())
    handover = pending_handover(old, desired({"machines": 12}), pods_of(old))
    assert handover is not None
    assert handover.scale_down
    assert not handover.stateful_set_missing
    assert handover.stopping[0] == StoppingPod(
        name="line-a-0", node="node-0", terminating=False, grace_seconds=32
    )
    assert "waiting for 3 pods to stop" in handover.message
    assert "line-a-2 (on node node-2)" in handover.message


@pytest.mark.parametrize(
    ("status_replicas", "observed", "pods"),
    [
        (1, 4, 1),  # a pod still stopping
        (0, 4, 1),  # the status says none, but a terminating pod is still there
        (2, 3, 0),  # the controller has not seen the scale-down yet
    ],
)
def test_the_new_template_waits_while_any_old_pod_may_run(
    status_replicas: int, observed: int, pods: int
) -> None:
    old = as_found(
        desired(), replicas=0, status_replicas=status_replicas, generation=4, observed=observed
    )
    handover = pending_handover(
        old, desired({"replicas": 5}), pods_of(as_found(desired()), pods, terminating=True)
    )
    assert handover is not None
    assert not handover.scale_down  # already asked for
    assert len(handover.stopping) == pods


def test_the_new_template_goes_on_once_every_old_pod_is_gone() -> None:
    old = as_found(desired(), replicas=0, status_replicas=0, generation=4, observed=4)
    assert pending_handover(old, desired({"replicas": 5}), []) is None


def test_a_missing_stateful_set_is_not_recreated_beside_old_pods() -> None:
    old_pods = pods_of(as_found(desired()), terminating=True)
    handover = pending_handover(None, desired({"machines": 12}), old_pods)
    assert handover is not None
    assert handover.stateful_set_missing
    assert not handover.scale_down
    assert "StatefulSet is missing" in handover.message


def test_a_missing_stateful_set_adopts_pods_of_the_desired_stream() -> None:
    assert pending_handover(None, desired(), pods_of(as_found(desired()))) is None


def test_pods_of_another_stream_under_the_new_template_still_force_a_handover() -> None:
    # The new template was applied (e.g. by an operator that rolled it) while old pods run.
    new = as_found(desired({"machines": 12}))
    mixed = pods_of(as_found(desired()), 2) + pods_of(new)[2:]
    handover = pending_handover(new, desired({"machines": 12}), mixed)
    assert handover is not None
    assert handover.scale_down
    assert [pod.name for pod in handover.stopping] == ["line-a-0", "line-a-1"]


def test_an_old_template_that_may_still_create_pods_is_scaled_down_first() -> None:
    old = as_found(desired(), status_replicas=0)  # created, no pod yet
    handover = pending_handover(old, desired({"machines": 12}), [])
    assert handover is not None
    assert handover.scale_down
    assert handover.stopping == ()
    assert "observe the scale-down" in handover.message


def test_pods_without_a_stream_hash_are_of_another_stream() -> None:
    old = as_found(desired())
    pods = pods_of(old)
    for pod in pods:
        del pod["metadata"]["annotations"][names.STREAM_HASH_ANNOTATION]
    assert stream_hash_of(pods[0]) == ""
    assert pending_handover(old, desired(), pods) is not None


def test_the_deadline_is_twice_the_old_pods_grace_period_plus_a_minute() -> None:
    old = as_found(desired({"machines": 60_000, "replicas": 1}))
    handover = pending_handover(old, desired({"machines": 60_001, "replicas": 1}), pods_of(old))
    assert handover is not None
    assert handover.deadline == timedelta(seconds=2 * (30 + 2 * 6) + 60)
    stuck = handover.stuck_message(timedelta(seconds=200))
    assert "line-a-0 (on node node-0)" in stuck
    assert "--force" in stuck


# --- the reconcile that carries it out -----------------------------------------------------------


def conditions(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in kube.objects[PATH]["status"]["conditions"]}


def env_value(kube: FakeKube, variable: str) -> str:
    env = kube.objects[STS_PATH]["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(next(e["value"] for e in env if e["name"] == variable))


def start_pods(kube: FakeKube) -> None:
    """The StatefulSet controller: the pods of the current template, and its status."""
    stateful_set = kube.objects[STS_PATH]
    stateful_set["metadata"]["generation"] = stateful_set["metadata"].get("generation", 0) + 1
    for pod in pods_of(stateful_set):
        kube.objects[object_path("v1", "Pod", "plant", pod["metadata"]["name"])] = pod
    replicas = stateful_set["spec"]["replicas"]
    stateful_set["status"] = {
        "replicas": replicas,
        "readyReplicas": replicas,
        "observedGeneration": stateful_set["metadata"]["generation"],
    }


def stop_pods(kube: FakeKube, *ordinals: int) -> None:
    for ordinal in ordinals:
        del kube.objects[object_path("v1", "Pod", "plant", f"line-a-{ordinal}")]
    stateful_set = kube.objects[STS_PATH]
    left = sum(1 for o in kube.objects.values() if o["kind"] == "Pod")
    stateful_set["status"] = {
        "replicas": left,
        "observedGeneration": stateful_set["metadata"]["generation"] + 1,
    }


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.objects[PATH] = simulation()
    return fake


@pytest.fixture
def running(kube: FakeKube) -> FakeKube:
    """A simulation of 2 shards whose 2 pods run."""
    reconciler(kube).reconcile("plant", "line-a")
    start_pods(kube)
    return kube


def edit(kube: FakeKube, generation: int, **spec: Any) -> None:
    kube.objects[PATH] = {
        **simulation(generation=generation, **spec),
        "status": kube.objects[PATH].get("status"),
    }


def test_a_machines_change_stops_the_old_pods_before_applying_the_new_template(
    running: FakeKube,
) -> None:
    kube = running
    before = copy.deepcopy(kube.objects[STS_PATH]["spec"]["template"])
    edit(kube, 2, machines=4)  # same replicas: the ranges move all the same

    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == [(STS_PATH, 0)]
    assert kube.objects[STS_PATH]["spec"]["template"] == before  # old template kept
    status = kube.objects[PATH]["status"]
    assert status["observedGeneration"] == 1
    assert status["handoverSince"] == "2026-11-29T00:00:00Z"
    progressing = conditions(kube)["Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("True", "Handover")
    assert "waiting for 2 pods" in progressing["message"]

    # One pod gone, one still stopping: the pod's event re-runs the reconcile, which waits.
    stop_pods(kube, 1)
    reconciler(kube).reconcile(
        "plant", "line-a", child=kube.get(object_path("v1", "Pod", "plant", "line-a-0"))
    )
    assert env_value(kube, "NUM_MACHINES") == "5"
    assert kube.scales == [(STS_PATH, 0)]  # asked once
    assert "waiting for 1 pods" in conditions(kube)["Progressing"]["message"]

    # The last pod gone and the StatefulSet's status says so: its event applies the new one.
    stop_pods(kube, 0)
    reconciler(kube).reconcile("plant", "line-a", child=kube.get(STS_PATH))
    assert env_value(kube, "NUM_MACHINES") == "4"
    assert kube.objects[STS_PATH]["spec"]["replicas"] == 2
    status = kube.objects[PATH]["status"]
    assert status["observedGeneration"] == 2
    assert "handoverSince" not in status or status["handoverSince"] is None
    assert conditions(kube)["Progressing"]["reason"] != "Handover"


def test_a_stale_event_body_never_scales_the_new_stateful_set(running: FakeKube) -> None:
    kube = running
    stale_body = kube.get(STS_PATH)  # the old StatefulSet, as an event that waited shows it
    edit(kube, 2, machines=4)
    reconciler(kube).reconcile("plant", "line-a")
    stop_pods(kube, 0, 1)
    reconciler(kube).reconcile("plant", "line-a")
    start_pods(kube)  # the new pods run
    assert kube.scales == [(STS_PATH, 0)]

    reconciler(kube).reconcile("plant", "line-a", child=stale_body)
    assert kube.scales == [(STS_PATH, 0)]
    assert kube.objects[STS_PATH]["spec"]["replicas"] == 2


def test_the_scale_down_is_refused_when_the_stateful_set_changed_meanwhile(
    running: FakeKube,
) -> None:
    kube = running
    edit(kube, 2, machines=4)
    operator = reconciler(kube)
    real_get = kube.get

    def get_then_someone_edits(path: str) -> dict[str, Any] | None:
        found = real_get(path)
        if path == STS_PATH:  # another writer changes it between the read and the scale
            kube.objects[STS_PATH]["metadata"]["resourceVersion"] = "changed"
        return found

    kube.get = get_then_someone_edits  # type: ignore[method-assign]
    operator.reconcile("plant", "line-a")  # no error: the change's own event decides again
    assert kube.scales == []
    assert kube.objects[STS_PATH]["spec"]["replicas"] == 2


def test_a_deleted_stateful_set_waits_for_the_old_pods(running: FakeKube) -> None:
    kube = running
    edit(kube, 2, machines=4)
    reconciler(kube).reconcile("plant", "line-a")
    deleted = kube.objects.pop(STS_PATH)
    reconciler(kube).reconcile("plant", "line-a", child=deleted, child_deleted=True)
    assert STS_PATH not in kube.objects
    assert "StatefulSet is missing" in conditions(kube)["Progressing"]["message"]

    for ordinal in (0, 1):
        del kube.objects[object_path("v1", "Pod", "plant", f"line-a-{ordinal}")]
    reconciler(kube).reconcile("plant", "line-a")
    assert env_value(kube, "NUM_MACHINES") == "4"


def test_a_handover_past_its_deadline_is_degraded_naming_pods_and_nodes(
    running: FakeKube,
) -> None:
    kube = running
    edit(kube, 2, replicas=1)
    reconciler(kube).reconcile("plant", "line-a")
    assert conditions(kube)["Degraded"]["status"] == "False"

    later = Reconciler(
        kube, DEFAULTS, clock=lambda: datetime(2026, 11, 29, tzinfo=UTC) + timedelta(minutes=3)
    )
    later.reconcile("plant", "line-a")
    degraded = conditions(kube)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "HandoverStuck")
    assert "line-a-0 (on node node-0)" in degraded["message"]
    assert "line-a-1 (on node node-1)" in degraded["message"]


def test_a_change_that_keeps_the_stream_rolls_as_before(running: FakeKube) -> None:
    kube = running
    edit(kube, 2, logLevel="DEBUG")
    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == []
    assert kube.objects[PATH]["status"]["observedGeneration"] == 2
    assert env_value(kube, "LOG_LEVEL") == "DEBUG"


def test_a_suspended_simulation_changes_its_stream_at_once(kube: FakeKube) -> None:
    reconciler(kube).reconcile("plant", "line-a")
    edit(kube, 2, suspend=True)
    reconciler(kube).reconcile("plant", "line-a")
    start_pods(kube)  # the controller sees replicas 0: no pod
    edit(kube, 3, replicas=3, suspend=True)
    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == []
    assert env_value(kube, "SHARD_COUNT") == "3"


REFERENCE = {"referenceData": {"configMapName": "csv"}}
CSV_PATH = object_path("v1", "ConfigMap", "plant", "csv")


def put_csv(kube: FakeKube, text: str) -> None:
    kube.objects[CSV_PATH] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "csv", "namespace": "plant"},
        "data": {"data_sensors.csv": text},
    }


def stream_hash(kube: FakeKube) -> str:
    return stream_hash_of(kube.objects[STS_PATH]["spec"]["template"])


def test_new_reference_data_content_is_handed_over_at_the_next_reconcile(kube: FakeKube) -> None:
    put_csv(kube, "Sensor 1,Label\n1,0\n")
    edit(kube, 1, **REFERENCE)
    reconciler(kube).reconcile("plant", "line-a")
    start_pods(kube)
    first = stream_hash(kube)

    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == []  # same content: nothing

    put_csv(kube, "Sensor 1,Label\n2,0\n")
    reconciler(kube).reconcile("plant", "line-a")  # the resync
    assert kube.scales == [(STS_PATH, 0)]
    assert stream_hash(kube) == first  # the old template until the old pods are gone


@pytest.mark.parametrize("unreadable", ["missing", "forbidden"])
def test_reference_data_the_operator_cannot_read_counts_as_unchanged(
    kube: FakeKube, unreadable: str
) -> None:
    put_csv(kube, "Sensor 1,Label\n1,0\n")
    edit(kube, 1, **REFERENCE)
    reconciler(kube).reconcile("plant", "line-a")
    start_pods(kube)
    first = stream_hash(kube)
    if unreadable == "missing":
        del kube.objects[CSV_PATH]
    else:
        kube.forbidden.add(CSV_PATH)
    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == []
    assert stream_hash(kube) == first


def test_a_pod_event_in_step_does_not_read_the_reference_data(running: FakeKube) -> None:
    kube = running
    kube.forbidden.add(CSV_PATH)  # would only matter if it were read
    reads: list[str] = []
    real_get = kube.get

    def counting_get(path: str) -> dict[str, Any] | None:
        reads.append(path)
        return real_get(path)

    kube.get = counting_get  # type: ignore[method-assign]
    pod = kube.get(object_path("v1", "Pod", "plant", "line-a-0"))
    reads.clear()
    reconciler(kube).reconcile("plant", "line-a", child=pod)
    assert CSV_PATH not in reads
