"""The SensorSimulation resource (``sensorsim.io/v1alpha1``): spec and status as pydantic models.

These models are the source of the resource's schema: the operator generates the CRD's OpenAPI
v3 schema from them (``python -m sensorsim_operator.crd``). Every field that becomes a producer
setting takes its default, bounds, enum, pattern and rules from ``domain.settings_contract``
(``contract_fields.contract_field``), so the API server refuses what the producer would refuse.
Rules that only concern Kubernetes (names, quantities, tolerations) are CEL; the API server
enforces them and the tests ask it (server-side dry runs), not a Python copy.

This module holds the resource's identity and its top-level spec; the ``kafka`` part of the
spec is in ``kafka_spec.py``, the producer pods' part in ``pod_spec.py``, the status in
``simulation_status.py``.

Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import ConfigDict, Field, model_validator

from domain import settings_vocabulary as vocabulary
from domain.messages import MessageFormat
from domain.scenarios import MAX_SCENARIOS, Scenario
from domain.settings_vocabulary import BUNDLED_SENSOR_COLUMNS, LogLevel
from domain.simulation_model import SimulationModel
from sensorsim_operator.api.contract_fields import contract_field
from sensorsim_operator.api.kafka_spec import KafkaSpec
from sensorsim_operator.api.kubernetes_types import (
    IMAGE_PATTERN,
    ApiModel,
    DataKey,
    ObjectName,
    PullPolicy,
    cel,
)
from sensorsim_operator.api.pod_spec import PodTemplateExtras, ResourcesSpec

API_GROUP: Final = "sensorsim.io"
API_VERSION: Final = "v1alpha1"
KIND: Final = "SensorSimulation"
PLURAL: Final = "sensorsimulations"
SINGULAR: Final = "sensorsimulation"
SHORT_NAME: Final = "sensim"

# Bounds. Generous enough for real use, small enough that a typo (an extra zero or three) is
# caught at admission instead of starving a cluster.
MAX_REPLICAS: Final = vocabulary.MAX_SHARDS
MAX_MACHINES: Final = vocabulary.MAX_SIMULATION_MACHINES
MAX_MACHINES_PER_POD: Final = 1_000_000
"""Machines one producer pod may simulate: its memory grows by about 3 KiB per machine
(docs/operator.md, "Memory"), so more would need more than 4 GiB per pod."""
MAX_NAME_LENGTH: Final = 52  # a StatefulSet's pods get "<name>-<revision hash>" labels (63)

# The object name becomes the StatefulSet's and the headless Service's name, so it must be a
# DNS-1035 label (Service rule) short enough for the StatefulSet's revision labels.
NAME_RULE: Final = {
    "rule": (
        f"size(self.metadata.name) <= {MAX_NAME_LENGTH} && "
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
    ),
    "message": (
        f"metadata.name must be at most {MAX_NAME_LENGTH} characters of lowercase letters, "
        "digits and '-', starting with a letter and ending with a letter or digit "
        "(it names the StatefulSet, its pods and a Service)"
    ),
}

# --- spec -------------------------------------------------------------------------------------


class FailureSpec(ApiModel):
    """Failure episodes: when they start, how long they last, how fast they ramp in."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.minCycles <= self.maxCycles",
                    "failures.minCycles must be less than or equal to failures.maxCycles",
                    ".minCycles",
                )
            ]
        }
    )

    probability: float | None = contract_field(
        "FAILURE_PROBABILITY",
        "Probability per cycle that a healthy machine starts a failure episode (0-1). Set, it "
        "wins over share; unset: from share, else 0.05 with the original model.",
    )
    share: float | None = contract_field(
        "FAILURE_SHARE",
        "Long-run share of failing readings (0 <= x < 1); the start probability follows from "
        "it and the episode lengths. Unset: the reference data's share of labelled rows "
        "(learned model).",
    )
    min_cycles: int = contract_field("FAILURE_MIN_CYCLES", "Shortest failure episode, in cycles.")
    max_cycles: int = contract_field(
        "FAILURE_MAX_CYCLES", "Longest failure episode, in cycles (inclusive; >= minCycles)."
    )
    ramp_cycles: int = contract_field(
        "FAILURE_RAMP_CYCLES",
        "Cycles over which readings move from normal to the failure signature (0 = immediately).",
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> FailureSpec:
        if self.min_cycles > self.max_cycles:
            raise ValueError("failures.minCycles must be less than or equal to failures.maxCycles")
        return self


class ReferenceDataSpec(ApiModel):
    """A reference table (CSV or Parquet) in a ConfigMap, mounted read-only into the producer
    pods, and the roles of its columns."""

    config_map_name: ObjectName = Field(
        description="Name of a ConfigMap in the simulation's namespace holding the CSV."
    )
    key: DataKey = Field(
        default="data_sensors.csv",
        description=(
            "Key of the ConfigMap holding the table: a CSV in data, or a Parquet file in "
            "binaryData."
        ),
    )
    sensor_columns: str | None = contract_field(
        "SENSOR_COLUMNS",
        "Comma-separated sensor columns; unset: the 'Sensor <n>' columns if any, else every "
        "numeric column but the label, time and group columns. Set, spec.sensors is ignored.",
    )
    label_column: str = contract_field(
        "LABEL_COLUMN", "Column of the failure labels (a normal value: a normal row)."
    )
    normal_labels: str = contract_field(
        "NORMAL_LABELS",
        'Comma-separated label values that mean normal, e.g. "0" or NORMAL (a blank label '
        "always does).",
    )
    time_column: str | None = contract_field(
        "TIME_COLUMN",
        "Column of times (numbers or timestamps): rows are a time series ordered by it.",
    )
    group_column: str | None = contract_field(
        "GROUP_COLUMN", "Column of machine or recording ids: each group is its own series."
    )


class SimulationSpec(ApiModel):
    """Desired state of a SensorSimulation: how many machines to simulate, over how many
    producer pods, with which data, failures and Kafka target."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.replicas <= self.machines",
                    "replicas must be less than or equal to machines: every producer pod "
                    "simulates at least one machine",
                    ".replicas",
                ),
                cel(
                    "(self.machines + self.replicas - 1) / self.replicas <= "
                    f"{MAX_MACHINES_PER_POD}",
                    f"at most {MAX_MACHINES_PER_POD} machines per producer pod (about 3 KiB of "
                    "memory each): raise replicas",
                    ".machines",
                ),
                # A transition rule (it reads oldSelf), so the API server checks it on updates
                # only; at the spec's level, so adding or removing a seed is refused too.
                cel(
                    "has(self.seed) == has(oldSelf.seed) && "
                    "(!has(self.seed) || self.seed == oldSelf.seed)",
                    "spec.seed is immutable: it is part of the simulation's identity (what every "
                    "machine emits follows from it). To use another seed, create a new "
                    "SensorSimulation",
                    ".seed",
                ),
                cel(
                    f"has(self.referenceData) || self.sensors <= {BUNDLED_SENSOR_COLUMNS}",
                    f"sensors must be at most {BUNDLED_SENSOR_COLUMNS}, the sensor columns of the "
                    "bundled data: lower sensors or give referenceData with more columns",
                    ".sensors",
                ),
            ]
        }
    )

    replicas: int = contract_field(
        "SHARD_COUNT",
        "Producer pods (shards); each simulates a contiguous range of the machines. "
        "The /scale subresource points here (kubectl scale, HorizontalPodAutoscaler). "
        "At most machines. Use suspend to stop all pods.",
    )
    machines: int = contract_field(
        "NUM_MACHINES",
        "Machines in the whole simulation, split between the producer pods "
        f"(at most {MAX_MACHINES_PER_POD} per pod).",
    )
    sensors: int = contract_field(
        "NUM_SENSORS",
        "Sensors per machine: the first N 'Sensor <n>' columns of the reference data "
        f"(at most {BUNDLED_SENSOR_COLUMNS} with the bundled data).",
    )
    interval_ms: int = contract_field(
        "SIMULATION_INTERVAL_MS",
        "Cycle period in milliseconds (0 = as fast as possible); each machine emits one "
        "reading per cycle.",
    )
    seed: int | None = contract_field(
        "SIMULATION_SEED",
        "Seed for reproducible output, independent of replicas; unset = drawn at random when "
        "the simulation first starts and kept in its state topic. Immutable: set it when "
        "creating the simulation.",
    )
    model: SimulationModel = contract_field(
        "SIMULATION_MODEL",
        "How readings are generated. learned (default): each sensor's distribution and the "
        "dependence between sensors are the reference data's, readings persist in time as the "
        "reference's do (or with persistence), failures move smoothly toward each failure "
        "type's learned "
        "distribution. original: the seed system's algorithm byte for byte (a mean-reverting "
        "random walk with a third of the reference spread, independent sensors, failing "
        "readings redrawn each cycle), for compatibility with data produced by the original "
        "system.",
    )
    persistence: float | None = contract_field(
        "SIMULATION_PERSISTENCE",
        "Per-cycle autocorrelation of the learned model's readings (0 <= x < 1; 0.95 = 5% mean "
        "reversion per cycle), for every sensor. Unset: learned per sensor, with the lead and "
        "lag between sensors, from the reference data's time column (referenceData.timeColumn), "
        "else 0.95. Ignored by the original model.",
    )
    regimes: int | None = contract_field(
        "SIMULATION_REGIMES",
        "Operating regimes of the learned model (1 to 24): each machine moves between them with "
        "its own persistent offset, as the reference's recordings differ. 1: identical machines "
        "without regimes. Unset: as many as the reference data shows (a Gaussian mixture sized "
        "by an information criterion). Ignored by the original model.",
    )
    suspend: bool = Field(
        default=False,
        description=(
            "true scales the producer pods to zero and keeps everything else; false resumes."
        ),
    )
    kafka: KafkaSpec = Field(description="Kafka target of the readings. Required.")
    failures: FailureSpec = Field(
        default_factory=FailureSpec,
        description="Failure model: start probability, episode length range and ramp.",
    )
    reference_data: ReferenceDataSpec | None = Field(
        default=None,
        description=(
            "Reference CSV in a ConfigMap; unset = the data set bundled in the image. A change "
            "of the ConfigMap's content is handed over to new pods at the next reconcile (at "
            "most the operator's resync period; see docs/operator.md)."
        ),
    )
    scenarios: list[Scenario] = Field(
        default_factory=list,
        max_length=MAX_SCENARIOS,
        description=(
            "Timed actions on chosen machines: failures on demand, no-failure windows, "
            "degradation to failure with health and remaining-useful-life labels, data-quality "
            "faults (docs/scenarios.md). Editable while the simulation runs: a change is a new "
            "segment of its history, applied from the cycle after the handover; the part of a "
            "window before that cycle is not applied. Names must be unique."
        ),
    )
    message_format: MessageFormat = contract_field(
        "MESSAGE_FORMAT",
        "Record body format: original (the compatible default) or extended (adds seq and "
        "failure details).",
    )
    log_level: LogLevel = contract_field(
        "LOG_LEVEL", "Log level of the producer pods (logs are JSON)."
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=IMAGE_PATTERN,
        description="Producer image override; unset = the operator's configured producer image.",
    )
    image_pull_policy: PullPolicy = Field(
        default="IfNotPresent", description="Pull policy of the producer image."
    )
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="CPU and memory of each producer pod."
    )
    pod_template: PodTemplateExtras = Field(
        default_factory=PodTemplateExtras,
        description="Extra labels, annotations, node selector, tolerations of the producer pods.",
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> SimulationSpec:
        # Only what the operator's own logic relies on; the CEL rules above are the API
        # server's, and the tests ask the API server about them.
        if self.replicas > self.machines:
            raise ValueError("replicas must be less than or equal to machines")
        protocol = self.kafka.security_protocol
        if protocol.startswith("SASL_") != (self.kafka.sasl is not None):
            raise ValueError(
                "kafka.sasl is required exactly when kafka.securityProtocol is SASL_PLAINTEXT "
                "or SASL_SSL"
            )
        if self.kafka.tls is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError("kafka.tls is only used with kafka.securityProtocol SSL or SASL_SSL")
        return self


# --- status -----------------------------------------------------------------------------------


def parse_spec(spec: dict[str, Any]) -> SimulationSpec:
    """The spec of a SensorSimulation object as the API server returns it (camelCase)."""
    return SimulationSpec.model_validate(spec)
