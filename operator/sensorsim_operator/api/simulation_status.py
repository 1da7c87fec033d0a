"""The status of a SensorSimulation (``sensorsim.io/v1alpha1``), in the Kubernetes API
conventions' shape: conditions, observedGeneration, and what the operator observed of the
producer pods. The CRD's status schema is generated from these models, as the spec's is from
``v1alpha1.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domain import settings_vocabulary as vocabulary
from domain.scenarios import MAX_SCENARIOS
from sensorsim_operator.api.kubernetes_types import MAX_SAFE_INTEGER, ApiModel
from sensorsim_operator.api.v1alpha1 import MAX_MACHINES, MAX_REPLICAS

ConditionType = Literal["Ready", "Progressing", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]


class ShardStatus(ApiModel):
    """One producer pod's slice of the machines (from domain.partitioning.shard_table)."""

    ordinal: int = Field(ge=0, le=MAX_REPLICAS, description="Pod ordinal (= SHARD_INDEX).")
    pod: str = Field(max_length=63, description="Name of the producer pod running this shard.")
    start: int = Field(ge=0, le=MAX_MACHINES, description="First machine index (inclusive).")
    stop: int = Field(ge=0, le=MAX_MACHINES, description="End of the machine range (exclusive).")


class Condition(ApiModel):
    """A condition in the Kubernetes API conventions' shape."""

    type: ConditionType = Field(description="Ready, Progressing or Degraded.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the condition's last transition or current state.",
    )
    message: str = Field(max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(
        max_length=64,
        json_schema_extra={"format": "date-time"},
        description="When status last changed (RFC 3339); unchanged while status stays the same.",
    )
    observed_generation: int = Field(
        ge=0,
        le=MAX_SAFE_INTEGER,
        description="metadata.generation of the spec this condition was computed for.",
    )


ScenarioState = Literal["upcoming", "active", "done"]


class ScenarioStatus(ApiModel):
    """Where a scenario of spec.scenarios stands, by the simulation's schedule."""

    name: str = Field(max_length=256, description="Its name, else <kind>@<start>.")
    kind: str = Field(max_length=32, description="failure, noFailures, degradation or quality.")
    start_cycle: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="First cycle (unset: not known)."
    )
    end_cycle: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="First cycle after it."
    )
    state: ScenarioState = Field(description="upcoming, active or done.")


class SimulationStatus(ApiModel):
    """Observed state of a SensorSimulation, written by the operator."""

    observed_generation: int = Field(
        default=0,
        ge=0,
        le=MAX_SAFE_INTEGER,
        description="metadata.generation of the spec the children were last built from.",
    )
    replicas: int = Field(
        default=0,
        ge=0,
        le=MAX_REPLICAS,
        description="Producer pods that exist (the /scale subresource's status.replicas).",
    )
    ready_replicas: int = Field(
        default=0, ge=0, le=MAX_REPLICAS, description="Producer pods that are Ready."
    )
    selector: str = Field(
        default="",
        max_length=1024,
        description="Label selector of the producer pods (for /scale and HorizontalPodAutoscaler).",
    )
    shards: list[ShardStatus] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS,
        description="Machine index range of each shard; empty while suspended.",
    )
    config_hash: str = Field(
        default="",
        max_length=64,
        description="Hash of everything that shapes the producer pods; a change rolls them.",
    )
    handover_since: str | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={"format": "date-time"},
        description=(
            "When the running handover began (RFC 3339): old pods of another stream "
            "configuration are stopping before the new ones start. Unset when none runs; past "
            "its deadline (twice the pods' grace period plus a minute) the simulation is "
            "Degraded with reason HandoverStuck."
        ),
    )
    progressing_since: str | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={"format": "date-time"},
        description=(
            "When the rollout of observedGeneration began (RFC 3339); unset when not "
            "progressing. The progress deadline counts from here, so a new generation starts a "
            "new deadline even while the Progressing condition stays True."
        ),
    )
    scenarios: list[ScenarioStatus] = Field(
        default_factory=list,
        max_length=MAX_SCENARIOS,
        description=(
            "spec.scenarios by state, at the cycle the schedule gives now (creation time and "
            "intervalMs; updated at each reconcile, at most the operator's resync period apart)."
        ),
    )
    scenario_summary: str | None = Field(
        default=None, max_length=64, description="<active> active, <upcoming> upcoming."
    )
    delivery_guarantee: vocabulary.DeliveryGuarantee | None = Field(
        default=None,
        description=(
            "The delivery guarantee the producer pods were built with (spec.kafka."
            "deliveryGuarantee): at-least-once, or exactly-once (read_committed consumers see "
            "each cycle once, one checkpoint interval late)."
        ),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        description="Ready, Progressing and Degraded, with reasons and messages.",
    )
