"""Whose an object is: the simulation controlling a child, and why an object with a child's
name may not be taken over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import KIND
from sensorsim_operator.children.identity import SimulationRef


def controller_owner(obj: Mapping[str, Any]) -> str | None:
    """The name of the SensorSimulation controlling a child, or None for anything else."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or ():
        if (
            ref.get("controller")
            and ref.get("kind") == KIND
            and ref.get("apiVersion") == names.SIMULATION_API_VERSION
        ):
            name: str = ref["name"]
            return name
    return None


def foreign_owner(obj: Mapping[str, Any], simulation: SimulationRef) -> str | None:
    """Why ``obj``, which has the name of one of ``simulation``'s children, is not its child
    (None when it is, so the operator may apply it).

    It is the simulation's child when the simulation (this very object, by uid) controls it,
    or when nothing controls it and the operator created it (its field manager owns fields:
    e.g. a child orphaned by ``kubectl delete --cascade=orphan`` of an earlier simulation of
    the same name). Anything else belongs to someone else and is never adopted.
    """
    meta = obj.get("metadata", {})
    controller = next(
        (ref for ref in meta.get("ownerReferences") or () if ref.get("controller")), None
    )
    if controller is not None:
        if controller.get("uid") == simulation.uid:
            return None
        return f"controlled by {controller.get('kind')} {controller.get('name')}"
    managers = {entry.get("manager") for entry in meta.get("managedFields") or ()}
    if names.FIELD_MANAGER in managers:
        return None
    made_by = ", ".join(sorted(str(m) for m in managers if m)) or "someone else"
    return f"not created by the operator (fields managed by {made_by})"
