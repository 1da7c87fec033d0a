"""A replica change stops every old pod before the new template starts (issue 9): the decision
(sensorsim_operator.handover) and the reconcile that carries it out, against an in-memory API."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sensorsim_operator.handover import Handover, pending_handover, shard_count
from sensorsim_operator.kube import object_path
from tests.unit.test_operator_reconciling import PATH, STS_PATH, FakeKube, reconciler, simulation

pytestmark = pytest.mark.unit


def stateful_set(
    shards: int | None,
    *,
    replicas: int,
    status_replicas: int,
    generation: int = 3,
    observed: int = 3,
) -> dict[str, Any]:
    env = [{"name": "NUM_MACHINES", "value": "10"}]
    if shards is not None:
        env.append({"name": "SHARD_COUNT", "value": str(shards)})
    return {
        "metadata": {"generation": generation},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "producer", "env": env}]}},
        },
        "status": {"replicas": status_replicas, "observedGeneration": observed},
    }


def test_shard_count_is_read_from_the_producer_container() -> None:
    assert shard_count(stateful_set(4, replicas=4, status_replicas=4)) == 4
    assert shard_count(stateful_set(None, replicas=4, status_replicas=4)) is None
    assert shard_count({"spec": {}}) is None


def test_no_handover_without_an_existing_stateful_set_or_a_shard_change() -> None:
    desired = stateful_set(3, replicas=3, status_replicas=0)
    assert pending_handover(None, desired, pods=0) is None
    same = stateful_set(3, replicas=3, status_replicas=3)
    assert pending_handover(same, desired, pods=3) is None


def test_a_shard_change_with_running_pods_first_scales_the_old_pods_to_zero() -> None:
    old = stateful_set(2, replicas=2, status_replicas=2)
    desired = stateful_set(3, replicas=3, status_replicas=0)
    handover = pending_handover(old, desired, pods=2)
    assert handover == Handover(from_shards=2, to_shards=3, stopping=2, scale_down=True)
    assert "from 2 to 3 shards" in handover.message
    assert "waiting for 2 pods" in handover.message


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
    old = stateful_set(
        2, replicas=0, status_replicas=status_replicas, generation=4, observed=observed
    )
    handover = pending_handover(old, stateful_set(3, replicas=3, status_replicas=0), pods=pods)
    assert handover is not None
    assert not handover.scale_down  # already asked for


def test_the_new_template_goes_on_once_every_old_pod_is_gone() -> None:
    old = stateful_set(2, replicas=0, status_replicas=0, generation=4, observed=4)
    assert pending_handover(old, stateful_set(3, replicas=3, status_replicas=0), pods=0) is None


def producer_pod(ordinal: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"line-a-{ordinal}",
            "namespace": "plant",
            "labels": {
                "app.kubernetes.io/name": "sensorsim",
                "app.kubernetes.io/instance": "line-a",
                "app.kubernetes.io/component": "producer",
            },
        },
        "status": {"phase": "Running"},
    }


def template_shards(kube: FakeKube) -> int | None:
    return shard_count(kube.objects[STS_PATH])


def conditions(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in kube.objects[PATH]["status"]["conditions"]}


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.objects[PATH] = simulation()
    return fake


@pytest.fixture
def running(kube: FakeKube) -> FakeKube:
    """A simulation of 2 shards whose 2 pods run."""
    reconciler(kube).reconcile("plant", "line-a")
    kube.objects[STS_PATH]["status"] = {"replicas": 2, "readyReplicas": 2}
    for ordinal in range(2):
        pod = producer_pod(ordinal)
        labels = kube.objects[STS_PATH]["spec"]["template"]["metadata"]["labels"]
        pod["metadata"]["labels"] = dict(labels)
        kube.objects[object_path("v1", "Pod", "plant", f"line-a-{ordinal}")] = pod
    return kube


def test_a_replica_change_stops_the_old_pods_before_applying_the_new_template(
    running: FakeKube,
) -> None:
    kube = running
    before = copy.deepcopy(kube.objects[STS_PATH]["spec"]["template"])
    kube.objects[PATH] = {
        **simulation(generation=2, replicas=3),
        "status": kube.objects[PATH]["status"],
    }

    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == [(STS_PATH, 0)]
    assert kube.objects[STS_PATH]["spec"]["template"] == before  # old template kept
    status = kube.objects[PATH]["status"]
    assert status["observedGeneration"] == 1
    progressing = conditions(kube)["Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("True", "Handover")
    assert "from 2 to 3 shards" in progressing["message"]
    assert "waiting for 2 pods" in progressing["message"]

    # One pod gone, one still stopping: the pod event re-runs the reconcile, which waits.
    del kube.objects[object_path("v1", "Pod", "plant", "line-a-1")]
    kube.objects[STS_PATH]["status"] = {"replicas": 1}
    reconciler(kube).reconcile("plant", "line-a", child=kube.objects[STS_PATH])
    assert template_shards(kube) == 2
    assert kube.scales == [(STS_PATH, 0)]  # asked once
    assert "waiting for 1 pods" in conditions(kube)["Progressing"]["message"]

    # The last pod gone and the StatefulSet's status says so: its event applies the new one.
    del kube.objects[object_path("v1", "Pod", "plant", "line-a-0")]
    kube.objects[STS_PATH]["status"] = {"replicas": 0}
    reconciler(kube).reconcile("plant", "line-a", child=kube.objects[STS_PATH])
    assert template_shards(kube) == 3
    assert kube.objects[STS_PATH]["spec"]["replicas"] == 3
    assert kube.objects[PATH]["status"]["observedGeneration"] == 2
    assert conditions(kube)["Progressing"]["reason"] != "Handover"


def test_a_change_that_keeps_the_shard_count_rolls_as_before(running: FakeKube) -> None:
    kube = running
    kube.objects[PATH] = {
        **simulation(generation=2, logLevel="DEBUG"),
        "status": kube.objects[PATH]["status"],
    }
    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == []
    assert kube.objects[PATH]["status"]["observedGeneration"] == 2
    env = kube.objects[STS_PATH]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "LOG_LEVEL", "value": "DEBUG"} in env


def test_a_suspended_simulation_changes_its_shard_count_at_once(kube: FakeKube) -> None:
    reconciler(kube).reconcile("plant", "line-a")
    kube.objects[STS_PATH]["spec"]["replicas"] = 0  # suspended: no pods
    kube.objects[PATH] = {
        **simulation(generation=2, replicas=3, suspend=True),
        "status": kube.objects[PATH]["status"],
    }
    reconciler(kube).reconcile("plant", "line-a")
    assert kube.scales == []
    assert template_shards(kube) == 3
