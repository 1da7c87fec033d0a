"""Reconciles from the watches' snapshot (observed.py): no list call, no read of a child the
watches hold, only the children that differ applied."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sensorsim_operator import names
from sensorsim_operator.kube import object_path
from sensorsim_operator.observed import Observed, child_key, pod_key, trimmed
from tests.unit.test_operator_reconciling import (
    PATH,
    STS_PATH,
    FakeKube,
    reconciler,
    simulation,
)

pytestmark = pytest.mark.unit

SERVICE_PATH = object_path("v1", "Service", "plant", "line-a")


class CountingKube(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.pod_lists = 0

    def get(self, path: str) -> dict[str, Any] | None:
        self.gets.append(path)
        return super().get(path)

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.pod_lists += 1
        return super().list_pods(namespace, label_selector)


@pytest.fixture
def kube() -> CountingKube:
    fake = CountingKube()
    fake.objects[PATH] = simulation()
    return fake


def snapshot(kube: FakeKube, without: str | None = None) -> Observed:
    children = [
        copy.deepcopy(o)
        for p, o in kube.objects.items()
        if o["kind"] in {"ConfigMap", "Service", "StatefulSet"} and p != without
    ]
    pods = [copy.deepcopy(o) for o in kube.objects.values() if o["kind"] == "Pod"]
    return Observed.of(children, pods)


def pod(name: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "plant",
            "labels": {names.INSTANCE_LABEL: "line-a"},
            "managedFields": [{"manager": "kubelet"}],
        },
        "status": {"phase": phase},
    }


def test_a_reconcile_in_step_reads_only_the_simulation_and_applies_nothing(
    kube: CountingKube,
) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    kube.gets.clear()
    applies, lists = len(kube.applies), kube.pod_lists
    outcome = operator.reconcile("plant", "line-a", observed=snapshot(kube))
    assert kube.gets == [PATH]
    assert kube.pod_lists == lists
    assert len(kube.applies) == applies
    assert not outcome.status_written


def test_a_child_missing_from_the_snapshot_is_read_and_applied_alone(kube: CountingKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    del kube.objects[SERVICE_PATH]
    kube.gets.clear()
    applies = len(kube.applies)
    operator.reconcile("plant", "line-a", observed=snapshot(kube))
    assert kube.gets == [PATH, SERVICE_PATH]  # it might be someone else's: read before apply
    assert kube.applies[applies:] == [SERVICE_PATH]


def test_an_edited_stateful_set_in_the_snapshot_is_restored(kube: CountingKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    kube.objects[STS_PATH]["spec"]["replicas"] = 7
    applies = len(kube.applies)
    operator.reconcile("plant", "line-a", observed=snapshot(kube))
    assert kube.applies[applies:] == [STS_PATH]
    assert kube.objects[STS_PATH]["spec"]["replicas"] == 2


def test_a_full_reconcile_applies_every_child(kube: CountingKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    applies = len(kube.applies)
    operator.reconcile("plant", "line-a", observed=snapshot(kube), full=True)
    assert len(kube.applies) == applies + 3


def test_pod_problems_come_from_the_snapshot(kube: CountingKube) -> None:
    operator = reconciler(kube)
    operator.reconcile("plant", "line-a")
    crashing = pod("line-a-0", phase="Pending")
    crashing["status"]["containerStatuses"] = [
        {
            "name": "producer",
            "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "boom"}},
        }
    ]
    observed = Observed.of(snapshot(kube).children, [crashing])
    operator.reconcile("plant", "line-a", observed=observed)
    degraded = next(
        c for c in kube.objects[PATH]["status"]["conditions"] if c["type"] == "Degraded"
    )
    assert degraded["status"] == "True"
    assert "line-a-0" in degraded["message"]


def test_index_keys_and_trimmed_bodies() -> None:
    body = pod("line-a-0")
    assert pod_key(body) == ("plant", "line-a")
    assert "managedFields" not in trimmed(body)["metadata"]
    assert body["metadata"]["managedFields"]  # the event's body is left as it was
    owned = {
        "metadata": {
            "namespace": "plant",
            "ownerReferences": [
                {
                    "controller": True,
                    "kind": "SensorSimulation",
                    "apiVersion": names.SIMULATION_API_VERSION,
                    "name": "line-a",
                }
            ],
        }
    }
    assert child_key(owned) == ("plant", "line-a")
    assert child_key({"metadata": {"namespace": "plant"}}) is None
