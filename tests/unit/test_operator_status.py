"""Status computation: shard table, conditions and their transition times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.partitioning import shard_table
from sensorsim_operator.api.simulation_status import Condition, SimulationStatus
from sensorsim_operator.api.v1alpha1 import SimulationSpec, parse_spec
from sensorsim_operator.statuses import (
    PROGRESS_DEADLINE,
    Failure,
    compute_status,
    invalid_spec_message,
    invalid_spec_status,
    rfc3339,
    scenario_states,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def spec_of(**changes: Any) -> SimulationSpec:
    return parse_spec(
        {"replicas": 3, "machines": 10, "kafka": {"bootstrapServers": "k:9092"}, **changes}
    )


def sts(
    replicas: int = 3,
    *,
    ready: int = 3,
    updated: int | None = None,
    revisions: tuple[str, str] = ("r1", "r1"),
    generation: int = 1,
    observed: int = 1,
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
            "currentRevision": revisions[0],
            "updateRevision": revisions[1],
        },
    }


def status_of(
    spec: SimulationSpec,
    stateful_set: dict[str, Any] | None,
    previous: SimulationStatus | None = None,
    now: datetime = T0,
    failure: Failure | None = None,
    *,
    generation: int = 2,
) -> SimulationStatus:
    return compute_status(
        simulation="line-a",
        spec=spec,
        generation=generation,
        config_hash="h1",
        stateful_set=stateful_set,
        previous=previous,
        now=now,
        failure=failure,
    )


def condition(status: SimulationStatus, kind: str) -> Condition:
    return next(c for c in status.conditions if c.type == kind)


def test_ready_simulation() -> None:
    status = status_of(spec_of(), sts())
    assert status.observed_generation == 2
    assert (status.replicas, status.ready_replicas) == (3, 3)
    assert status.config_hash == "h1"
    assert status.selector == (
        "app.kubernetes.io/component=producer,app.kubernetes.io/instance=line-a,"
        "app.kubernetes.io/name=sensorsim"
    )
    assert [c.type for c in status.conditions] == ["Ready", "Progressing", "Degraded"]
    assert condition(status, "Ready").status == "True"
    assert condition(status, "Ready").reason == "AllShardsReady"
    assert condition(status, "Progressing").status == "False"
    assert condition(status, "Degraded").status == "False"
    assert all(c.observed_generation == 2 for c in status.conditions)


@given(machines=st.integers(1, 500), data=st.data())
def test_shard_table_is_the_partition_function(machines: int, data: st.DataObject) -> None:
    replicas = data.draw(st.integers(1, min(machines, 64)))
    spec = spec_of(replicas=replicas, machines=machines)
    table = status_of(spec, sts(replicas, ready=replicas)).shards
    expected = shard_table(machines, replicas)
    assert [(s.ordinal, s.start, s.stop) for s in table] == [
        (r.shard, r.start, r.stop) for r in expected
    ]
    assert [s.pod for s in table] == [f"line-a-{i}" for i in range(replicas)]


def test_recomputing_an_unchanged_state_gives_an_identical_status() -> None:
    first = status_of(spec_of(), sts(ready=1))
    again = status_of(spec_of(), sts(ready=1), previous=first, now=T0 + timedelta(minutes=3))
    assert again == first


def test_transition_time_changes_only_when_the_status_flips() -> None:
    starting = status_of(spec_of(), sts(ready=1))
    assert condition(starting, "Ready").status == "False"
    later = T0 + timedelta(seconds=30)
    ready = status_of(spec_of(), sts(ready=3), previous=starting, now=later)
    assert condition(ready, "Ready").last_transition_time == rfc3339(later)
    assert condition(ready, "Degraded").last_transition_time == rfc3339(T0)


def test_rollout_in_progress() -> None:
    status = status_of(spec_of(), sts(updated=1, revisions=("r1", "r2")))
    assert condition(status, "Ready").status == "False"
    assert condition(status, "Ready").reason == "RollingOut"
    assert condition(status, "Progressing").status == "True"
    assert "1/3 pods updated" in condition(status, "Progressing").message


def test_stateful_set_controller_not_caught_up_is_progressing() -> None:
    status = status_of(spec_of(), sts(generation=3, observed=2))
    assert condition(status, "Progressing").status == "True"


def test_pods_not_ready_is_progressing_then_degraded_after_the_deadline() -> None:
    waiting = status_of(spec_of(), sts(ready=2))
    assert condition(waiting, "Progressing").reason == "WaitingForPods"
    assert condition(waiting, "Degraded").status == "False"
    late = T0 + PROGRESS_DEADLINE + timedelta(seconds=1)
    stuck = status_of(spec_of(), sts(ready=2), previous=waiting, now=late)
    assert condition(stuck, "Progressing").status == "False"
    assert condition(stuck, "Progressing").reason == "ProgressDeadlineExceeded"
    assert condition(stuck, "Degraded").status == "True"
    assert "2/3 producer pods ready" in condition(stuck, "Degraded").message
    recovered = status_of(spec_of(), sts(ready=3), previous=stuck, now=late)
    assert condition(recovered, "Ready").status == "True"
    assert condition(recovered, "Degraded").status == "False"


def test_a_new_generation_starts_a_new_progress_deadline() -> None:
    waiting = status_of(spec_of(), sts(ready=2))
    late = T0 + PROGRESS_DEADLINE + timedelta(seconds=1)
    stuck = status_of(spec_of(), sts(ready=2), previous=waiting, now=late)
    fixed = compute_status(
        simulation="line-a",
        spec=spec_of(),
        generation=3,
        config_hash="h2",
        stateful_set=sts(ready=2),
        previous=stuck,
        now=late,
    )
    assert condition(fixed, "Progressing").status == "True"
    assert condition(fixed, "Progressing").last_transition_time == rfc3339(late)
    assert condition(fixed, "Degraded").status == "False"


def test_a_spec_change_during_a_rollout_starts_a_new_progress_deadline() -> None:
    waiting = status_of(spec_of(), sts(ready=2))
    assert waiting.progressing_since == rfc3339(T0)
    changed_at = T0 + PROGRESS_DEADLINE - timedelta(minutes=1)
    changed = status_of(spec_of(), sts(ready=2), previous=waiting, now=changed_at, generation=3)
    progressing = condition(changed, "Progressing")
    # The condition stays True, so by the API conventions its transition time stays put ...
    assert (progressing.status, progressing.last_transition_time) == ("True", rfc3339(T0))
    # ... but the deadline of generation 3 starts now.
    assert changed.progressing_since == rfc3339(changed_at)
    later = T0 + PROGRESS_DEADLINE + timedelta(minutes=1)
    still = status_of(spec_of(), sts(ready=2), previous=changed, now=later, generation=3)
    assert condition(still, "Progressing").status == "True"
    assert condition(still, "Degraded").status == "False"
    assert still.progressing_since == changed.progressing_since
    late = changed_at + PROGRESS_DEADLINE + timedelta(seconds=1)
    stuck = status_of(spec_of(), sts(ready=2), previous=still, now=late, generation=3)
    assert condition(stuck, "Progressing").reason == "ProgressDeadlineExceeded"
    assert condition(stuck, "Degraded").status == "True"
    assert stuck.progressing_since is None


def test_suspended() -> None:
    stopping = status_of(spec_of(suspend=True), sts(2, ready=2))
    assert condition(stopping, "Ready").reason == "Suspended"
    assert condition(stopping, "Progressing").reason == "ScalingDown"
    assert stopping.shards == []
    stopped = status_of(spec_of(suspend=True), sts(0, ready=0), previous=stopping)
    assert condition(stopped, "Ready").status == "False"
    assert condition(stopped, "Ready").message == "spec.suspend is true: scaled to 0 pods"
    assert condition(stopped, "Progressing").status == "False"
    assert condition(stopped, "Degraded").status == "False"


def test_missing_stateful_set() -> None:
    status = status_of(spec_of(), None)
    assert condition(status, "Ready").reason == "StatefulSetMissing"
    assert condition(status, "Progressing").status == "True"
    assert status.replicas == 0


def test_apply_failure_is_degraded_with_the_message() -> None:
    status = status_of(
        spec_of(),
        sts(),
        failure=Failure("ReconcileFailed", "applying StatefulSet line-a: forbidden"),
    )
    degraded = condition(status, "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "ReconcileFailed")
    assert "forbidden" in degraded.message


def validation_error(**changes: Any) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        spec_of(**changes)
    return raised.value


def test_invalid_spec_message_names_the_fields_concisely() -> None:
    message = invalid_spec_message(
        validation_error(kafka={"bootstrapServers": "k"}, resources={"requests": {"cpu": "lots"}})
    )
    assert "spec.kafka.bootstrapServers: must be a comma-separated list of host:port" in message
    assert "spec.resources.requests.cpu: 'lots' is not in the expected format" in message
    assert "pattern" not in message  # no regular expressions in a user-facing message
    assert "CRD" in message
    assert "spec.bogus: unknown field, remove it" in invalid_spec_message(validation_error(bogus=1))
    cross_field = invalid_spec_message(validation_error(replicas=20))
    assert "spec: replicas must be less than or equal to machines" in cross_field


def test_invalid_spec_is_degraded_and_not_ready_keeping_the_rest() -> None:
    previous = status_of(spec_of(), sts(), generation=2)
    later = T0 + timedelta(minutes=5)
    status = invalid_spec_status(previous, message="spec.x: bad", generation=3, now=later)
    assert [c.type for c in status.conditions] == ["Ready", "Progressing", "Degraded"]
    assert {(c.status, c.reason) for c in status.conditions if c.type != "Progressing"} == {
        ("False", "InvalidSpec"),
        ("True", "InvalidSpec"),
    }
    assert condition(status, "Degraded").message == "spec.x: bad"
    assert condition(status, "Ready").message == "spec.x: bad"
    assert condition(status, "Degraded").last_transition_time == rfc3339(later)
    assert all(c.observed_generation == 3 for c in status.conditions)
    # The children still reflect generation 2: everything else stays as it was.
    assert status.model_dump(exclude={"conditions"}) == previous.model_dump(exclude={"conditions"})
    again = invalid_spec_status(
        status, message="spec.x: bad", generation=3, now=later + timedelta(minutes=1)
    )
    assert again == status  # lastTransitionTime stable: the operator skips the write


def test_invalid_spec_without_a_previous_status() -> None:
    status = invalid_spec_status(None, message="spec.x: bad", generation=1, now=T0)
    assert status.observed_generation == 0
    assert condition(status, "Degraded").status == "True"
    assert condition(status, "Ready").status == "False"


def test_scenarios_show_as_upcoming_active_or_done_by_the_schedule() -> None:
    created = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    spec = spec_of(
        intervalMs=1000,
        scenarios=[
            {"name": "past", "target": {"all": True}, "startCycle": 0,
             "noFailures": {"cycles": 10}},
            {"name": "now", "target": {"machines": [3]}, "startCycle": 50,
             "failure": {"type": "overheating", "cycles": 20}},
            {"target": {"fraction": 0.1}, "startTime": "2026-12-01T09:00:00Z",
             "degradation": {"type": "overheating", "cycles": 100, "failureCycles": 5}},
        ],
    )  # fmt: skip
    states, summary = scenario_states(spec, "2026-12-01T08:00:00Z", created + timedelta(seconds=60))
    assert [(s.name, s.state, s.start_cycle, s.end_cycle) for s in states] == [
        ("past", "done", 0, 10),
        ("now", "active", 50, 70),
        ("degradation@2026-12-01T09:00:00+00:00", "upcoming", 3600, 3705),
    ]
    assert summary == "1 active, 1 upcoming"
    assert scenario_states(spec_of(), None, created) == ([], None)


def test_status_shows_the_delivery_guarantee() -> None:
    assert status_of(spec_of(), sts()).delivery_guarantee == "at-least-once"
    exactly = spec_of(kafka={"bootstrapServers": "k:9092", "deliveryGuarantee": "exactly-once"})
    status = status_of(exactly, sts())
    assert status.model_dump(by_alias=True, mode="json")["deliveryGuarantee"] == "exactly-once"
