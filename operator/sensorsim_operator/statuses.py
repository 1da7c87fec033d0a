"""Pure computation of a SensorSimulation's status from its spec and its StatefulSet.

Conditions follow the Kubernetes API conventions: ``lastTransitionTime`` changes only when a
condition's status changes, so recomputing an unchanged state yields an identical status (and
the operator then skips the write). The clock is a parameter, never read here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from domain.partitioning import shard_table
from sensorsim_operator import names, pod_problems
from sensorsim_operator.api.kubernetes_types import MAX_SAFE_INTEGER
from sensorsim_operator.api.simulation_status import (
    Condition,
    ConditionStatus,
    ConditionType,
    ScenarioState,
    ScenarioStatus,
    ShardStatus,
    SimulationStatus,
)
from sensorsim_operator.api.v1alpha1 import SimulationSpec
from sensorsim_operator.handover import Handover
from sensorsim_operator.pod_problems import PodProblem

log = logging.getLogger(__name__)

# Like a Deployment's progressDeadlineSeconds: pods that are still not Ready this long after
# the rollout began make the simulation Degraded instead of merely Progressing.
PROGRESS_DEADLINE: Final = timedelta(minutes=10)


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp format: UTC, seconds, a 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the children could not be applied: a CamelCase reason (ReconcileFailed,
    ChildNameConflict, MemoryBelowNeed) and a message saying what to do; ``retry`` says if
    trying again without a spec change may help."""

    reason: str
    message: str
    retry: bool = True


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the StatefulSet says about its pods, reduced to what the conditions need."""

    exists: bool
    desired: int
    replicas: int
    ready: int
    updated: int
    settled: bool  # its controller has seen the latest spec and every pod runs the new revision

    @classmethod
    def of(cls, stateful_set: Mapping[str, Any] | None, desired: int) -> RolloutState:
        if stateful_set is None:
            return cls(exists=False, desired=desired, replicas=0, ready=0, updated=0, settled=False)
        status = stateful_set.get("status") or {}
        generation = int(stateful_set.get("metadata", {}).get("generation", 0))
        replicas = int(status.get("replicas", 0))
        updated = int(status.get("updatedReplicas", 0))
        seen = int(status.get("observedGeneration", 0)) >= generation
        same_revision = status.get("currentRevision") == status.get("updateRevision")
        all_updated = desired == 0 or (updated == desired and same_revision)
        settled = seen and replicas == desired and all_updated
        return cls(
            exists=True,
            desired=desired,
            replicas=replicas,
            ready=int(status.get("readyReplicas", 0)),
            updated=updated,
            settled=settled,
        )

    @property
    def complete(self) -> bool:
        return self.settled and self.ready == self.desired


def _condition(
    previous: Sequence[Condition],
    kind: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> Condition:
    before = next((c for c in previous if c.type == kind), None)
    since = before.last_transition_time if before and before.status == status else rfc3339(now)
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _progressing_since(
    previous: Sequence[Condition], since: str | None, generation: int
) -> str | None:
    """When the rollout of ``generation`` began, if it was already progressing: None on the
    first visit of a generation. The Progressing condition's lastTransitionTime cannot tell,
    since a spec change in the middle of a rollout leaves it True (and the time unchanged)."""
    progressing = next((c for c in previous if c.type == "Progressing"), None)
    if progressing is None or progressing.observed_generation != generation:
        return None
    if progressing.status != "True":
        return None
    # A status without progressingSince: the rollout began at the transition time.
    return since or progressing.last_transition_time


def _stuck(
    previous: Sequence[Condition], since: str | None, generation: int, now: datetime
) -> bool:
    """True when this generation has been Progressing for longer than the deadline (a new
    generation, e.g. the fix of a bad image, starts a new deadline)."""
    progressing = next((c for c in previous if c.type == "Progressing"), None)
    if progressing is None or progressing.observed_generation != generation:
        return False
    if progressing.reason == "ProgressDeadlineExceeded":
        return True
    started = _progressing_since(previous, since, generation)
    return started is not None and now - _parse_time(started) > PROGRESS_DEADLINE


_Make = Callable[[ConditionType, ConditionStatus, str, str], Condition]


def _rolling_out(
    make: _Make, rollout: RolloutState, counts: str, *, stuck: bool
) -> tuple[Condition, Condition]:
    """Ready and Progressing while the pods are being replaced or are not all Ready yet."""
    waiting = "RollingOut" if not rollout.settled else "WaitingForPods"
    detail = (
        f"{rollout.updated}/{rollout.desired} pods updated, {counts}"
        if waiting == "RollingOut"
        else counts
    )
    ready = make("Ready", "False", waiting, detail)
    if stuck:
        return ready, make(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f"{detail} after {int(PROGRESS_DEADLINE.total_seconds())}s",
        )
    return ready, make("Progressing", "True", waiting, detail)


def conditions(
    spec: SimulationSpec,
    rollout: RolloutState,
    previous: Sequence[Condition],
    *,
    generation: int,
    now: datetime,
    failure: Failure | None = None,
    progressing_since: str | None = None,
    problems: Sequence[PodProblem] = (),
    handover: Handover | None = None,
    handover_stuck: str | None = None,
) -> list[Condition]:
    """Ready, Progressing and Degraded, in that order. Degraded says the most pressing problem:
    a reconcile failure, then a handover past its deadline (``handover_stuck`` says who holds
    it), then pods that cannot run, then a rollout past its deadline."""

    def make(kind: ConditionType, status: ConditionStatus, reason: str, message: str) -> Condition:
        return _condition(previous, kind, status, reason, message, generation=generation, now=now)

    counts = f"{rollout.ready}/{rollout.desired} producer pods ready"
    if spec.suspend:
        ready = make("Ready", "False", "Suspended", "spec.suspend is true: scaled to 0 pods")
        if rollout.replicas == 0:
            progressing = make("Progressing", "False", "Suspended", "all producer pods stopped")
        else:
            progressing = make(
                "Progressing", "True", "ScalingDown", f"{rollout.replicas} pods still stopping"
            )
    elif handover is not None:
        ready = make("Ready", "False", "Handover", handover.message)
        progressing = make("Progressing", "True", "Handover", handover.message)
    elif not rollout.exists:
        ready = make("Ready", "False", "StatefulSetMissing", "the producer StatefulSet is absent")
        progressing = make("Progressing", "True", "Creating", "creating the producer StatefulSet")
    elif rollout.complete:
        ready = make("Ready", "True", "AllShardsReady", f"{counts}, each owning its machines")
        progressing = make("Progressing", "False", "RolloutComplete", counts)
    else:
        stuck = _stuck(previous, progressing_since, generation, now)
        ready, progressing = _rolling_out(make, rollout, counts, stuck=stuck)

    if failure is not None:
        degraded = make("Degraded", "True", failure.reason, failure.message)
    elif handover_stuck is not None:
        degraded = make("Degraded", "True", "HandoverStuck", handover_stuck)
    elif problems:
        degraded = make("Degraded", "True", *pod_problems.summary(list(problems)))
    elif progressing.reason == "ProgressDeadlineExceeded":
        degraded = make("Degraded", "True", "ProgressDeadlineExceeded", progressing.message)
    else:
        degraded = make("Degraded", "False", "AsExpected", "no problem detected")
    return [ready, progressing, degraded]


def shards(simulation: str, spec: SimulationSpec) -> list[ShardStatus]:
    """Which pod owns which machines: the same partition function the producers use."""
    if spec.suspend:
        return []
    return [
        ShardStatus(
            ordinal=part.shard,
            pod=names.pod_name(simulation, part.shard),
            start=part.start,
            stop=part.stop,
        )
        for part in shard_table(spec.machines, spec.replicas)
    ]


def scenario_states(
    spec: SimulationSpec, created: str | None, now: datetime
) -> tuple[list[ScenarioStatus], str | None]:
    """Each scenario's state at the cycle due ``now`` by the resource's creation time and
    ``intervalMs`` (an interval changed on the way shifts it; a start time counts as such)."""
    if not spec.scenarios:
        return [], None
    interval = spec.interval_ms / 1000
    epoch = _parse_time(created) if created else None
    cycle = None
    if epoch is not None and interval > 0:
        cycle = max(0, math.floor((now - epoch).total_seconds() / interval))
    states = []
    for scenario in spec.scenarios:
        start = scenario.start_cycle
        if start is None and scenario.start_time is not None and epoch is not None and interval:
            start = max(0, math.ceil((scenario.start_time - epoch).total_seconds() / interval))
        end = None if start is None else min(start + scenario.cycles, MAX_SAFE_INTEGER)
        state: ScenarioState = "upcoming"
        if cycle is not None and start is not None and end is not None:
            state = "done" if cycle >= end else "active" if cycle >= start else "upcoming"
        states.append(
            ScenarioStatus(
                name=scenario.label(),
                kind=scenario.kind,
                start_cycle=start,
                end_cycle=end,
                state=state,
            )
        )
    active = sum(s.state == "active" for s in states)
    upcoming = sum(s.state == "upcoming" for s in states)
    return states, f"{active} active, {upcoming} upcoming"


def compute_status(
    *,
    simulation: str,
    spec: SimulationSpec,
    generation: int,
    config_hash: str,
    stateful_set: Mapping[str, Any] | None,
    previous: SimulationStatus | None,
    now: datetime,
    failure: Failure | None = None,
    problems: Sequence[PodProblem] = (),
    handover: Handover | None = None,
    created: str | None = None,
) -> SimulationStatus:
    """The whole status (``created``: the resource's creationTimestamp, the schedule's epoch).

    ``generation`` is the simulation's metadata.generation the children were built from;
    ``failure`` says why applying them failed or was refused (the simulation is then
    Degraded); ``problems`` are the producer pods that cannot run; ``handover`` is the
    stream change waiting for the old pods to stop (Progressing with reason Handover, and
    Degraded with reason HandoverStuck past its deadline, counted from ``handoverSince``).
    """
    previous = previous or SimulationStatus()
    rollout = RolloutState.of(stateful_set, desired=0 if spec.suspend else spec.replicas)
    handover_since = None
    handover_stuck = None
    if handover is not None:
        handover_since = previous.handover_since or rfc3339(now)
        waited = now - _parse_time(handover_since)
        if waited > handover.deadline:
            handover_stuck = handover.stuck_message(waited)
    new_conditions = conditions(
        spec,
        rollout,
        previous.conditions,
        generation=generation,
        now=now,
        failure=failure,
        progressing_since=previous.progressing_since,
        problems=problems,
        handover=handover,
        handover_stuck=handover_stuck,
    )
    progressing = next(c for c in new_conditions if c.type == "Progressing")
    since = None
    if progressing.status == "True":
        since = _progressing_since(
            previous.conditions, previous.progressing_since, generation
        ) or rfc3339(now)
    scenarios, summary = scenario_states(spec, created, now)
    return SimulationStatus(
        observed_generation=generation,
        replicas=rollout.replicas,
        ready_replicas=rollout.ready,
        selector=names.selector_string(simulation),
        shards=shards(simulation, spec),
        config_hash=config_hash,
        handover_since=handover_since,
        progressing_since=since,
        scenarios=scenarios,
        scenario_summary=summary,
        delivery_guarantee=spec.kafka.delivery_guarantee,
        conditions=new_conditions,
    )


def _spec_problem(error: Mapping[str, Any]) -> str:
    field = "spec" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    )
    value = repr(error.get("input"))
    value = value if len(value) <= 40 else value[:37] + "..."
    if error["type"] == "string_pattern_mismatch":  # the message would be a regular expression
        return f"{field}: {value} is not in the expected format"
    if error["type"] == "extra_forbidden":
        return f"{field}: unknown field, remove it"
    return f"{field}: {str(error['msg']).removeprefix('Value error, ')}"


def invalid_spec_message(error: ValidationError, *, most: int = 5) -> str:
    """What is wrong with a spec the operator cannot parse, field by field, for a condition."""
    problems = [_spec_problem(e) for e in error.errors(include_url=False)]
    more = f"; and {len(problems) - most} more" if len(problems) > most else ""
    return (
        "; ".join(problems[:most])
        + more
        + " (fix these fields; the CRD installed may be older than the operator)"
    )


def invalid_spec_status(
    previous: SimulationStatus | None, *, message: str, generation: int, now: datetime
) -> SimulationStatus:
    """The status of a simulation whose spec (of ``generation``) the operator cannot parse:
    Degraded and not Ready, everything else as it was (the children still reflect
    observedGeneration)."""
    previous = previous or SimulationStatus()

    def make(kind: ConditionType, status: ConditionStatus, text: str) -> Condition:
        return _condition(
            previous.conditions, kind, status, "InvalidSpec", text, generation=generation, now=now
        )

    return previous.model_copy(
        update={
            "progressing_since": None,
            "conditions": [
                make("Ready", "False", message),
                make("Progressing", "False", "not rolling out an invalid spec"),
                make("Degraded", "True", message),
            ],
        }
    )


def parse_status(raw: Mapping[str, Any] | None) -> SimulationStatus | None:
    """The status the object currently has; None when absent or written by something else."""
    if not raw:
        return None
    try:
        return SimulationStatus.model_validate(raw)
    except ValueError as error:
        # Rewritten from scratch below; said, so that a schema mismatch does not go unnoticed.
        log.warning(f"discarding a status that does not parse: {error}")
        return None


def status_body(status: SimulationStatus) -> dict[str, Any]:
    """The status as JSON for the API (camelCase)."""
    return status.model_dump(by_alias=True, mode="json")
