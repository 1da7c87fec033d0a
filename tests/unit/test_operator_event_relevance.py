"""Which watch events mark a simulation dirty (event_relevance.py): the ones dropped change
neither a decision nor the status, checked against the reconciler itself."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorsim_operator import names
from sensorsim_operator.event_relevance import (
    ChildReading,
    Relevance,
    child_event_matters,
    pod_event_matters,
    pod_reading,
)
from sensorsim_operator.handover import StoppingPod, stream_hash_of
from sensorsim_operator.observed import Observed, pod_key, pod_summary
from sensorsim_operator.pod_problems import pod_problems
from tests.unit.test_operator_observed import pod as observed_pod
from tests.unit.test_operator_reconciling import PATH, STS_PATH, FakeKube, reconciler, simulation

pytestmark = pytest.mark.unit

KEY = ("plant", "line-a")


def pod(name: str, stream: str) -> dict[str, Any]:
    """A running producer pod of the simulation, of the stream hash ``stream``."""
    body = observed_pod(name)
    body["metadata"].update(uid=name, annotations={names.STREAM_HASH_ANNOTATION: stream})
    body["spec"] = {"nodeName": "kwok-node-0"}
    return body


def crashing(body: dict[str, Any]) -> dict[str, Any]:
    broken = copy.deepcopy(body)
    broken["status"]["containerStatuses"] = [
        {"name": "producer", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]
    return broken


def terminating(body: dict[str, Any]) -> dict[str, Any]:
    stopping = copy.deepcopy(body)
    stopping["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return stopping


def created() -> tuple[FakeKube, str]:
    """A simulation reconciled once, and the stream hash it is quiet at."""
    kube = FakeKube()
    kube.objects[PATH] = simulation(replicas=2)
    outcome = reconciler(kube).reconcile(*KEY)
    assert outcome.quiet_stream
    kube.objects[STS_PATH]["metadata"]["generation"] = 1  # as the API server sets it
    template = kube.objects[STS_PATH]["spec"]["template"]
    assert outcome.quiet_stream == template["metadata"]["annotations"][names.STREAM_HASH_ANNOTATION]
    return kube, outcome.quiet_stream


def reconciled(
    kube: FakeKube, sts: dict[str, Any], pods: list[dict[str, Any]], *, full: bool = False
) -> tuple[Any, list[str], list[tuple[str, int]]]:
    """The status, applies and scales of one reconcile of a copy of ``kube`` that sees ``sts``
    and ``pods``."""
    copied = copy.deepcopy(kube)
    copied.objects[STS_PATH] = copy.deepcopy(sts)
    copied.applies.clear()
    children = [o for p, o in copied.objects.items() if p != PATH and o["kind"] != "Pod"]
    reconciler(copied).reconcile(*KEY, observed=Observed.of(children, pods), full=full)
    return copied.objects[PATH]["status"], copied.applies, copied.scales


def test_pod_events_without_quiet_matter_when_the_pod_comes_goes_or_changes_what_is_read() -> None:
    relevance = Relevance()
    started = pod("line-a-0", "h1")
    started["status"] = {"phase": "Pending"}
    assert relevance.pod_event(started, deleted=False)  # new
    running = copy.deepcopy(started)
    running["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    assert not relevance.pod_event(running, deleted=False)  # Ready comes through the StatefulSet
    assert relevance.pod_event(crashing(running), deleted=False)
    assert not relevance.pod_event(crashing(running), deleted=False)
    assert relevance.pod_event(terminating(crashing(running)), deleted=False)
    assert relevance.pod_event(terminating(crashing(running)), deleted=True)
    assert relevance.pod_event(running, deleted=False)  # forgotten: seen anew


def test_while_quiet_pods_of_its_stream_come_and_go_unnoticed_unless_they_have_a_problem() -> None:
    relevance = Relevance()
    relevance.reconciled(KEY, "h1")
    ours = pod("line-a-0", "h1")
    assert not relevance.pod_event(ours, deleted=False)
    assert not relevance.pod_event(terminating(ours), deleted=False)
    assert not relevance.pod_event(terminating(ours), deleted=True)
    assert relevance.pod_event(pod("line-a-1", "h0"), deleted=False)  # another stream: a handover
    assert relevance.pod_event(crashing(pod("line-a-2", "h1")), deleted=False)
    assert relevance.pod_event(crashing(pod("line-a-2", "h1")), deleted=True)  # its problem goes
    relevance.reconciling(KEY)
    relevance.reconciled(KEY, None)  # a handover or a failure: not quiet
    assert relevance.pod_event(pod("line-a-4", "h1"), deleted=False)


def test_the_echo_of_the_operators_own_apply_is_no_child_event() -> None:
    relevance = Relevance()
    kube = FakeKube()
    kube.objects[PATH] = simulation()
    outcome = reconciler(kube).reconcile(*KEY)
    assert {kind for kind, *_ in outcome.written} == {"ConfigMap", "Service", "StatefulSet"}
    relevance.reconciling(KEY)
    relevance.reconciled(KEY, outcome.quiet_stream, outcome.written)
    sts = kube.objects[STS_PATH]
    assert not relevance.child_event(sts, deleted=False)
    edited = copy.deepcopy(sts)
    edited["metadata"]["resourceVersion"] = "999"
    edited["spec"]["replicas"] = 7  # someone scaled it
    assert relevance.child_event(edited, deleted=False)
    assert relevance.child_event(edited, deleted=True)


def test_events_during_a_reconcile_are_judged_against_what_it_saw_when_it_ends() -> None:
    kube = FakeKube()
    kube.objects[PATH] = simulation()
    relevance = Relevance()
    relevance.reconciling(KEY)  # the snapshot: no child yet
    outcome = reconciler(kube).reconcile(*KEY)
    sts = kube.objects[STS_PATH]
    sts["metadata"]["generation"] = 1
    # The echo of the apply arrives before the reconcile ends, then the controller's first
    # status step, which settles nothing: neither marks, now or when the reconcile ends.
    assert not relevance.child_event(sts, deleted=False)
    seen = with_status(sts, "50", observedGeneration=1, currentRevision="r", updateRevision="r")
    assert not relevance.child_event(seen, deleted=False)
    assert not relevance.pod_event(pod("line-a-0", outcome.quiet_stream or ""), deleted=False)
    assert relevance.reconciled(KEY, outcome.quiet_stream, outcome.written) is None
    # Held events that change what is read mark the simulation when the reconcile ends.
    relevance.reconciling(KEY)
    ready = with_status(sts, "51", observedGeneration=1, replicas=2, readyReplicas=2)
    assert not relevance.child_event(ready, deleted=False)
    assert relevance.reconciled(KEY, outcome.quiet_stream, ()) == "child"
    relevance.reconciling(KEY)
    assert not relevance.pod_event(pod("line-a-1", "another-stream"), deleted=False)
    assert relevance.reconciled(KEY, outcome.quiet_stream, ()) == "pod"
    # A reconcile that failed is not quiet: a held step of a raw flag matters then.
    relevance.reconciling(KEY)
    assert not relevance.child_event(with_status(sts, "52", observedGeneration=0), deleted=False)
    assert relevance.reconciled(KEY, None) == "child"
    # Nothing is held once it ended.
    assert relevance.child_event(with_status(sts, "53", observedGeneration=1), deleted=False)


def with_status(sts: dict[str, Any], version: str, **status: Any) -> dict[str, Any]:
    changed = copy.deepcopy(sts)
    changed["metadata"]["resourceVersion"] = version
    changed["metadata"]["managedFields"] = [{"manager": "kube-controller-manager", "time": version}]
    changed["status"] = status
    return changed


def test_statefulset_status_steps_matter_only_when_they_change_what_is_read() -> None:
    kube, _ = created()
    sts = kube.objects[STS_PATH]
    before = ChildReading.of(sts)
    seen = ChildReading.of(
        with_status(sts, "10", observedGeneration=1, currentRevision="r1", updateRevision="r1")
    )
    # The controller saw the StatefulSet but created no pod yet: nothing settles.
    assert not child_event_matters(before, seen, quiet=True)
    assert child_event_matters(before, seen, quiet=False)  # the raw flag changed
    created_pods = ChildReading.of(
        with_status(sts, "11", observedGeneration=1, replicas=2, updatedReplicas=2,
                    currentRevision="r1", updateRevision="r1")
    )  # fmt: skip
    assert child_event_matters(seen, created_pods, quiet=True)
    available = ChildReading.of(
        with_status(sts, "12", observedGeneration=1, replicas=2, updatedReplicas=2,
                    currentRevision="r1", updateRevision="r1", availableReplicas=2,
                    currentReplicas=2, collisionCount=0)
    )  # fmt: skip
    assert not child_event_matters(created_pods, available, quiet=False)
    ready = ChildReading.of(
        with_status(sts, "13", observedGeneration=1, replicas=2, updatedReplicas=2,
                    currentRevision="r1", updateRevision="r1", readyReplicas=1)
    )  # fmt: skip
    assert child_event_matters(available, ready, quiet=True)
    relabelled = copy.deepcopy(sts)
    relabelled["metadata"]["labels"]["extra"] = "x"
    assert child_event_matters(before, ChildReading.of(relabelled), quiet=True)
    assert child_event_matters(None, before, quiet=True)
    assert child_event_matters(before, None, quiet=True)


STATUS = st.fixed_dictionaries(
    {},
    optional={
        "replicas": st.integers(0, 3),
        "readyReplicas": st.integers(0, 3),
        "updatedReplicas": st.integers(0, 3),
        "availableReplicas": st.integers(0, 3),
        "currentReplicas": st.integers(0, 3),
        "observedGeneration": st.integers(0, 2),
        "currentRevision": st.sampled_from(["r1", "r2"]),
        "updateRevision": st.sampled_from(["r1", "r2"]),
        "collisionCount": st.integers(0, 1),
    },
)


@settings(max_examples=300, deadline=None)
@given(first=STATUS, second=STATUS, spec_replicas=st.sampled_from([0, 2]))
def test_a_dropped_statefulset_event_changes_no_status_and_no_decision(
    first: dict[str, Any], second: dict[str, Any], spec_replicas: int
) -> None:
    kube, _ = created()
    sts = copy.deepcopy(kube.objects[STS_PATH])
    sts["spec"]["replicas"] = spec_replicas
    if spec_replicas == 0:
        kube.objects[PATH]["spec"]["suspend"] = True  # desired 0 while quiet
        reconciler(kube).reconcile(*KEY, full=True)
    a, b = with_status(sts, "20", **first), with_status(sts, "21", **second)
    quiet = not child_event_matters(ChildReading.of(a), ChildReading.of(b), quiet=True)
    exact = not child_event_matters(ChildReading.of(a), ChildReading.of(b), quiet=False)
    if quiet or exact:
        assert reconciled(kube, a, [], full=True) == reconciled(kube, b, [], full=True)
    if exact:  # also when the simulation wants other replicas than the StatefulSet has
        kube.objects[PATH]["spec"]["replicas"] = 3
        assert reconciled(kube, a, []) == reconciled(kube, b, [])


@settings(max_examples=200, deadline=None)
@given(
    others=st.lists(st.sampled_from(["h1", "h0"]), max_size=3),
    change=st.sampled_from(["appears", "terminates", "goes"]),
    problem=st.booleans(),
)
def test_a_dropped_pod_event_changes_no_status_and_no_decision(
    others: list[str], change: str, problem: bool
) -> None:
    kube, stream = created()
    sts = kube.objects[STS_PATH]
    hashes = {"h1": stream, "h0": "0123456789abcdef"}
    pods = [pod(f"line-a-{i}", hashes[h]) for i, h in enumerate(others)]
    subject = pod("line-a-9", stream)
    if problem:
        subject = crashing(subject)
    before_pod, after_pod = {
        "appears": (None, subject),
        "terminates": (subject, terminating(subject)),
        "goes": (subject, None),
    }[change]
    before = None if before_pod is None else pod_reading(before_pod)
    after = None if after_pod is None else pod_reading(after_pod)
    if pod_event_matters(before, after, quiet_stream=stream):
        assert problem  # only a problem makes a pod of the quiet stream matter
        return
    with_before = pods + ([before_pod] if before_pod else [])
    with_after = pods + ([after_pod] if after_pod else [])
    for full in (False, True):
        assert reconciled(kube, sts, with_before, full=full) == reconciled(
            kube, sts, with_after, full=full
        )


def full_pod(**status: Any) -> dict[str, Any]:
    """A pod as the API server returns it, with the fields no reconcile reads."""
    body = pod("line-a-0", "abc")
    body["metadata"].update(
        managedFields=[{"manager": "kubelet"}],
        ownerReferences=[{"kind": "StatefulSet", "name": "line-a"}],
        annotations={names.STREAM_HASH_ANNOTATION: "abc", "other": "x"},
        deletionTimestamp="2026-12-07T00:00:00Z",
    )
    body["spec"].update(
        terminationGracePeriodSeconds=50,
        containers=[{"name": "producer", "env": [{"name": "A", "value": "1" * 500}]}],
    )
    body["status"] = {"podIP": "10.0.0.1", **status}
    return body


@pytest.mark.parametrize(
    "status",
    [
        {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available",
                }
            ],
        },
        {"phase": "Failed", "reason": "Evicted", "message": "low on memory"},
        {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "producer",
                    "image": "i",
                    "imageID": "x",
                    "ready": False,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ],
        },
        {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "producer", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ],
        },
    ],
)
def test_the_index_keeps_of_a_pod_all_that_reconciles_read(status: dict[str, Any]) -> None:
    body = full_pod(**status)
    summary = pod_summary(body)
    assert pod_problems([summary]) == pod_problems([body])
    assert StoppingPod.of(summary) == StoppingPod.of(body)
    assert stream_hash_of(summary) == stream_hash_of(body) == "abc"
    assert pod_key(summary) == pod_key(body)
    assert pod_reading(summary) == pod_reading(body)
    assert "containers" not in summary["spec"]
    assert "podIP" not in summary["status"]
    assert "managedFields" not in summary["metadata"]
