"""Kubernetes Events on a SensorSimulation when one of its conditions changes status.

Only transitions become Events (``kubectl describe sensim``): a reconcile that leaves every
condition's status as it was posts nothing, however often it runs. A condition seen for the first
time is a transition only when it reports trouble (``Degraded=True``): a new simulation's first
``Ready=False`` is its normal start, not news. ``Degraded=True`` is a Warning, the rest Normal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from sensorsim_operator.api.simulation_status import Condition, SimulationStatus
from sensorsim_operator.api.v1alpha1 import API_GROUP, API_VERSION, KIND

COMPONENT: Final = "sensorsim-operator"
REPORTING_CONTROLLER: Final = f"{API_GROUP}/operator"
MAX_MESSAGE: Final = 1024  # events.k8s.io's limit on a note


def _trouble(condition: Condition) -> bool:
    return condition.type == "Degraded" and condition.status == "True"


def transitions(previous: SimulationStatus | None, status: SimulationStatus) -> list[Condition]:
    """The conditions of ``status`` whose status differs from ``previous``'s."""
    before = {c.type: c.status for c in (previous.conditions if previous else [])}
    return [
        condition
        for condition in status.conditions
        if (condition.type in before and before[condition.type] != condition.status)
        or (condition.type not in before and _trouble(condition))
    ]


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def transition_event(
    simulation: Mapping[str, Any], condition: Condition, now: datetime, instance: str
) -> dict[str, Any]:
    """A core/v1 Event on ``simulation`` for ``condition``'s new status."""
    meta = simulation["metadata"]
    message = f"{condition.type} is {condition.status}: {condition.message}"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    when = _timestamp(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": condition.reason,
        "message": message,
        "type": "Warning" if _trouble(condition) else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": REPORTING_CONTROLLER,
        "reportingInstance": instance,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }


def transition_events(
    simulation: Mapping[str, Any],
    previous: SimulationStatus | None,
    status: SimulationStatus,
    now: datetime,
    instance: str = COMPONENT,
) -> list[dict[str, Any]]:
    """The Events to post after writing ``status`` over ``previous`` (none when no condition
    changed status)."""
    return [
        transition_event(simulation, condition, now, instance)
        for condition in transitions(previous, status)
    ]
