"""Which watch events may change what a reconcile does or the status it writes; the others
mark no simulation dirty.

A reconcile reads, from a StatefulSet, its metadata and spec (conformance, ownership, the
template's hashes) and of its status only what :class:`RolloutState` and ``scaled_to_zero``
read; from a pod, its stream hash, whether it terminates and its problem (pods becoming Ready
reach the status through their StatefulSet's status). An event is dropped when what it brings
reads the same as the object's previous event:

- a child event that only echoes the operator's own apply (the resourceVersion it returned);
- a StatefulSet status step that changes no count and no flag the status is computed from
  (``availableReplicas``, ``currentReplicas``, ``collisionCount``, the revisions' names, an
  ``observedGeneration`` that settles nothing);
- a pod event that changes no problem, of a pod of the stream configuration its simulation is
  quiet at (see below): such a pod appearing, terminating or going changes neither the handover
  decision (only pods of another stream hold one) nor the status.

*Quiet* is what the simulation's last reconcile found: its StatefulSet applied as desired (so
the desired replicas are the StatefulSet's own ``spec.replicas``), no handover, no failure, at
one stream hash. A reconcile that starts ends the quiet until it succeeds, so every event that
arrives while one runs marks the simulation dirty again; without quiet only exact equality of
the read fields drops an event. A dropped event's state is therefore always one a reconcile has
seen, or equivalent to it.

Called from the event loop (events, :meth:`Relevance.reconciling`) and the reconciles' threads
(:meth:`Relevance.wrote`, :meth:`Relevance.reconciled`): each call is a few dict operations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sensorsim_operator.handover import scaled_to_zero, stream_hash_of
from sensorsim_operator.observed import Key, child_key, pod_key
from sensorsim_operator.pod_problems import PodProblem, pod_problems
from sensorsim_operator.statuses import RolloutState

_UNREAD_METADATA = frozenset({"resourceVersion", "managedFields"})


Rollout = tuple[int, int, int, bool, bool]


@dataclass(frozen=True, slots=True)
class ChildReading:
    """What reconciles read from a child. ``rest`` digests everything but its status (and the
    resourceVersion and managedFields, which every write changes). Of a StatefulSet's status:
    ``rollout``, the fields the status and the handover read (replicas, ready, updated, whether
    its controller has seen its generation, whether the revisions agree), and ``quiet_rollout``,
    what they make of them when the desired replicas are the StatefulSet's own (the counts,
    settled, scaled to zero)."""

    rest: str
    rollout: Rollout | None = None
    quiet_rollout: Rollout | None = None

    @classmethod
    def of(cls, child: Mapping[str, Any]) -> ChildReading:
        meta = {k: v for k, v in (child.get("metadata") or {}).items() if k not in _UNREAD_METADATA}
        body = {k: v for k, v in child.items() if k != "status"}
        body["metadata"] = meta
        is_stateful_set = child.get("kind") == "StatefulSet"
        if not is_stateful_set:
            body["status"] = child.get("status")
        text = json.dumps(body, sort_keys=True, default=str)
        rest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        if not is_stateful_set:
            return cls(rest)
        status = child.get("status") or {}
        generation = int(meta.get("generation", 0) or 0)
        desired = int((child.get("spec") or {}).get("replicas", 0) or 0)
        rollout = RolloutState.of(child, desired=desired)
        return cls(
            rest,
            rollout=(
                rollout.replicas,
                rollout.ready,
                rollout.updated,
                int(status.get("observedGeneration", 0) or 0) >= generation,
                status.get("currentRevision") == status.get("updateRevision"),
            ),
            quiet_rollout=(
                rollout.replicas,
                rollout.ready,
                rollout.updated,
                rollout.settled,
                scaled_to_zero(child),
            ),
        )


def child_event_matters(
    before: ChildReading | None, after: ChildReading | None, *, quiet: bool
) -> bool:
    """Whether a child going from ``before`` to ``after`` (None: unseen, or deleted) may change
    what a reconcile of its simulation does or writes; ``quiet``: the simulation is quiet."""
    if before is None or after is None:
        return True
    if before.rest != after.rest:
        return True
    if not quiet:
        return before.rollout != after.rollout
    return before.quiet_rollout != after.quiet_rollout


PodReading = tuple[str, bool, tuple[PodProblem, ...]]
"""A pod's stream hash, whether it terminates, its problem."""


def pod_reading(pod: Mapping[str, Any]) -> PodReading:
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    return stream_hash_of(pod), terminating, tuple(pod_problems([pod]))


def pod_event_matters(
    before: PodReading | None, after: PodReading | None, *, quiet_stream: str | None
) -> bool:
    """Whether a pod going from ``before`` to ``after`` (None: unseen, or deleted) may change
    what a reconcile of its simulation does or writes; ``quiet_stream``: the stream hash the
    simulation is quiet at (None when it is not quiet)."""
    if before is None and after is None:
        return True  # the deletion of a pod never seen: nothing to compare with
    if before == after:
        return False
    problems_before = before[2] if before is not None else ()
    problems_after = after[2] if after is not None else ()
    if problems_before != problems_after:
        return True
    streams = {reading[0] for reading in (before, after) if reading is not None}
    return quiet_stream is None or streams != {quiet_stream}


class Relevance:
    """The readings of the children and pods seen last, what the operator wrote, and which
    simulations are quiet; decides which events mark a simulation dirty."""

    def __init__(self) -> None:
        self._pods: dict[str, PodReading] = {}
        self._children: dict[tuple[str, str, str], ChildReading] = {}
        self._written: dict[tuple[str, str, str], str] = {}
        self._quiet: dict[Key, str] = {}

    def reconciling(self, key: Key) -> None:
        """A reconcile of ``key`` starts: every event until it succeeds matters."""
        self._quiet.pop(key, None)

    def reconciled(self, key: Key, quiet_stream: str | None) -> None:
        """A reconcile of ``key`` succeeded; quiet at ``quiet_stream`` unless None."""
        if quiet_stream is None:
            self._quiet.pop(key, None)
        else:
            self._quiet[key] = quiet_stream

    def wrote(self, kind: str, namespace: str, name: str, resource_version: str) -> None:
        self._written[(kind, namespace, name)] = resource_version

    def pod_event(self, pod: Mapping[str, Any], *, deleted: bool) -> bool:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        after = None if deleted else pod_reading(pod)
        before = self._pods.pop(uid, None)
        if after is not None:
            self._pods[uid] = after
        key = pod_key(pod)
        quiet = self._quiet.get(key) if key is not None else None
        return pod_event_matters(before, after, quiet_stream=quiet)

    def child_event(self, child: Mapping[str, Any], *, deleted: bool) -> bool:
        meta = child.get("metadata") or {}
        ident = (
            str(child.get("kind", "")),
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
        )
        if deleted:
            self._written.pop(ident, None)
            self._children.pop(ident, None)
            return True
        after = ChildReading.of(child)
        before = self._children.get(ident)
        self._children[ident] = after
        if self._written.get(ident) == meta.get("resourceVersion"):
            return False  # the echo of the operator's own apply
        key = child_key(child)
        quiet = key is not None and key in self._quiet
        return child_event_matters(before, after, quiet=quiet)
