"""A scenario added to a running SensorSimulation with ``kubectl patch``, end to end: real
control plane, real producer containers (testbed/pods.py), real broker, the operator as a
process. The failure it schedules starts at the named cycle on the named machines only, shows
in ``status.scenarios``, and holds through a replica change in the middle of its window; the
stream stays exact (no gap, no repeat, no two owners, one schedule).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from testbed.cluster import KubeCluster
from testbed.operator import OperatorProcess
from testbed.pods import PodRunner
from testbed.polling import wait_until
from tests.k8s.test_operator_e2e import crd  # noqa: F401 - fixture: the CRD, established
from tests.k8s.test_pods_as_containers import (
    operator,  # noqa: F401 - fixture: the operator process
    runner,  # noqa: F401 - fixture: the podman pod runner
)
from tests.k8s.test_rollout_containers import NAME, Fleet, now_ms, running_fleet

pytestmark = pytest.mark.container

TARGET = [1, 4]
LEAD_CYCLES = 90
"""Cycles from the patch to the scenario's start: room for the handover the change causes
(a scenario list shapes the stream), so that the whole window is under the new list."""
WINDOW = 200
"""Long enough for a replica change (its handover) to happen inside it on a loaded machine."""


@pytest.fixture
def fleet(
    k8s_cluster: KubeCluster,
    operator: OperatorProcess,  # noqa: F811
    runner: PodRunner,  # noqa: F811
    kafka_bootstrap: str,
) -> Iterator[Fleet]:
    with running_fleet(k8s_cluster, operator, runner, kafka_bootstrap, "scenarios") as running:
        yield running


def scenario_status(fleet: Fleet) -> list[dict[str, Any]]:
    status = fleet.api.simulation(NAME).get("status") or {}
    found: list[dict[str, Any]] = status.get("scenarios") or []
    return found


def test_a_patched_scenario_fails_the_named_machines_at_its_cycle_through_a_replica_change(
    fleet: Fleet,
) -> None:
    latest = max(r.seq for stream in fleet.recorder.snapshot().values() for r in stream)
    start = latest + LEAD_CYCLES
    scenario = {
        "name": "m14",
        "target": {"machines": TARGET},
        "startCycle": start,
        "failure": {"type": "bearing", "cycles": WINDOW},
    }
    patch = [{"op": "add", "path": "/spec/scenarios", "value": [scenario]}]
    fleet.api.kubectl("patch", "sensim", NAME, "--type=json", "-p", json.dumps(patch))
    settled = fleet.settle()

    shown = wait_until(
        lambda: [s for s in scenario_status(fleet) if s.get("name") == "m14"] or None,
        timeout=60,
        message="the scenario in status.scenarios",
    )
    assert shown[0]["startCycle"] == start
    assert shown[0]["endCycle"] == start + WINDOW
    assert shown[0]["state"] in ("upcoming", "active")
    records = fleet.recorder.snapshot()
    reached = min(stream[-1].seq for stream in records.values())
    assert reached < start, f"the handover took until cycle {reached}, past the start {start}"

    # a replica change in the middle of the window
    start_due = settled + (start - reached) * fleet.interval_ms
    fleet.recorder.wait_until_due(fleet.ids(), start_due + 10 * fleet.interval_ms,
                                  broken=fleet.broken)  # fmt: skip
    fleet.change({"replicas": 2})
    records = fleet.records_after(now_ms(), cycles=1)
    assert min(stream[-1].seq for stream in records.values()) < start + WINDOW, "window over"
    records = fleet.recorder.wait_until_due(
        fleet.ids(), start_due + (WINDOW + 5) * fleet.interval_ms, broken=fleet.broken
    )

    ids = fleet.ids()
    wrong = []
    for index, machine in enumerate(ids):
        for reading in records[machine]:
            scheduled = index in TARGET and start <= reading.seq < start + WINDOW
            if reading.failing != scheduled:
                wrong.append((index, reading.seq, reading.failing))
    assert not wrong, f"failing where not scheduled or healthy inside the window: {wrong[:20]}"
    for index in TARGET:  # the whole window was emitted, after the replica change too
        seqs = {r.seq for r in records[ids[index]] if r.failing}
        assert seqs == set(range(start, start + WINDOW))
    assert any(s.get("name") == "m14" for s in scenario_status(fleet))
    fleet.assert_invariants(records)
