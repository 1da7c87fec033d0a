"""What one reconcile of a simulation does, decided from what it reads (reconcile_inputs.py):
which children to apply, whether a memory limit or a taken name refuses them, and whether a
handover holds the new StatefulSet back. Carrying it out is the reconciler's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sensorsim_operator.api.simulation_status import SimulationStatus
from sensorsim_operator.api.v1alpha1 import SimulationSpec
from sensorsim_operator.children import pod_resources
from sensorsim_operator.children.identity import Manifest, SimulationRef
from sensorsim_operator.children.manifests import Children, build_children
from sensorsim_operator.children.ownership import foreign_owner
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.children.producer_env import sensor_count
from sensorsim_operator.handover import Handover, pending_handover
from sensorsim_operator.kube import manifest_path
from sensorsim_operator.reconcile_inputs import ClusterView, known_digest, stateful_set_path
from sensorsim_operator.statuses import Failure


@dataclass(frozen=True, slots=True)
class Plan:
    """The children to apply (in order), and what held any of them back."""

    children: Children
    stateful_set_path: str
    existing: dict[str, Any] | None  # the StatefulSet before this reconcile
    to_apply: list[Manifest]
    refusal: Failure | None  # nothing is applied when set
    handover: Handover | None  # the new StatefulSet waits for the old pods when set
    pods: list[dict[str, Any]] | None  # the pods, when the decision read them


def memory_refusal(spec: SimulationSpec) -> Failure | None:
    """A memory limit below what the pods need is refused: nothing is applied (pods that run
    keep running) until the spec raises it."""
    why = pod_resources.shortfall(
        spec.machines,
        spec.replicas,
        sensor_count(spec),
        limit=spec.resources.limits.memory,
        max_pending=spec.kafka.producer.max_pending_records,
    )
    return None if why is None else Failure("MemoryBelowNeed", why, retry=False)


def name_conflicts(
    manifests: Sequence[Manifest],
    current: Mapping[str, Mapping[str, Any] | None],
    simulation: SimulationRef,
) -> Failure | None:
    """Children whose names are taken by someone else's objects. Nothing is applied then:
    server-side apply with force would take the object over (and the garbage collector would
    later delete it with the simulation)."""
    taken: list[str] = []
    for manifest in manifests:
        existing = current[manifest_path(manifest)]
        why = None if existing is None else foreign_owner(existing, simulation)
        if why is not None:
            meta = manifest["metadata"]
            taken.append(f"{manifest['kind']} {meta['namespace']}/{meta['name']} ({why})")
    if not taken:
        return None
    return Failure(
        "ChildNameConflict",
        "; ".join(taken)
        + ": the operator never adopts objects it did not create; delete or rename them, "
        "or give the simulation another name (docs/operator.md, 'Name conflicts')",
    )


def in_step(view: ClusterView, previous: SimulationStatus | None) -> bool:
    """True when the children already reflect this generation and no handover is in progress:
    then only the children that differ from their desired state are applied. A handover in
    progress re-decides on every event, its pods' included."""
    return (
        not view.trigger.full
        and previous is not None
        and previous.observed_generation == view.simulation.generation
        and previous.handover_since is None
    )


def decide(
    view: ClusterView,
    spec: SimulationSpec,
    previous: SimulationStatus | None,
    defaults: BuildDefaults,
) -> Plan:
    """What to apply for ``spec``, read through ``view``."""
    simulation, trigger = view.simulation, view.trigger
    sts_path = stateful_set_path(simulation)
    existing = view.stateful_set()
    stepping = in_step(view, previous)
    # The reference data's digest only matters where the StatefulSet is compared.
    # In step, a snapshot's StatefulSet keeps the digest it was built with (the resync
    # reads the reference data again), and so does a child event for another child.
    child = trigger.child
    reread = not stepping or (
        trigger.observed is None and (child is None or child.get("kind") == "StatefulSet")
    )
    digest = view.reference_digest(spec, existing) if reread else known_digest(existing)
    children = build_children(simulation, spec, defaults, digest)
    to_apply = [
        manifest
        for manifest in children.in_apply_order()
        if not stepping or trigger.differs(manifest)
    ]
    current = {
        manifest_path(manifest): (
            existing if manifest is children.stateful_set else view.current(manifest)
        )
        for manifest in to_apply
    }
    refusal = memory_refusal(spec) or name_conflicts(to_apply, current, simulation)
    pods: list[dict[str, Any]] | None = None
    handover: Handover | None = None
    if refusal is None and sts_path in current:
        pods = view.pods()
        handover = pending_handover(existing, children.stateful_set, pods)
        if handover is not None:
            # The new template waits until every old pod has stopped; the StatefulSet's
            # and the pods' events re-run the reconcile as they go.
            to_apply = [m for m in to_apply if m is not children.stateful_set]
    return Plan(
        children=children,
        stateful_set_path=sts_path,
        existing=existing,
        to_apply=to_apply,
        refusal=refusal,
        handover=handover,
        pods=pods,
    )
