"""Why producer pods cannot run, from pod objects as the kubelet and scheduler write them."""

from __future__ import annotations

from typing import Any

import pytest

from sensorsim_operator.pod_problems import pod_problems, summary

pytestmark = pytest.mark.unit


def pod(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def container(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "producer", "state": state, "lastState": last or {}}


def test_running_and_starting_pods_are_fine() -> None:
    running = pod("p-0", phase="Running", containerStatuses=[container({"running": {}})])
    starting = pod(
        "p-1",
        phase="Pending",
        containerStatuses=[container({"waiting": {"reason": "ContainerCreating"}})],
    )
    assert pod_problems([running, starting, pod("p-2")]) == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (
            {"containerStatuses": [container({"waiting": {"reason": "CrashLoopBackOff"}})]},
            "CrashLoopBackOff",
        ),
        (
            {"containerStatuses": [container({"waiting": {"reason": "ImagePullBackOff"}})]},
            "ImagePullBackOff",
        ),
        (
            {"containerStatuses": [container({"waiting": {"reason": "ErrImagePull"}})]},
            "ErrImagePull",
        ),
        (
            {
                "containerStatuses": [
                    container(
                        {"waiting": {"reason": "CrashLoopBackOff"}},
                        {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                    )
                ]
            },
            "OOMKilled",
        ),
        ({"containerStatuses": [container({"terminated": {"reason": "OOMKilled"}})]}, "OOMKilled"),
        (
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes: Insufficient memory.",
                    }
                ],
            },
            "Unschedulable",
        ),
        ({"phase": "Failed", "reason": "Evicted"}, "Evicted"),
    ],
)
def test_each_kind_of_broken_pod_is_reported_with_its_reason(
    status: dict[str, Any], reason: str
) -> None:
    (problem,) = pod_problems([pod("p-0", **status)])
    assert (problem.pod, problem.reason) == ("p-0", reason)


def test_summary_names_every_pod_and_picks_the_commonest_reason() -> None:
    crash = {"containerStatuses": [container({"waiting": {"reason": "CrashLoopBackOff"}})]}
    pull = {"containerStatuses": [container({"waiting": {"reason": "ImagePullBackOff"}})]}
    problems = pod_problems([pod("p-2", **crash), pod("p-0", **pull), pod("p-1", **crash)])
    reason, message = summary(problems)
    assert reason == "CrashLoopBackOff"
    assert message.index("p-0") < message.index("p-1") < message.index("p-2")
    many = pod_problems([pod(f"p-{i}", **crash) for i in range(8)])
    assert summary(many)[1].endswith("and 3 more pods")
