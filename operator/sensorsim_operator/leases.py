"""Leader election over a coordination.k8s.io/v1 Lease: the record and the decisions, no I/O.

The rules are client-go's (``k8s.io/client-go/tools/leaderelection``):

- A candidate takes the Lease when nobody holds it (no Lease, an empty holder: released) or when
  the holder has not changed the record for ``leaseDurationSeconds``.
- "Not changed for" is measured on the candidate's own monotonic clock, from the moment *it*
  first saw the current record: the ``renewTime`` written by another host is informative only,
  so clock skew between hosts never shortens a lease.
- Every write carries the resourceVersion it read: of two candidates racing for one Lease, the
  API server lets one win and refuses the other (409 Conflict).
- The leader renews every retry period and gives up when it could not renew for the renew
  deadline, which is shorter than the lease duration: a leader that lost contact has stopped
  before anyone may take over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

LEASE_API_VERSION = "coordination.k8s.io/v1"


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The spec of a Lease, as the election reads and writes it."""

    holder: str  # empty: nobody (released, or never held)
    duration_seconds: int
    acquire_time: str = ""
    renew_time: str = ""
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


@dataclass(frozen=True, slots=True)
class StoredLease:
    """A Lease as read from (or written to) the API server."""

    record: LeaseRecord
    resource_version: str


def lease_manifest(namespace: str, name: str, record: LeaseRecord) -> dict[str, Any]:
    return {
        "apiVersion": LEASE_API_VERSION,
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": record.spec(),
    }


def stored_lease(obj: Mapping[str, Any]) -> StoredLease:
    return StoredLease(
        record=LeaseRecord.from_spec(obj.get("spec")),
        resource_version=str(obj["metadata"]["resourceVersion"]),
    )


class Verdict(Enum):
    """What a candidate may do with the Lease it just read."""

    TAKE = "take"  # nobody holds it, or its holder let it expire: write ourselves in
    RENEW = "renew"  # we hold it: write a new renewTime
    WAIT = "wait"  # someone else holds it and renewed it within its duration


class Candidate:
    """One process's view of the Lease: what it saw last and when (on its monotonic clock)."""

    def __init__(self, identity: str, lease_duration_seconds: int) -> None:
        self.identity = identity
        self.lease_duration_seconds = lease_duration_seconds
        self.observed: LeaseRecord | None = None
        self.observed_at = 0.0

    def observe(self, record: LeaseRecord, now: float) -> None:
        """Note ``record`` as read (or written) at monotonic time ``now``; the clock of the
        holder starts only when the record changes."""
        if record != self.observed:
            self.observed = record
            self.observed_at = now

    def verdict(self, now: float) -> Verdict:
        record = self.observed
        if record is None or not record.holder:
            return Verdict.TAKE
        if record.holder == self.identity:
            return Verdict.RENEW
        if now < self.observed_at + record.duration_seconds:
            return Verdict.WAIT
        return Verdict.TAKE

    @property
    def holder(self) -> str:
        """The holder in the record last seen (empty: nobody)."""
        return self.observed.holder if self.observed else ""

    def claim(self, wall: datetime) -> LeaseRecord:
        """The record that makes (or keeps) this candidate the holder."""
        now = micro_time(wall)
        previous = self.observed
        if previous is not None and previous.holder == self.identity:
            return replace(previous, duration_seconds=self.lease_duration_seconds, renew_time=now)
        transitions = previous.transitions + 1 if previous is not None else 0
        return LeaseRecord(
            holder=self.identity,
            duration_seconds=self.lease_duration_seconds,
            acquire_time=now,
            renew_time=now,
            transitions=transitions,
        )

    def release(self, wall: datetime) -> LeaseRecord | None:
        """The record that gives the Lease up at once (an empty holder), or None when this
        candidate does not hold it."""
        previous = self.observed
        if previous is None or previous.holder != self.identity:
            return None
        now = micro_time(wall)
        return replace(previous, holder="", duration_seconds=1, acquire_time=now, renew_time=now)
