"""What a reconcile writes: the children it applies, the handover's scale-down, and the
simulation's status with an Event for each condition that changed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sensorsim_operator.api.simulation_status import SimulationStatus
from sensorsim_operator.children.identity import Manifest
from sensorsim_operator.condition_events import transition_events
from sensorsim_operator.kube import Kube, KubeError, manifest_path
from sensorsim_operator.statuses import Failure, invalid_spec_status, parse_status, status_body

log = logging.getLogger(__name__)


class ChildWriter:
    """Applies children and scales the StatefulSet through a :class:`Kube`."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def apply_all(
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

    def scale_to_zero(self, path: str, existing: Mapping[str, Any]) -> Failure | None:
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


class StatusWriter:
    """Writes a simulation's status through a :class:`Kube`, then posts an Event for each
    condition whose status changed."""

    def __init__(self, kube: Kube, clock: Callable[[], datetime]) -> None:
        self._kube = kube
        self._clock = clock

    def write(
        self,
        path: str,
        obj: Mapping[str, Any],
        previous: SimulationStatus | None,
        status: SimulationStatus,
    ) -> None:
        self._kube.patch_status(path, status_body(status))
        for event in transition_events(obj, previous, status, self._clock()):
            self._kube.post_event(event)

    def report_invalid_spec(self, path: str, obj: Mapping[str, Any], message: str) -> None:
        """Degraded with reason InvalidSpec, the rest of the status as it was."""
        previous = parse_status(obj.get("status"))
        status = invalid_spec_status(
            previous,
            message=message,
            generation=int(obj["metadata"].get("generation", 0)),
            now=self._clock(),
        )
        if status != previous:
            self.write(path, obj, previous, status)
