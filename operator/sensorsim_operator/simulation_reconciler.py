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
from sensorsim_operator.api.v1alpha1 import SimulationSpec, SimulationStatus, parse_spec
from sensorsim_operator.children import pod_resources
from sensorsim_operator.children.conformance import conforms, same_object
from sensorsim_operator.children.identity import Manifest, SimulationRef
from sensorsim_operator.children.manifests import build_children
from sensorsim_operator.children.ownership import foreign_owner
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.children.producer_env import sensor_count
from sensorsim_operator.children.stream_hash import (
    reference_data_digest,
    template_reference_digest,
)
from sensorsim_operator.condition_events import transition_events
from sensorsim_operator.handover import Handover, pending_handover
from sensorsim_operator.kube import Kube, KubeError, manifest_path, object_path
from sensorsim_operator.observed import Observed
from sensorsim_operator.pod_problems import pod_problems
from sensorsim_operator.statuses import (
    Failure,
    compute_status,
    invalid_spec_message,
    invalid_spec_status,
    parse_status,
    status_body,
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


@dataclass(frozen=True, slots=True)
class _Trigger:
    """What a reconcile was given to start from besides the simulation."""

    child: Mapping[str, Any] | None
    child_deleted: bool
    observed: Observed | None
    full: bool

    def current(self, manifest: Manifest) -> tuple[bool, Mapping[str, Any] | None]:
        """(known, object): the object ``manifest`` describes as the trigger brought it (None
        when the event deleted it); known is False when the trigger has not seen it."""
        if self.child is not None and same_object(manifest, self.child):
            return True, None if self.child_deleted else self.child
        seen = self.observed.child(manifest) if self.observed is not None else None
        return seen is not None, seen

    def differs(self, manifest: Manifest) -> bool:
        """While the spec is the applied one: whether ``manifest`` must be applied again."""
        if self.child is None and self.observed is None:
            return True  # nothing seen: apply it all
        known, current = self.current(manifest)
        if not known:
            # Missing from the watches' snapshot: deleted (or not the operator's any more).
            # Outside the snapshot, a child event concerns one child only.
            return self.observed is not None
        return current is None or not conforms(manifest, current)


def _memory_refusal(spec: SimulationSpec) -> Failure | None:
    """A memory limit below what the pods need is refused: nothing is applied (pods that run
    keep running) until the spec raises it."""
    why = pod_resources.shortfall(
        spec.machines, spec.replicas, sensor_count(spec), limit=spec.resources.limits.memory
    )
    return None if why is None else Failure("MemoryBelowNeed", why, retry=False)


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


def _known_digest(stateful_set: Mapping[str, Any] | None) -> str | None:
    """The reference-data digest the StatefulSet's template was built with, if any."""
    if stateful_set is None:
        return None
    return template_reference_digest(stateful_set.get("spec", {}).get("template") or {})


def _template_hash(stateful_set: Mapping[str, Any] | None) -> str:
    if stateful_set is None:
        return ""
    annotations = stateful_set["spec"]["template"].get("metadata", {}).get("annotations") or {}
    return str(annotations.get(names.CONFIG_HASH_ANNOTATION, ""))


class Reconciler:
    """Brings simulations to their desired state through a :class:`Kube`."""

    def __init__(
        self,
        kube: Kube,
        defaults: BuildDefaults,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._kube = kube
        self._defaults = defaults
        self._clock = clock

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
            self._report_invalid_spec(path, obj, message)
            raise ReconcileError(f"spec not understood: {message}", retry=False) from error
        return self._apply(path, obj, spec, _Trigger(child, child_deleted, observed, full))

    def _report_invalid_spec(self, path: str, obj: dict[str, Any], message: str) -> None:
        previous = parse_status(obj.get("status"))
        status = invalid_spec_status(
            previous,
            message=message,
            generation=int(obj["metadata"].get("generation", 0)),
            now=self._clock(),
        )
        if status != previous:
            self._write_status(path, obj, previous, status)

    def _write_status(
        self,
        path: str,
        obj: Mapping[str, Any],
        previous: SimulationStatus | None,
        status: SimulationStatus,
    ) -> None:
        """Patch the status, then post an Event for each condition whose status changed."""
        self._kube.patch_status(path, status_body(status))
        for event in transition_events(obj, previous, status, self._clock()):
            self._kube.post_event(event)

    def _apply(
        self,
        path: str,
        obj: dict[str, Any],
        spec: SimulationSpec,
        trigger: _Trigger,
    ) -> Outcome:
        simulation = SimulationRef.from_object(obj)
        previous = parse_status(obj.get("status"))
        sts_path = object_path(
            "apps/v1", "StatefulSet", simulation.namespace, names.statefulset_name(simulation.name)
        )
        # As the watches saw it, or read now; never taken from a child event's body: an event
        # that waited may show a StatefulSet that has been replaced since.
        sts_ref = {"kind": "StatefulSet", "metadata": {"name": names.statefulset_name(
            simulation.name), "namespace": simulation.namespace}}  # fmt: skip
        seen = trigger.observed.child(sts_ref) if trigger.observed is not None else None
        existing = dict(seen) if seen is not None else self._kube.get(sts_path)
        # A handover in progress re-decides on every event, its pods' included.
        in_step = (
            not trigger.full
            and previous is not None
            and previous.observed_generation == simulation.generation
            and previous.handover_since is None
        )
        child = trigger.child
        # The reference data's digest only matters where the StatefulSet is compared.
        # In step, a snapshot's StatefulSet keeps the digest it was built with (the resync
        # reads the reference data again), and so does a child event for another child.
        reread = not in_step or (
            trigger.observed is None and (child is None or child.get("kind") == "StatefulSet")
        )
        digest = (
            self._reference_digest(simulation, spec, existing)
            if reread
            else _known_digest(existing)
        )
        children = build_children(simulation, spec, self._defaults, digest)
        to_apply = [
            manifest
            for manifest in children.in_apply_order()
            if not in_step or trigger.differs(manifest)
        ]
        current = {
            manifest_path(manifest): (
                existing if manifest is children.stateful_set else self._current(manifest, trigger)
            )
            for manifest in to_apply
        }
        failure = _memory_refusal(spec) or self._name_conflicts(to_apply, current, simulation)
        pods: list[dict[str, Any]] | None = None
        handover: Handover | None = None
        if failure is None and sts_path in current:
            pods = self._pods(simulation, trigger.observed)
            handover = pending_handover(existing, children.stateful_set, pods)
            if handover is not None:
                # The new template waits until every old pod has stopped; the StatefulSet's
                # and the pods' events re-run this reconcile as they go.
                to_apply = [m for m in to_apply if m is not children.stateful_set]
        applied, failure = self._apply_all(to_apply, failure)
        if handover is not None and handover.scale_down and existing and failure is None:
            failure = self._scale_to_zero(sts_path, existing)
        stateful_set = existing if handover is not None else applied.get(sts_path, existing)
        if stateful_set is not None and foreign_owner(stateful_set, simulation) is not None:
            stateful_set = None  # someone else's: its pods are not ours to report
        if stateful_set is None and handover is None:
            pods = []
        # observedGeneration promises "the children reflect this spec": only after applying it.
        # A handover in progress has not applied the new StatefulSet yet either.
        generation = (
            simulation.generation
            if failure is None and handover is None
            else (previous.observed_generation if previous else 0)
        )
        status = compute_status(
            simulation=simulation.name,
            spec=spec,
            generation=generation,
            config_hash=_template_hash(stateful_set),
            stateful_set=stateful_set,
            previous=previous,
            now=self._clock(),
            failure=failure,
            problems=pod_problems(
                self._pods(simulation, trigger.observed) if pods is None else pods
            ),
            handover=handover,
            created=simulation.created,
        )
        written = False
        if status != previous:
            self._write_status(path, obj, previous, status)
            written = True
        if failure is not None:
            raise ReconcileError(f"{failure.reason}: {failure.message}", retry=failure.retry)
        return Outcome(
            found=True,
            applied=len(to_apply),
            status_written=written,
            written=tuple(_version_of(obj) for obj in applied.values()),
        )

    def _reference_digest(
        self, simulation: SimulationRef, spec: SimulationSpec, existing: Mapping[str, Any] | None
    ) -> str | None:
        """The digest of the referenced CSV as the ConfigMap holds it now. When the ConfigMap
        cannot be read (absent, or the operator may not read it), the digest the running
        template was built with: content the operator cannot see is taken as unchanged, so a
        ConfigMap deleted for a moment does not stop the pods that already read it."""
        if spec.reference_data is None:
            return None
        config_map_path = object_path(
            "v1", "ConfigMap", simulation.namespace, spec.reference_data.config_map_name
        )
        try:
            config_map = self._kube.get(config_map_path)
        except KubeError as error:
            if error.status != 403:
                raise
            config_map = None
        if config_map is None:
            return _known_digest(existing)
        return reference_data_digest(config_map, spec.reference_data.key)

    def _pods(self, simulation: SimulationRef, observed: Observed | None) -> list[dict[str, Any]]:
        if observed is not None:
            return [dict(pod) for pod in observed.pods]
        return self._kube.list_pods(simulation.namespace, names.selector_string(simulation.name))

    def _apply_all(
        self, manifests: Sequence[Manifest], failure: Failure | None
    ) -> tuple[dict[str, dict[str, Any]], Failure | None]:
        """Applies ``manifests`` in order unless ``failure``; the applied objects by path, and
        the failure that stopped it (if any)."""
        applied: dict[str, dict[str, Any]] = {}
        for manifest in manifests if failure is None else ():
            try:
                applied[manifest_path(manifest)] = self._kube.apply(manifest)
            except KubeError as error:
                return applied, Failure(
                    "ReconcileFailed",
                    f"applying {manifest['kind']} {manifest['metadata']['name']}: {error}",
                )
        return applied, failure

    def _scale_to_zero(self, path: str, existing: Mapping[str, Any]) -> Failure | None:
        """Stops the old pods of a handover; their template stays, so no new pod starts.

        Only the StatefulSet the handover was decided on is scaled (its resourceVersion is the
        precondition). If it changed since, the change has an event of its own, whose reconcile
        decides again from the new state.
        """
        version = str(existing.get("metadata", {}).get("resourceVersion", ""))
        try:
            self._kube.scale(path, 0, resource_version=version)
        except KubeError as error:
            if error.status == 409:
                log.info(f"{path} changed while deciding the handover: deciding again")
                return None
            return Failure("ReconcileFailed", f"scaling the old producer pods to 0: {error}")
        return None

    def _current(self, manifest: Manifest, trigger: _Trigger) -> dict[str, Any] | None:
        """The object ``manifest`` describes as it is now: the trigger's when it brought it.
        One the watches have not seen is read: it may exist without the operator's labels."""
        known, current = trigger.current(manifest)
        if known:
            return None if current is None else dict(current)
        return self._kube.get(manifest_path(manifest))

    def _name_conflicts(
        self,
        manifests: Sequence[Manifest],
        current: Mapping[str, Mapping[str, Any] | None],
        simulation: SimulationRef,
    ) -> Failure | None:
        """Children whose names are taken by someone else's objects. Nothing is applied then:
        server-side apply with force would take the object over (and the garbage collector
        would later delete it with the simulation)."""
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

    def simulations(self, namespaces: Sequence[str]) -> list[tuple[str, str]]:
        """(namespace, name) of every simulation in ``namespaces`` (all when empty)."""
        return [
            (obj["metadata"]["namespace"], obj["metadata"]["name"])
            for obj in self._kube.list_simulations(namespaces)
        ]
