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
one stream hash; without quiet only exact equality of the read fields drops an event. The
events that arrive while a reconcile runs are held and judged when it ends, against what it
saw (its snapshot, and its applies' results) and the quiet it found. A dropped event's state is
therefore always one a reconcile has seen, or equivalent to it for every read.

Called on the event loop only (the events, and the work queue before and after each reconcile).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


Ident = tuple[str, str, str]
"""(kind, namespace, name) of a child."""


@dataclass(slots=True)
class _HeldChild:
    """The events of one child that arrived while a reconcile of its simulation ran: the child
    as that reconcile's snapshot had it, as the events left it, and its reading at each
    resourceVersion, so that the reconcile's own apply is found among them."""

    before: ChildReading | None
    after: ChildReading | None = None
    versions: dict[str, ChildReading] = field(default_factory=dict)


@dataclass(slots=True)
class _Held:
    """A simulation's events held while its reconcile runs."""

    children: dict[Ident, _HeldChild] = field(default_factory=dict)
    pods: dict[str, tuple[PodReading | None, PodReading | None]] = field(default_factory=dict)


class Relevance:
    """The readings of the children and pods seen last, what the operator wrote, and which
    simulations are quiet; decides which events mark a simulation dirty.

    Events of a simulation whose reconcile runs are held, and judged when it ends
    (:meth:`reconciled`) against what it saw: the snapshot it started from, and the children as
    its applies returned them. So the echo of an apply that arrives before the apply's response,
    and a status step that settles nothing, do not cost another reconcile.
    """

    def __init__(self) -> None:
        self._pods: dict[str, PodReading] = {}
        self._children: dict[Ident, ChildReading] = {}
        self._written: dict[Ident, str] = {}
        self._quiet: dict[Key, str] = {}
        self._held: dict[Key, _Held] = {}

    def reconciling(self, key: Key) -> None:
        """A reconcile of ``key`` starts (its snapshot is taken now): its simulation's events
        are held until :meth:`reconciled`."""
        self._quiet.pop(key, None)
        self._held[key] = _Held()

    def reconciled(
        self,
        key: Key,
        quiet_stream: str | None,
        written: Sequence[tuple[str, str, str, str]] = (),
    ) -> str | None:
        """The reconcile of ``key`` ended: quiet at ``quiet_stream`` (None: not quiet, also when
        it failed), having applied ``written`` ((kind, namespace, name, resourceVersion) each).
        Returns the trigger ("child" or "pod") when a held event still matters, else None."""
        for kind, namespace, name, version in written:
            self._written[(kind, namespace, name)] = version
        if quiet_stream is None:
            self._quiet.pop(key, None)
        else:
            self._quiet[key] = quiet_stream
        held = self._held.pop(key, _Held())
        for ident, child in held.children.items():
            applied = child.versions.get(self._written.get(ident, ""))
            before = applied if applied is not None else child.before
            if child_event_matters(before, child.after, quiet=quiet_stream is not None):
                return "child"
        for before_pod, after_pod in held.pods.values():
            if pod_event_matters(before_pod, after_pod, quiet_stream=quiet_stream):
                return "pod"
        return None

    def pod_event(self, pod: Mapping[str, Any], *, deleted: bool) -> bool:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        after = None if deleted else pod_reading(pod)
        before = self._pods.pop(uid, None)
        if after is not None:
            self._pods[uid] = after
        key = pod_key(pod)
        if key is not None and key in self._held:
            pods = self._held[key].pods
            pods[uid] = (pods[uid][0] if uid in pods else before, after)
            return False
        quiet = self._quiet.get(key) if key is not None else None
        return pod_event_matters(before, after, quiet_stream=quiet)

    def child_event(self, child: Mapping[str, Any], *, deleted: bool) -> bool:
        meta = child.get("metadata") or {}
        ident = (
            str(child.get("kind", "")),
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
        )
        before = self._children.pop(ident, None)
        after = None if deleted else ChildReading.of(child)
        if after is not None:
            self._children[ident] = after
        key = child_key(child)
        if key is not None and key in self._held:
            held = self._held[key].children.setdefault(ident, _HeldChild(before))
            held.after = after
            if after is not None:
                held.versions[str(meta.get("resourceVersion", ""))] = after
            return False
        if deleted:
            self._written.pop(ident, None)
            return True
        if self._written.get(ident) == meta.get("resourceVersion"):
            return False  # the echo of the operator's own apply
        quiet = key is not None and key in self._quiet
        return child_event_matters(before, after, quiet=quiet)
