"""When a spec change must stop every old producer pod before a new one starts, and how far
that handover is.

Each pod carries the stream hash of the template it was made from (``sensorsim.io/stream-hash``,
built in ``children/stream_hash.py``): a digest of everything that decides which machines it
emits and what they emit. A rolling update replaces pods one by one, so for a while pods of the
old and the new template run side by side. That is harmless when they emit the same streams
(each ordinal keeps its machines, and the StatefulSet deletes a pod before it creates its
replacement), but not when the stream hash differs: two pods would emit overlapping machines,
or the same machine under two configurations. Such a change is handed over instead: the old
StatefulSet is scaled to 0 with its old template (each pod checkpoints its machines at
SIGTERM), and the new template is applied only when no pod of another stream is left and the
StatefulSet controller has seen the scale-down.

The decision is made from the pods that exist, terminating ones included, and never from the
StatefulSet's template alone: a StatefulSet deleted in the middle of a handover is not
re-created beside the old pods that still stop.

Pure: the caller reads the StatefulSet and its pods and carries out what is decided here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from domain import settings_vocabulary as vocabulary
from sensorsim_operator import names

# The deadline of a handover is counted in the old pods' grace periods: two of them (SIGTERM to
# SIGKILL, and as long again for the kubelet and the controller to notice) plus this margin.
DEADLINE_MARGIN: Final = timedelta(seconds=60)
_MOST_NAMED: Final = 5


@dataclass(frozen=True, slots=True)
class StoppingPod:
    """A producer pod of another stream configuration that must be gone before the handover
    ends."""

    name: str
    node: str | None
    terminating: bool
    grace_seconds: int

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> StoppingPod:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        grace = spec.get("terminationGracePeriodSeconds")
        return cls(
            name=str(meta.get("name", "?")),
            node=spec.get("nodeName") or None,
            terminating=bool(meta.get("deletionTimestamp")),
            grace_seconds=(
                int(grace) if grace is not None else vocabulary.DEFAULT_SHUTDOWN_GRACE_SECONDS
            ),
        )

    def describe(self) -> str:
        where = f"on node {self.node}" if self.node else "not scheduled"
        return f"{self.name} ({where}{', terminating' if self.terminating else ''})"


@dataclass(frozen=True, slots=True)
class Handover:
    """A stream change in progress: the old pods are stopping, the new template waits."""

    stopping: tuple[StoppingPod, ...]  # pods of another stream configuration still present
    scale_down: bool  # the existing StatefulSet still asks for pods: set its replicas to 0
    stateful_set_missing: bool  # pods remain of a StatefulSet that is gone

    @property
    def deadline(self) -> timedelta:
        """How long the handover may take before it counts as stuck."""
        grace = max(
            (pod.grace_seconds for pod in self.stopping),
            default=vocabulary.DEFAULT_SHUTDOWN_GRACE_SECONDS,
        )
        return 2 * timedelta(seconds=grace) + DEADLINE_MARGIN

    def _pods(self) -> str:
        shown = ", ".join(pod.describe() for pod in self.stopping[:_MOST_NAMED])
        more = len(self.stopping) - _MOST_NAMED
        return shown + (f" and {more} more" if more > 0 else "")

    @property
    def message(self) -> str:
        if not self.stopping:
            return (
                "stream configuration changed: waiting for the StatefulSet controller to "
                "observe the scale-down before the new pods start"
            )
        where = (
            "the StatefulSet is missing; not re-creating it while pods of the previous "
            "stream configuration remain"
            if self.stateful_set_missing
            else "stream configuration changed: stopping every old pod before a new one starts"
        )
        return (
            f"{where}; waiting for {len(self.stopping)} pods to stop and checkpoint: {self._pods()}"
        )

    def stuck_message(self, waited: timedelta) -> str:
        """The Degraded message once the deadline has passed: which pods (on which nodes) hold
        the handover, and what to do."""
        if not self.stopping:
            return (
                f"handover waiting for {int(waited.total_seconds())}s (deadline "
                f"{int(self.deadline.total_seconds())}s) for the StatefulSet controller to "
                "observe the scale-down: check kube-controller-manager"
            )
        return (
            f"handover held for {int(waited.total_seconds())}s (deadline "
            f"{int(self.deadline.total_seconds())}s) by pods that do not stop: {self._pods()}; "
            "no new pod starts while one of them may still emit. If a node is lost, "
            "`kubectl delete pod --force` its pods once it is known dead"
        )


def stream_hash_of(pod_or_template: Mapping[str, Any]) -> str:
    """The stream hash a pod or a pod template carries; empty when it carries none (made by an
    operator release before the hash existed, so of another stream configuration)."""
    annotations = (pod_or_template.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(names.STREAM_HASH_ANNOTATION, ""))


def _int(mapping: Mapping[str, Any], key: str) -> int:
    return int(mapping.get(key, 0) or 0)


def scaled_to_zero(stateful_set: Mapping[str, Any]) -> bool:
    """True when the StatefulSet asks for no pod and its controller has seen that and reports
    none: it will create no pod from its template any more."""
    spec, status = stateful_set.get("spec") or {}, stateful_set.get("status") or {}
    generation = _int(stateful_set.get("metadata") or {}, "generation")
    seen = _int(status, "observedGeneration") >= generation
    return _int(spec, "replicas") == 0 and _int(status, "replicas") == 0 and seen


def pending_handover(
    existing: Mapping[str, Any] | None,
    desired: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
) -> Handover | None:
    """The handover that must finish before ``desired`` may be applied over ``existing`` (the
    StatefulSet as it is now, None when absent), or None when it may be applied now.

    ``pods`` are the simulation's producer pods, terminating ones included. A change that keeps
    the stream hash returns None (the StatefulSet rolls it pod by pod).
    """
    wanted = stream_hash_of(desired["spec"]["template"])
    stale = tuple(
        StoppingPod.of(pod)
        for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", "")))
        if stream_hash_of(pod) != wanted
    )
    if existing is None:
        # Pods of the desired stream are adopted by the new StatefulSet; others must go first.
        if not stale:
            return None
        return Handover(stopping=stale, scale_down=False, stateful_set_missing=True)
    template = (existing.get("spec") or {}).get("template") or {}
    if not stale and stream_hash_of(template) == wanted:
        return None
    if not stale and scaled_to_zero(existing):
        return None
    replicas = _int(existing.get("spec") or {}, "replicas")
    return Handover(stopping=stale, scale_down=replicas > 0, stateful_set_missing=False)
