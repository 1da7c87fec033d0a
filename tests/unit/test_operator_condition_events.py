"""Events on condition transitions only (condition_events.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sensorsim_operator.api.simulation_status import SimulationStatus
from sensorsim_operator.condition_events import transition_events, transitions

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SIMULATION = {"metadata": {"name": "line-a", "namespace": "plant", "uid": "u-1"}}


def status(message: str = "", **conditions: tuple[str, str]) -> SimulationStatus:
    return SimulationStatus.model_validate(
        {
            "conditions": [
                {
                    "type": kind,
                    "status": value,
                    "reason": reason,
                    "message": message or f"{kind} says {reason}",
                    "lastTransitionTime": "2025-03-01T11:00:00Z",
                    "observedGeneration": 1,
                }
                for kind, (value, reason) in conditions.items()
            ]
        }
    )


STARTING = status(
    Ready=("False", "WaitingForPods"),
    Progressing=("True", "Creating"),
    Degraded=("False", "AsExpected"),
)
READY = status(
    Ready=("True", "AllReplicasReady"),
    Progressing=("False", "RolloutComplete"),
    Degraded=("False", "AsExpected"),
)


def test_an_unchanged_status_posts_nothing() -> None:
    assert transition_events(SIMULATION, READY, READY, NOW) == []


def test_a_reason_change_without_a_status_change_posts_nothing() -> None:
    rolling = status(
        Ready=("True", "AllReplicasReady"),
        Progressing=("False", "Suspended"),
        Degraded=("False", "AsExpected"),
    )
    assert transitions(READY, rolling) == []


def test_a_new_simulation_posts_nothing_until_something_changes() -> None:
    assert transitions(None, STARTING) == []


def test_each_status_change_is_one_event() -> None:
    events = transition_events(SIMULATION, STARTING, READY, NOW)
    assert [(e["reason"], e["type"]) for e in events] == [
        ("AllReplicasReady", "Normal"),
        ("RolloutComplete", "Normal"),
    ]
    event = events[0]
    assert event["message"] == "Ready is True: Ready says AllReplicasReady"
    assert event["involvedObject"] == {
        "apiVersion": "sensorsim.io/v1alpha1",
        "kind": "SensorSimulation",
        "name": "line-a",
        "namespace": "plant",
        "uid": "u-1",
    }
    assert event["metadata"] == {"generateName": "line-a.", "namespace": "plant"}
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2025-03-01T12:00:00Z"


def test_trouble_is_a_warning_even_on_first_sight() -> None:
    broken = status(Degraded=("True", "ChildNameConflict"))
    (event,) = transition_events(SIMULATION, None, broken, NOW)
    assert (event["type"], event["reason"]) == ("Warning", "ChildNameConflict")


def test_long_messages_are_cut_to_the_events_limit() -> None:
    long = status("x" * 5000, Degraded=("True", "ReconcileFailed"))
    (event,) = transition_events(SIMULATION, READY, long, NOW)
    assert len(event["message"]) == 1024
