"""Who a child belongs to: the simulation's identity and the metadata every child carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import KIND

Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SimulationRef:
    """The identity of a SensorSimulation object, as its children need it."""

    namespace: str
    name: str
    uid: str
    generation: int
    # metadata.creationTimestamp (RFC 3339, UTC with a 'Z'): set once by the API server and
    # stable for the life of the object, so it serves as the simulation's epoch.
    created: str | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> SimulationRef:
        meta = obj["metadata"]
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 0)),
            created=meta.get("creationTimestamp"),
        )


def owner_reference(simulation: SimulationRef) -> Manifest:
    """Makes the child garbage-collected with the simulation (deletion needs no handler)."""
    return {
        "apiVersion": names.SIMULATION_API_VERSION,
        "kind": KIND,
        "name": simulation.name,
        "uid": simulation.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(simulation: SimulationRef, name: str) -> Manifest:
    """Name, namespace, labels and owner of one of ``simulation``'s children."""
    return {
        "name": name,
        "namespace": simulation.namespace,
        "labels": names.child_labels(simulation.name),
        "ownerReferences": [owner_reference(simulation)],
    }
