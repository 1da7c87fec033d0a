"""The objects the operator's watches keep in memory, by simulation: its labelled children
(ConfigMap, Service, StatefulSet) and its producer pods.

kopf indexes fed by the watches hold them (handlers.py registers the indexes); a reconcile takes
a snapshot (:class:`Observed`) on the event loop and reads it in its worker thread, so no event
reconciles with a list call. kopf invokes no handler before every indexed resource has been
listed once, so the first reconciles already see every existing child and pod.

A watch may lag behind the API server by an event: a reconcile can see a child or a pod a moment
older than it is. Every decision taken from the snapshot is safe for that: a child that differs
is applied (server-side apply changes nothing when it is in fact the same), a handover waits for
pods it still sees, and the scale-down carries the StatefulSet's resourceVersion as a
precondition. The event that brings the newer state marks the simulation dirty again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sensorsim_operator import names
from sensorsim_operator.children.conformance import same_object
from sensorsim_operator.children.ownership import controller_owner

Key = tuple[str, str]
"""(namespace, simulation name)."""


def trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """An object as the index keeps it: without ``managedFields``, the bulk of a pod's
    metadata that no reconcile reads."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {**body, "metadata": meta}


_POD_METADATA: Final = ("name", "namespace", "uid", "labels", "deletionTimestamp")
_POD_SPEC: Final = ("nodeName", "terminationGracePeriodSeconds")
_POD_STATUS: Final = ("phase", "reason", "message")
_CONTAINER_STATUS: Final = ("name", "state", "lastState")


def pod_summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """A producer pod as the index keeps it: only what reconciles read from it (its identity and
    labels, its stream-hash annotation, whether it terminates, its node and grace period, and
    what pod_problems.py reads from its status). A simulation of a thousand pods is held in a
    fraction of the memory the full objects take."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    annotations = meta.get("annotations") or {}
    return {
        "apiVersion": body.get("apiVersion", "v1"),
        "kind": body.get("kind", "Pod"),
        "metadata": {
            **{key: meta[key] for key in _POD_METADATA if key in meta},
            "annotations": {
                key: value
                for key, value in annotations.items()
                if key == names.STREAM_HASH_ANNOTATION
            },
        },
        "spec": {key: spec[key] for key in _POD_SPEC if key in spec},
        "status": {
            **{key: status[key] for key in _POD_STATUS if key in status},
            "conditions": [
                condition
                for condition in status.get("conditions") or ()
                if condition.get("type") == "PodScheduled"
            ],
            "containerStatuses": [
                {key: container[key] for key in _CONTAINER_STATUS if key in container}
                for container in status.get("containerStatuses") or ()
            ],
        },
    }


def child_key(body: Mapping[str, Any]) -> Key | None:
    """The simulation that controls a child, or None when no simulation does."""
    namespace = (body.get("metadata") or {}).get("namespace")
    owner = controller_owner(body)
    return (namespace, owner) if namespace and owner else None


def pod_key(body: Mapping[str, Any]) -> Key | None:
    """The simulation a producer pod belongs to (its instance label)."""
    meta = body.get("metadata") or {}
    simulation = (meta.get("labels") or {}).get(names.INSTANCE_LABEL)
    namespace = meta.get("namespace")
    return (namespace, simulation) if namespace and simulation else None


@dataclass(frozen=True, slots=True)
class Observed:
    """A simulation's children and producer pods as the watches last saw them."""

    children: Sequence[Mapping[str, Any]] = ()
    pods: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def of(
        cls, children: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
    ) -> Observed:
        return cls(children=tuple(children), pods=tuple(pods))

    def child(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The object ``manifest`` describes, when a watch has seen it."""
        return next((obj for obj in self.children if same_object(manifest, obj)), None)
