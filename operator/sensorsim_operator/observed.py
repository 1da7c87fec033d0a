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
from typing import Any

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
