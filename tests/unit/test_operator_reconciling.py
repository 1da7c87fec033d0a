"""The reconcile loop against an in-memory API (the real one is in tests/k8s)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from sensorsim_operator import names
from sensorsim_operator.__main__ import kopf_arguments
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.crd import main as crd_main
from sensorsim_operator.kube import KubeError, manifest_path, object_path
from sensorsim_operator.settings import OperatorSettings
from sensorsim_operator.simulation_reconciler import ReconcileError, Reconciler

pytestmark = pytest.mark.unit

PATH = names.simulation_path("plant", "line-a")
STS_PATH = object_path("apps/v1", "StatefulSet", "plant", "line-a")


def _merged(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(current)
    for key, value in desired.items():
        if key == "resourceVersion":
            continue
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


class FakeKube:
    """Objects by path; apply merges and bumps resourceVersion only when the object changes (as
    the API server does for a no-op server-side apply). What only the real API server can
    show (field ownership, defaults, admission) is tested in tests/k8s/test_operator_e2e.py."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.applies: list[str] = []
        self.status_patches = 0
        self.scales: list[tuple[str, int]] = []
        self.events: list[dict[str, Any]] = []
        self.fail_apply_of: str | None = None
        self.forbidden: set[str] = set()  # paths whose GET is refused (403)
        self._version = 0

    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    def get(self, path: str) -> dict[str, Any] | None:
        if path in self.forbidden:
            raise KubeError(403, f"{path}: forbidden")
        found = self.objects.get(path)
        return copy.deepcopy(found) if found is not None else None

    def post_event(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Merges the manifest into the object, as server-side apply does for the fields of
        another manager: fields the manifest does not name are kept (lists are replaced)."""
        path = manifest_path(manifest)
        if manifest["kind"] == self.fail_apply_of:
            raise KubeError(422, f"{manifest['kind']} is invalid")
        self.applies.append(path)
        current = self.objects.get(path)
        merged = _merged(current or {}, copy.deepcopy(dict(manifest)))
        if merged == current:
            return copy.deepcopy(current)
        merged["metadata"]["resourceVersion"] = self._bump()
        self.objects[path] = merged
        return copy.deepcopy(merged)

    def patch_status(self, path: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self.status_patches += 1
        self.objects[path]["status"] = copy.deepcopy(dict(status))
        return copy.deepcopy(self.objects[path])

    def scale(self, path: str, replicas: int, *, resource_version: str) -> None:
        """Scales only the object of ``resource_version`` (409 otherwise, as the API server)."""
        current = self.objects[path]
        if current["metadata"].get("resourceVersion") != resource_version:
            raise KubeError(409, f"{path}: the object has been modified")
        self.scales.append((path, replicas))
        current["spec"]["replicas"] = replicas
        current["metadata"]["resourceVersion"] = self._bump()

    def list_simulations(self, namespaces: Sequence[str]) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.objects.values() if o["kind"] == "SensorSimulation"]

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(","))
        return [
            copy.deepcopy(o)
            for o in self.objects.values()
            if o["kind"] == "Pod"
            and o["metadata"]["namespace"] == namespace
            and wanted.items() <= o["metadata"].get("labels", {}).items()
        ]


def simulation(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sensorsim.io/v1alpha1",
        "kind": "SensorSimulation",
        "metadata": {
            "name": "line-a",
            "namespace": "plant",
            "uid": "uid-1",
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": {"replicas": 2, "machines": 5, "kafka": {"bootstrapServers": "k:9092"}, **spec},
    }


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.objects[PATH] = simulation()
    return fake


def reconciler(kube: FakeKube) -> Reconciler:
    return Reconciler(
        kube,
        BuildDefaults(producer_image="sensorsim:test"),
        clock=lambda: datetime(2026, 11, 29, tzinfo=UTC),
    )


def test_first_reconcile_creates_children_and_status(kube: FakeKube) -> None:
    outcome = reconciler(kube).reconcile("plant", "line-a")
    assert outcome.found
    assert outcome.status_written
    kinds = sorted(o["kind"] for o in kube.objects.values())
    assert kinds == ["ConfigMap", "SensorSimulation", "Service", "StatefulSet"]
    status = kube.objects[PATH]["status"]
    assert status["observedGeneration"] == 1
    assert [s["start"] for s in status["shards"]] == [0, 3]
    assert (
        status["configHash"]
        == (
            kube.objects[STS_PATH]["spec"]["template"]["metadata"]["annotations"][
                names.CONFIG_HASH_ANNOTATION
            ]
        )
    )


def test_reconciling_again_changes_nothing(kube: FakeKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    versions = {p: o["metadata"]["resourceVersion"] for p, o in kube.objects.items()}
    patches = kube.status_patches
    again = reconciler(kube).reconcile("plant", "line-a")  # e.g. after an operator restart
    assert not again.status_written
    assert kube.status_patches == patches
    assert {p: o["metadata"]["resourceVersion"] for p, o in kube.objects.items()} == versions


def test_a_child_event_of_a_child_that_is_right_applies_nothing(kube: FakeKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    applies = len(kube.applies)
    for path in list(kube.objects):
        if path != PATH:
            operator.reconcile("plant", "line-a", child=kube.get(path))
    assert len(kube.applies) == applies


def test_a_child_event_restores_a_deleted_or_edited_child(kube: FakeKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    service_path = object_path("v1", "Service", "plant", "line-a")
    gone = kube.objects.pop(service_path)
    operator.reconcile("plant", "line-a", child=gone, child_deleted=True)
    assert kube.applies[-1] == service_path
    assert service_path in kube.objects
    kube.objects[STS_PATH]["spec"]["replicas"] = 7  # someone scaled the StatefulSet by hand
    operator.reconcile("plant", "line-a", child=kube.get(STS_PATH))
    assert kube.applies[-1] == STS_PATH
    assert kube.objects[STS_PATH]["spec"]["replicas"] == 2


def test_a_child_event_during_a_spec_change_reconciles_in_full(kube: FakeKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    kube.objects[PATH]["spec"]["logLevel"] = "DEBUG"
    kube.objects[PATH]["metadata"]["generation"] = 2
    applies = len(kube.applies)
    operator.reconcile("plant", "line-a", child=kube.get(STS_PATH))
    assert len(kube.applies) == applies + 3
    assert kube.objects[PATH]["status"]["observedGeneration"] == 2


def test_a_new_generation_is_observed_after_apply(kube: FakeKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    before = kube.objects[PATH]["status"]["configHash"]
    kube.objects[PATH] |= {"spec": simulation(logLevel="DEBUG")["spec"]}
    kube.objects[PATH]["metadata"]["generation"] = 2
    operator.reconcile("plant", "line-a")
    status = kube.objects[PATH]["status"]
    assert status["observedGeneration"] == 2
    assert status["configHash"] != before


def test_apply_failure_is_reported_in_status_and_raised(kube: FakeKube) -> None:
    kube.fail_apply_of = "StatefulSet"
    with pytest.raises(ReconcileError, match="StatefulSet is invalid") as raised:
        reconciler(kube).reconcile("plant", "line-a")
    assert raised.value.retry
    status = kube.objects[PATH]["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "ReconcileFailed"
    assert status["observedGeneration"] == 0  # this generation was never applied


def test_events_are_posted_on_condition_transitions_only(kube: FakeKube) -> None:
    kube.fail_apply_of = "StatefulSet"
    with pytest.raises(ReconcileError):
        reconciler(kube).reconcile("plant", "line-a")
    assert [(e["reason"], e["type"]) for e in kube.events] == [("ReconcileFailed", "Warning")]
    with pytest.raises(ReconcileError):
        reconciler(kube).reconcile("plant", "line-a")  # the same failure again: no news
    assert len(kube.events) == 1
    kube.fail_apply_of = None
    reconciler(kube).reconcile("plant", "line-a")
    degraded = [e for e in kube.events[1:] if e["message"].startswith("Degraded is False")]
    assert degraded, kube.events  # the recovery is a transition of its own
    posted = len(kube.events)
    reconciler(kube).reconcile("plant", "line-a")
    assert len(kube.events) == posted
    involved = {e["involvedObject"]["name"] for e in kube.events}
    assert involved == {"line-a"}


def test_deleted_simulation_is_left_to_the_garbage_collector(kube: FakeKube) -> None:
    del kube.objects[PATH]
    assert not reconciler(kube).reconcile("plant", "line-a").found
    assert kube.applies == []


def test_terminating_simulation_is_not_reconciled(kube: FakeKube) -> None:
    kube.objects[PATH]["metadata"]["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    assert not reconciler(kube).reconcile("plant", "line-a").found
    assert kube.applies == []


def test_unparseable_spec_is_a_permanent_error(kube: FakeKube) -> None:
    kube.objects[PATH]["spec"]["replicas"] = 99  # > machines: the CRD would have refused it
    with pytest.raises(ReconcileError) as raised:
        reconciler(kube).reconcile("plant", "line-a")
    assert not raised.value.retry


def test_unparseable_spec_is_reported_in_status(kube: FakeKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    before = kube.objects[PATH]["status"]
    applies = len(kube.applies)
    kube.objects[PATH]["spec"]["kafka"]["bootstrapServers"] = "no-port"  # an older CRD allowed it
    kube.objects[PATH]["metadata"]["generation"] = 2
    with pytest.raises(ReconcileError, match=r"spec\.kafka\.bootstrapServers"):
        operator.reconcile("plant", "line-a")
    assert len(kube.applies) == applies
    status = kube.objects[PATH]["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == (
        "True",
        "InvalidSpec",
    )
    assert "spec.kafka.bootstrapServers" in conditions["Degraded"]["message"]
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False",
        "InvalidSpec",
    )
    assert status["observedGeneration"] == 1  # the children still reflect generation 1
    assert status["shards"] == before["shards"]
    assert status["configHash"] == before["configHash"]
    patches = kube.status_patches
    with pytest.raises(ReconcileError):
        operator.reconcile("plant", "line-a")  # e.g. the periodic resync
    assert kube.status_patches == patches  # unchanged: not written again


def test_simulations_are_listed(kube: FakeKube) -> None:
    assert reconciler(kube).simulations([]) == [("plant", "line-a")]


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [("", ["--all-namespaces"]), ("a, b", ["--namespace", "a", "--namespace", "b"])],
)
def test_entry_point_arguments(namespaces: str, expected: list[str]) -> None:
    args = kopf_arguments(OperatorSettings(watch_namespaces=namespaces))
    assert args[:4] == ["run", "--standalone", "--module", "sensorsim_operator.handlers"]
    assert args[-len(expected) :] == expected
    assert "--liveness" in args
    assert "http://0.0.0.0:8080/healthz" in args


def test_committed_crd_is_up_to_date() -> None:
    assert crd_main(["--check"]) == 0, "run `python -m sensorsim_operator.crd --write`"


CONFIG_MAP_PATH = object_path("v1", "ConfigMap", "plant", "line-a-settings")


def condition(kube: FakeKube, kind: str) -> dict[str, Any]:
    conditions = kube.objects[PATH]["status"]["conditions"]
    return next(c for c in conditions if c["type"] == kind)


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ({"managedFields": [{"manager": "kubectl-create"}]}, "not created by the operator"),
        (
            {
                "ownerReferences": [
                    {"kind": "Deployment", "name": "app", "uid": "u", "controller": True}
                ]
            },
            "controlled by Deployment app",
        ),
        (
            {
                "ownerReferences": [
                    {"kind": "SensorSimulation", "name": "line-a", "uid": "old", "controller": True}
                ]
            },
            "controlled by SensorSimulation line-a",
        ),
    ],
)
def test_someone_elses_object_with_a_child_name_is_never_adopted(
    kube: FakeKube, metadata: dict[str, Any], why: str
) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "line-a-settings", "namespace": "plant", **metadata},
        "data": {"NUM_MACHINES": "77"},
    }
    kube.objects[CONFIG_MAP_PATH] = copy.deepcopy(foreign)
    with pytest.raises(ReconcileError, match="ChildNameConflict") as raised:
        reconciler(kube).reconcile("plant", "line-a")
    assert raised.value.retry
    assert kube.applies == []  # nothing applied, not even the children that are free
    assert kube.objects[CONFIG_MAP_PATH] == foreign
    degraded = condition(kube, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ChildNameConflict")
    assert "ConfigMap plant/line-a-settings" in degraded["message"]
    assert why in degraded["message"]


def test_a_child_orphaned_from_this_operator_is_taken_back(kube: FakeKube) -> None:
    kube.objects[CONFIG_MAP_PATH] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "line-a-settings",
            "namespace": "plant",
            "managedFields": [{"manager": names.FIELD_MANAGER, "operation": "Apply"}],
        },
        "data": {},
    }
    reconciler(kube).reconcile("plant", "line-a")
    assert CONFIG_MAP_PATH in kube.applies
    assert condition(kube, "Degraded")["status"] == "False"


def crashing_pod(name: str, reason: str = "CrashLoopBackOff") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "plant", "labels": names.selector_labels("line-a")},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "producer",
                    "ready": False,
                    "state": {"waiting": {"reason": reason, "message": "back-off 10s"}},
                    "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}},
                }
            ],
        },
    }


def test_pods_that_cannot_run_make_the_simulation_degraded_naming_them(kube: FakeKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    kube.objects[object_path("v1", "Pod", "plant", "line-a-1")] = crashing_pod("line-a-1")
    kube.objects[object_path("v1", "Pod", "plant", "line-a-0")] = crashing_pod(
        "line-a-0", "ImagePullBackOff"
    )
    operator.reconcile("plant", "line-a", child=crashing_pod("line-a-1"))
    degraded = condition(kube, "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] in {"CrashLoopBackOff", "ImagePullBackOff"}
    assert "line-a-0: ImagePullBackOff (back-off 10s)" in degraded["message"]
    assert "line-a-1: CrashLoopBackOff (back-off 10s)" in degraded["message"]
    # a pod event applies nothing: the pod is none of the children
    assert kube.applies.count(STS_PATH) == 1
