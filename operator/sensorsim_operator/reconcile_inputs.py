"""What one reconcile reads: the simulation's children and producer pods as its trigger brought
them (the watches' snapshot, or the object of a child event) and, for what the trigger has not
seen, the API.

The StatefulSet is taken from the watches' snapshot or read now; never from a child event's
body: an event that waited may show a StatefulSet that has been replaced since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import SimulationSpec
from sensorsim_operator.children.conformance import conforms, same_object
from sensorsim_operator.children.identity import Manifest, SimulationRef
from sensorsim_operator.children.stream_hash import (
    reference_data_digest,
    template_reference_digest,
)
from sensorsim_operator.kube import Kube, KubeError, manifest_path, object_path
from sensorsim_operator.observed import Observed


@dataclass(frozen=True, slots=True)
class Trigger:
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


def known_digest(stateful_set: Mapping[str, Any] | None) -> str | None:
    """The reference-data digest the StatefulSet's template was built with, if any."""
    if stateful_set is None:
        return None
    return template_reference_digest(stateful_set.get("spec", {}).get("template") or {})


def template_hash(stateful_set: Mapping[str, Any] | None) -> str:
    """The config hash of the StatefulSet's pod template ("" when there is none)."""
    if stateful_set is None:
        return ""
    annotations = stateful_set["spec"]["template"].get("metadata", {}).get("annotations") or {}
    return str(annotations.get(names.CONFIG_HASH_ANNOTATION, ""))


def stateful_set_path(simulation: SimulationRef) -> str:
    return object_path(
        "apps/v1", "StatefulSet", simulation.namespace, names.statefulset_name(simulation.name)
    )


class ClusterView:
    """The reads of one reconcile of ``simulation``: from ``trigger`` where it has seen the
    object, else from the API through ``kube``."""

    def __init__(self, kube: Kube, simulation: SimulationRef, trigger: Trigger) -> None:
        self._kube = kube
        self.simulation = simulation
        self.trigger = trigger

    def stateful_set(self) -> dict[str, Any] | None:
        """The simulation's StatefulSet as the watches saw it, or read now."""
        sts_ref = {
            "kind": "StatefulSet",
            "metadata": {
                "name": names.statefulset_name(self.simulation.name),
                "namespace": self.simulation.namespace,
            },
        }
        observed = self.trigger.observed
        seen = observed.child(sts_ref) if observed is not None else None
        if seen is not None:
            return dict(seen)
        return self._kube.get(stateful_set_path(self.simulation))

    def current(self, manifest: Manifest) -> dict[str, Any] | None:
        """The object ``manifest`` describes as it is now: the trigger's when it brought it.
        One the watches have not seen is read: it may exist without the operator's labels."""
        known, current = self.trigger.current(manifest)
        if known:
            return None if current is None else dict(current)
        return self._kube.get(manifest_path(manifest))

    def pods(self) -> list[dict[str, Any]]:
        """The simulation's producer pods, terminating ones included."""
        if self.trigger.observed is not None:
            return [dict(pod) for pod in self.trigger.observed.pods]
        return self._kube.list_pods(
            self.simulation.namespace, names.selector_string(self.simulation.name)
        )

    def reference_digest(
        self, spec: SimulationSpec, existing: Mapping[str, Any] | None
    ) -> str | None:
        """The digest of the referenced CSV as the ConfigMap holds it now. When the ConfigMap
        cannot be read (absent, or the operator may not read it), the digest the running
        template was built with: content the operator cannot see is taken as unchanged, so a
        ConfigMap deleted for a moment does not stop the pods that already read it."""
        if spec.reference_data is None:
            return None
        config_map_path = object_path(
            "v1", "ConfigMap", self.simulation.namespace, spec.reference_data.config_map_name
        )
        try:
            config_map = self._kube.get(config_map_path)
        except KubeError as error:
            if error.status != 403:
                raise
            config_map = None
        if config_map is None:
            return known_digest(existing)
        return reference_data_digest(config_map, spec.reference_data.key)
