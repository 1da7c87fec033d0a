"""One reconcile of one SensorSimulation: read it, apply its children, write its status.

Every trigger (the simulation changed, a child or a pod changed or vanished, the periodic resync)
runs the same function, and it always starts from a fresh read of the simulation. Its caller runs
at most one reconcile per simulation at a time (the operator's work queue), so the later of two
triggers applies the newer spec: a stale event can never roll the pods back to an older template.
The children and pods come from the watches' in-memory snapshot (:class:`Observed`) when the
caller has one, else from the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sensorsim_operator import names
from sensorsim_operator.api.simulation_status import SimulationStatus
from sensorsim_operator.api.v1alpha1 import SimulationSpec, parse_spec
from sensorsim_operator.children.identity import SimulationRef
from sensorsim_operator.children.ownership import foreign_owner
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.handover import stream_hash_of
from sensorsim_operator.kube import Kube
from sensorsim_operator.observed import Observed
from sensorsim_operator.pod_problems import pod_problems
from sensorsim_operator.reconcile_inputs import ClusterView, Trigger, template_hash
from sensorsim_operator.reconcile_plan import Plan, decide
from sensorsim_operator.reconcile_writes import ChildWriter, StatusWriter
from sensorsim_operator.statuses import (
    Failure,
    compute_status,
    invalid_spec_message,
    parse_status,
)

log = logging.getLogger(__name__)


class ReconcileError(Exception):
    """The simulation could not be brought to its desired state; ``retry`` says if trying again
    later may help (API errors) or not (a spec the operator cannot understand)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did."""

    found: bool
    applied: int = 0
    status_written: bool = False
    # (kind, namespace, name, resourceVersion) of each child as the apply left it
    written: tuple[tuple[str, str, str, str], ...] = ()
    # The stream hash the simulation is quiet at: its StatefulSet as desired, no handover and
    # no failure (event_relevance.py); None otherwise.
    quiet_stream: str | None = None


def _version_of(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("kind", "")),
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str(meta.get("resourceVersion", "")),
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    """Brings simulations to their desired state through a :class:`Kube`: reads and decides
    (:func:`decide`), applies (:class:`ChildWriter`), reports (:class:`StatusWriter`)."""

    def __init__(
        self,
        kube: Kube,
        defaults: BuildDefaults,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._kube = kube
        self._defaults = defaults
        self._clock = clock
        self._children = ChildWriter(kube)
        self._status = StatusWriter(kube, clock)

    def reconcile(
        self,
        namespace: str,
        name: str,
        *,
        child: Mapping[str, Any] | None = None,
        child_deleted: bool = False,
        observed: Observed | None = None,
        full: bool = False,
    ) -> Outcome:
        """Apply the children of simulation ``namespace/name`` and write its status.

        ``observed`` is the watches' snapshot of the simulation's children and pods. While the
        spec is the one the last full reconcile applied, only the children that differ from
        their desired state (or are missing) are applied; a spec change, a handover in progress
        and ``full`` (the resync) apply every child, and read the reference data again.

        ``child`` is the object of a child event, for a caller without a snapshot: then only
        that child is compared and applied if it differs or was deleted.

        Raises :class:`ReconcileError` when the spec cannot be parsed or a child could not be
        applied (after writing a Degraded condition that says why).
        """
        path = names.simulation_path(namespace, name)
        obj = self._kube.get(path)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            # Deleted: the garbage collector removes the children through ownerReferences.
            return Outcome(found=False)
        try:
            spec = parse_spec(obj.get("spec") or {})
        except ValidationError as error:
            # The CRD schema enforces the same rules, so this means a CRD older than the
            # operator: retrying will not help until the spec is fixed.
            message = invalid_spec_message(error)
            self._status.report_invalid_spec(path, obj, message)
            raise ReconcileError(f"spec not understood: {message}", retry=False) from error
        simulation = SimulationRef.from_object(obj)
        view = ClusterView(self._kube, simulation, Trigger(child, child_deleted, observed, full))
        return self._carry_out(path, obj, spec, view)

    def _carry_out(
        self, path: str, obj: dict[str, Any], spec: SimulationSpec, view: ClusterView
    ) -> Outcome:
        """Decide, apply what was decided, and write the status that results."""
        previous = parse_status(obj.get("status"))
        plan = decide(view, spec, previous, self._defaults)
        applied, failure = self._children.apply_all(plan.to_apply, plan.refusal)
        handover = plan.handover
        if handover is not None and handover.scale_down and plan.existing and failure is None:
            failure = self._children.scale_to_zero(plan.stateful_set_path, plan.existing)
        stateful_set = (
            plan.existing
            if handover is not None
            else applied.get(plan.stateful_set_path, plan.existing)
        )
        status = self._status_after(
            view, spec, plan, stateful_set, failure=failure, previous=previous
        )
        written = False
        if status != previous:
            self._status.write(path, obj, previous, status)
            written = True
        if failure is not None:
            raise ReconcileError(f"{failure.reason}: {failure.message}", retry=failure.retry)
        return Outcome(
            found=True,
            applied=len(plan.to_apply),
            status_written=written,
            written=tuple(_version_of(obj) for obj in applied.values()),
            quiet_stream=(
                stream_hash_of(plan.children.stateful_set["spec"]["template"])
                if handover is None
                else None
            ),
        )

    def _status_after(
        self,
        view: ClusterView,
        spec: SimulationSpec,
        plan: Plan,
        stateful_set: dict[str, Any] | None,
        *,
        failure: Failure | None,
        previous: SimulationStatus | None,
    ) -> SimulationStatus:
        """The status once ``plan`` has been carried out (``failure``: what stopped it)."""
        simulation = view.simulation
        if stateful_set is not None and foreign_owner(stateful_set, simulation) is not None:
            stateful_set = None  # someone else's: its pods are not ours to report
        pods = plan.pods
        if stateful_set is None and plan.handover is None:
            pods = []
        # observedGeneration promises "the children reflect this spec": only after applying it.
        # A handover in progress has not applied the new StatefulSet yet either.
        generation = (
            simulation.generation
            if failure is None and plan.handover is None
            else (previous.observed_generation if previous else 0)
        )
        return compute_status(
            simulation=simulation.name,
            spec=spec,
            generation=generation,
            config_hash=template_hash(stateful_set),
            stateful_set=stateful_set,
            previous=previous,
            now=self._clock(),
            failure=failure,
            problems=pod_problems(view.pods() if pods is None else pods),
            handover=plan.handover,
            created=simulation.created,
        )

    def simulations(self, namespaces: Sequence[str]) -> list[tuple[str, str]]:
        """(namespace, name) of every simulation in ``namespaces`` (all when empty)."""
        return [
            (obj["metadata"]["namespace"], obj["metadata"]["name"])
            for obj in self._kube.list_simulations(namespaces)
        ]
