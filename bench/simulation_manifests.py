"""The objects the operator benchmarks apply (SensorSimulations, and for the baseline the
StatefulSets the operator would build for them, without the operator), and when they count a
simulation Ready."""

from __future__ import annotations

import json
from typing import Any

from sensorsim_operator.api.v1alpha1 import parse_spec
from sensorsim_operator.children.identity import SimulationRef
from sensorsim_operator.children.manifests import build_stateful_set
from sensorsim_operator.children.pod_template import BuildDefaults

MACHINES_PER_POD = 5
SIMULATIONS = ("sensorsim.io", "v1alpha1", "sensorsimulations")  # group, version, plural
STATEFULSETS = ("apps", "v1", "statefulsets")


def simulation(
    namespace: str, name: str, replicas: int, *, failure_probability: float | None = None
) -> dict[str, Any]:
    """A simulation of ``replicas`` pods, 5 machines each."""
    spec: dict[str, Any] = {
        "replicas": replicas,
        "machines": replicas * MACHINES_PER_POD,
        "kafka": {"bootstrapServers": "kafka:9092"},
    }
    if failure_probability is not None:
        spec["failures"] = {"probability": failure_probability}
    return {
        "apiVersion": "sensorsim.io/v1alpha1",
        "kind": "SensorSimulation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def object_names(prefix: str, count: int) -> list[str]:
    """``prefix-000``, ``prefix-001``, ...: the names of ``count`` simulations (``bench``) or
    baseline StatefulSets (``base``)."""
    return [f"{prefix}-{i:03d}" for i in range(count)]


def simulations(namespace: str, count: int, replicas: int) -> str:
    """``count`` simulations ``bench-000`` ... as one List."""
    items = [simulation(namespace, name, replicas) for name in object_names("bench", count)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def baseline_manifest(namespace: str, count: int, replicas: int) -> str:
    """The same StatefulSets the operator builds, applied directly (no owner, no operator)."""
    spec = parse_spec(
        {
            "replicas": replicas,
            "machines": replicas * MACHINES_PER_POD,
            "kafka": {"bootstrapServers": "k:9092"},
        }
    )
    items = []
    for name in object_names("base", count):
        ref = SimulationRef(namespace=namespace, name=name, uid="none", generation=1)
        sts, _ = build_stateful_set(ref, spec, BuildDefaults(producer_image="sensorsim:bench"))
        del sts["metadata"]["ownerReferences"]  # no owner: the garbage collector would delete it
        items.append(sts)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready=True for the simulation's current generation, with every replica ready."""
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    return (
        ready
        and status.get("observedGeneration") == obj["metadata"].get("generation")
        and status.get("readyReplicas") == obj["spec"]["replicas"]
    )
