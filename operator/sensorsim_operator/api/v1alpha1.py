"""The SensorSimulation resource (``sensorsim.io/v1alpha1``): spec and status as pydantic models.

These models are the source of the resource's schema: the operator generates the CRD's OpenAPI
v3 schema from them (``python -m sensorsim_operator.crd``). Every field that becomes a producer
setting takes its default, bounds, enum, pattern and rules from ``domain.settings_contract``
(``Setting.spec_field``), so the API server refuses what the producer would refuse. Rules that
only concern Kubernetes (names, quantities, tolerations) are CEL here; the API server enforces
them and the tests ask it (server-side dry runs), not a Python copy.

Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from domain import settings_contract as contract
from domain.messages import MessageFormat
from domain.settings_contract import (
    BUNDLED_SENSOR_COLUMNS,
    MAX_SAFE_INTEGER,
    Compression,
    LogLevel,
    SaslMechanism,
    SecurityProtocol,
)
from domain.simulation_model import SimulationModel

API_GROUP: Final = "sensorsim.io"
API_VERSION: Final = "v1alpha1"
KIND: Final = "SensorSimulation"
PLURAL: Final = "sensorsimulations"
SINGULAR: Final = "sensorsimulation"
SHORT_NAME: Final = "sensim"

# Bounds. Generous enough for real use, small enough that a typo (an extra zero or three) is
# caught at admission instead of starving a cluster.
MAX_REPLICAS: Final = contract.MAX_SHARDS
MAX_MACHINES: Final = contract.MAX_SIMULATION_MACHINES
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

# Kubernetes object names and ConfigMap/Secret keys, as the API server checks them.
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"
LABEL_VALUE_PATTERN: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# Label, annotation, node-selector and taint keys: an optional DNS-subdomain prefix and '/',
# then a name of at most 63 characters (Kubernetes "qualified name").
QUALIFIED_NAME_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
QUALIFIED_NAME_RULE: Final = (
    "an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or "
    "'.', starting and ending with a letter or digit"
)
# Non-negative only: a pod's requests and limits may not be negative.
QUANTITY_PATTERN: Final = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
IMAGE_PATTERN: Final = r"^[^\s]+$"

ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
DataKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DATA_KEY_PATTERN)]
Quantity = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=QUANTITY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
AnnotationValue = Annotated[str, StringConstraints(max_length=4096)]

BootstrapServers = Annotated[
    str, AfterValidator(contract.setting("KAFKA_BOOTSTRAP_SERVERS").validate)
]
Topic = Annotated[str, AfterValidator(contract.setting("KAFKA_TOPIC").validate)]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
ConditionType = Literal["Ready", "Progressing", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]

# Pod labels the operator sets itself (the StatefulSet's selector); users may not override them.
RESERVED_POD_LABELS: Final = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
)


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors; immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


def _keys_rule(field: str, what: str) -> JsonDict:
    """CEL: every key of the map ``field`` is a qualified name (CRD schemas cannot constrain
    map keys otherwise)."""
    return _cel(
        f"!has(self.{field}) || self.{field}.all(k, k.matches(r'{QUALIFIED_NAME_PATTERN}'))",
        f"podTemplate.{field} keys must be {what}: {QUALIFIED_NAME_RULE}",
        f".{field}",
    )


def _bad_keys(mapping: dict[str, str]) -> list[str]:
    return sorted(key for key in mapping if not re.fullmatch(QUALIFIED_NAME_PATTERN, key))


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One ``x-kubernetes-validations`` entry; ``fieldPath`` makes the API server name the field."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
        entry["reason"] = "FieldValueInvalid"
    return entry


# --- spec -------------------------------------------------------------------------------------


class SaslCredentialsRef(_Model):
    """Where the SASL username and password live. The operator never reads or copies them: pods
    get them through ``secretKeyRef`` environment variables."""

    name: ObjectName = Field(description="Name of a Secret in the simulation's namespace.")
    username_key: DataKey = Field(
        default="username", description="Key of the Secret holding the SASL username."
    )
    password_key: DataKey = Field(
        default="password", description="Key of the Secret holding the SASL password."
    )


class SaslSpec(_Model):
    """SASL authentication to Kafka (used with securityProtocol SASL_PLAINTEXT or SASL_SSL)."""

    mechanism: SaslMechanism = Field(
        default=SaslMechanism.SCRAM_SHA_512,
        description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    credentials_secret: SaslCredentialsRef = Field(
        description="Secret holding the SASL username and password (never copied by the operator)."
    )


class CaSecretRef(_Model):
    """A CA bundle (PEM) in a Secret, mounted read-only into the producer pods."""

    name: ObjectName = Field(description="Name of a Secret in the simulation's namespace.")
    key: DataKey = Field(default="ca.crt", description="Key of the Secret holding the PEM bundle.")


class TlsSpec(_Model):
    """TLS to Kafka (used with securityProtocol SSL or SASL_SSL)."""

    ca_secret: CaSecretRef | None = Field(
        default=None,
        description=(
            "CA bundle that signs the brokers' certificates; unset = the image's system CAs."
        ),
    )


class KafkaSpec(_Model):
    """Where and how the producer pods publish readings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!self.securityProtocol.startsWith('SASL_') || has(self.sasl)",
                    "kafka.sasl is required when kafka.securityProtocol is SASL_PLAINTEXT "
                    "or SASL_SSL",
                    ".sasl",
                ),
                _cel(
                    "!has(self.sasl) || self.securityProtocol.startsWith('SASL_')",
                    "kafka.sasl is only used with kafka.securityProtocol SASL_PLAINTEXT or "
                    "SASL_SSL; set the protocol or remove sasl",
                    ".sasl",
                ),
                _cel(
                    "!has(self.tls) || self.securityProtocol in ['SSL', 'SASL_SSL']",
                    "kafka.tls is only used with kafka.securityProtocol SSL or SASL_SSL; "
                    "set the protocol or remove tls",
                    ".tls",
                ),
            ]
        }
    )

    bootstrap_servers: BootstrapServers = contract.setting("KAFKA_BOOTSTRAP_SERVERS").spec_field(
        "Comma-separated host:port list of Kafka brokers (ports 1-65535), e.g. "
        "'kafka.kafka.svc:9092'. Required.",
        required=True,
    )
    topic: Topic = contract.setting("KAFKA_TOPIC").spec_field(
        "Topic the readings are published to (Kafka topic name rules; not '.', '..' or an "
        "internal '__' topic)."
    )
    security_protocol: SecurityProtocol = contract.setting("KAFKA_SECURITY_PROTOCOL").spec_field(
        "Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl: SaslSpec | None = Field(
        default=None,
        description="SASL mechanism and credentials; required with SASL_* security protocols.",
    )
    tls: TlsSpec | None = Field(
        default=None, description="TLS settings; only with the SSL or SASL_SSL security protocol."
    )
    compression: Compression = contract.setting("KAFKA_COMPRESSION_TYPE").spec_field(
        "Producer compression codec: none, gzip, snappy, lz4, zstd."
    )
    create_topic: bool = contract.setting("KAFKA_CREATE_TOPIC").spec_field(
        "Create the topic at start when it does not exist (needs broker permission)."
    )
    partitions: int = contract.setting("KAFKA_TOPIC_PARTITIONS").spec_field(
        "Partition count used when createTopic creates the topic."
    )


class FailureSpec(_Model):
    """Failure episodes: when they start, how long they last, how fast they ramp in."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.minCycles <= self.maxCycles",
                    "failures.minCycles must be less than or equal to failures.maxCycles",
                    ".minCycles",
                )
            ]
        }
    )

    probability: float = contract.setting("FAILURE_PROBABILITY").spec_field(
        "Probability per cycle that a healthy machine starts a failure episode (0-1)."
    )
    min_cycles: int = contract.setting("FAILURE_MIN_CYCLES").spec_field(
        "Shortest failure episode, in cycles."
    )
    max_cycles: int = contract.setting("FAILURE_MAX_CYCLES").spec_field(
        "Longest failure episode, in cycles (inclusive; >= minCycles)."
    )
    ramp_cycles: int = contract.setting("FAILURE_RAMP_CYCLES").spec_field(
        "Cycles over which readings move from normal to the failure signature (0 = immediately)."
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> FailureSpec:
        if self.min_cycles > self.max_cycles:
            raise ValueError("failures.minCycles must be less than or equal to failures.maxCycles")
        return self


class ReferenceDataSpec(_Model):
    """A reference CSV in a ConfigMap, mounted read-only into the producer pods."""

    config_map_name: ObjectName = Field(
        description="Name of a ConfigMap in the simulation's namespace holding the CSV."
    )
    key: DataKey = Field(
        default="data_sensors.csv",
        description="Key of the ConfigMap holding the CSV ('Sensor <n>' columns and 'Label').",
    )


class ResourceRequests(_Model):
    """What the scheduler reserves for each producer pod."""

    cpu: Quantity = Field(default="100m", description="CPU request of each producer pod.")
    memory: Quantity | None = Field(
        default=None,
        description=(
            "Memory request of each producer pod; unset = sized from the machines per pod "
            "(docs/operator.md, 'Memory')."
        ),
    )


class ResourceLimits(_Model):
    """Hard caps for each producer pod."""

    cpu: Quantity | None = Field(
        default=None, description="CPU limit of each producer pod; unset = no CPU limit."
    )
    memory: Quantity | None = Field(
        default=None,
        description=(
            "Memory limit of each producer pod; unset = sized from the machines per pod "
            "(docs/operator.md, 'Memory')."
        ),
    )


class ResourcesSpec(_Model):
    """Compute resources of each producer pod."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.requests.memory) || !has(self.limits.memory) || "
                    "quantity(self.requests.memory).compareTo(quantity(self.limits.memory)) <= 0",
                    "resources.requests.memory must be less than or equal to "
                    "resources.limits.memory: raise the limit or lower the request",
                    ".requests.memory",
                ),
                _cel(
                    "!has(self.limits.cpu) || "
                    "quantity(self.requests.cpu).compareTo(quantity(self.limits.cpu)) <= 0",
                    "resources.requests.cpu must be less than or equal to resources.limits.cpu: "
                    "raise the limit or lower the request",
                    ".requests.cpu",
                ),
            ]
        }
    )

    requests: ResourceRequests = Field(
        default_factory=ResourceRequests, description="Requests of each producer pod."
    )
    limits: ResourceLimits = Field(
        default_factory=ResourceLimits, description="Limits of each producer pod."
    )


class Toleration(_Model):
    """A pod toleration (the Kubernetes core/v1 Toleration fields)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.key) || self.operator == 'Exists'",
                    "a toleration without a key must use operator Exists (it then tolerates "
                    "every taint): set key or operator: Exists",
                    ".operator",
                ),
                _cel(
                    "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "a toleration with operator Exists matches any value: remove value",
                    ".value",
                ),
                _cel(
                    "!has(self.tolerationSeconds) || "
                    "(has(self.effect) && self.effect == 'NoExecute')",
                    "tolerationSeconds is only used with effect NoExecute: set effect: NoExecute "
                    "or remove tolerationSeconds",
                    ".tolerationSeconds",
                ),
            ]
        }
    )

    key: str | None = Field(
        default=None,
        max_length=317,
        pattern=QUALIFIED_NAME_PATTERN,
        description="Taint key the toleration applies to; unset with operator Exists = all taints.",
    )
    operator: Literal["Exists", "Equal"] = Field(
        default="Equal", description="Exists (any value) or Equal (value must match)."
    )
    value: LabelValue | None = Field(
        default=None, description="Taint value to match with operator Equal."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; unset = all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description="For NoExecute: how long the pod stays bound after the taint appears.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator Exists")
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists matches any value: remove value")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds is only used with effect NoExecute")
        return self


class PodTemplateExtras(_Model):
    """A small, bounded set of pod template settings users commonly need."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.labels) || !self.labels.exists(k, k in "
                    + "["
                    + ", ".join(f"'{k}'" for k in RESERVED_POD_LABELS)
                    + "])",
                    "podTemplate.labels may not set "
                    + ", ".join(RESERVED_POD_LABELS)
                    + ": the operator uses them to select the producer pods",
                    ".labels",
                ),
                _keys_rule("labels", "label keys"),
                _keys_rule("annotations", "annotation keys"),
                _keys_rule("nodeSelector", "node label keys"),
            ]
        }
    )

    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra labels on the producer pods (keys per Kubernetes label rules).",
    )
    annotations: dict[str, AnnotationValue] = Field(
        default_factory=dict, max_length=32, description="Extra annotations on the producer pods."
    )
    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=16,
        description="Node labels the producer pods must be scheduled on.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=16, description="Tolerations of the producer pods."
    )
    service_account_name: ObjectName | None = Field(
        default=None,
        description="ServiceAccount of the producer pods (e.g. for image pull secrets).",
    )

    @model_validator(mode="after")
    def _no_reserved_labels(self) -> PodTemplateExtras:
        reserved = sorted(set(self.labels) & set(RESERVED_POD_LABELS))
        if reserved:
            raise ValueError(f"podTemplate.labels may not set {', '.join(reserved)}")
        for field, mapping in (
            ("labels", self.labels),
            ("annotations", self.annotations),
            ("nodeSelector", self.node_selector),
        ):
            bad = _bad_keys(mapping)
            if bad:
                raise ValueError(
                    f"podTemplate.{field} keys {bad} are invalid: {QUALIFIED_NAME_RULE}"
                )
        return self


class SimulationSpec(_Model):
    """Desired state of a SensorSimulation: how many machines to simulate, over how many
    producer pods, with which data, failures and Kafka target."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.replicas <= self.machines",
                    "replicas must be less than or equal to machines: every producer pod "
                    "simulates at least one machine",
                    ".replicas",
                ),
                _cel(
                    "(self.machines + self.replicas - 1) / self.replicas <= "
                    f"{MAX_MACHINES_PER_POD}",
                    f"at most {MAX_MACHINES_PER_POD} machines per producer pod (about 3 KiB of "
                    "memory each): raise replicas",
                    ".machines",
                ),
                _cel(
                    f"has(self.referenceData) || self.sensors <= {BUNDLED_SENSOR_COLUMNS}",
                    f"sensors must be at most {BUNDLED_SENSOR_COLUMNS}, the sensor columns of the "
                    "bundled data: lower sensors or give referenceData with more columns",
                    ".sensors",
                ),
            ]
        }
    )

    replicas: int = contract.setting("SHARD_COUNT").spec_field(
        "Producer pods (shards); each simulates a contiguous range of the machines. "
        "The /scale subresource points here (kubectl scale, HorizontalPodAutoscaler). "
        "At most machines. Use suspend to stop all pods."
    )
    machines: int = contract.setting("NUM_MACHINES").spec_field(
        "Machines in the whole simulation, split between the producer pods "
        f"(at most {MAX_MACHINES_PER_POD} per pod)."
    )
    sensors: int = contract.setting("NUM_SENSORS").spec_field(
        "Sensors per machine: the first N 'Sensor <n>' columns of the reference data "
        f"(at most {BUNDLED_SENSOR_COLUMNS} with the bundled data)."
    )
    interval_ms: int = contract.setting("SIMULATION_INTERVAL_MS").spec_field(
        "Cycle period in milliseconds (0 = as fast as possible); each machine emits one "
        "reading per cycle."
    )
    seed: int | None = contract.setting("SIMULATION_SEED").spec_field(
        "Seed for reproducible output, independent of replicas; unset = random each start."
    )
    model: SimulationModel = contract.setting("SIMULATION_MODEL").spec_field(
        "How readings are generated. learned (default): each sensor's distribution and the "
        "dependence between sensors are the reference data's, readings persist in time with "
        "autocorrelation persistence, failures move smoothly toward each failure type's learned "
        "distribution. original: the seed system's algorithm byte for byte (a mean-reverting "
        "random walk with a third of the reference spread, independent sensors, failing "
        "readings redrawn each cycle), for compatibility with data produced by the original "
        "system."
    )
    persistence: float = contract.setting("SIMULATION_PERSISTENCE").spec_field(
        "Per-cycle autocorrelation of the learned model's readings (0 <= x < 1; 0.95 = 5% mean "
        "reversion per cycle). Ignored by the original model."
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
            "Reference CSV in a ConfigMap; unset = the data set bundled in the image. "
            "Changing the ConfigMap's content does not restart pods (see docs/operator.md)."
        ),
    )
    message_format: MessageFormat = contract.setting("MESSAGE_FORMAT").spec_field(
        "Record body format: original (the compatible default) or extended (adds seq and "
        "failure details)."
    )
    log_level: LogLevel = contract.setting("LOG_LEVEL").spec_field(
        "Log level of the producer pods (logs are JSON)."
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


class ShardStatus(_Model):
    """One producer pod's slice of the machines (from domain.partitioning.shard_table)."""

    ordinal: int = Field(ge=0, le=MAX_REPLICAS, description="Pod ordinal (= SHARD_INDEX).")
    pod: str = Field(max_length=63, description="Name of the producer pod running this shard.")
    start: int = Field(ge=0, le=MAX_MACHINES, description="First machine index (inclusive).")
    stop: int = Field(ge=0, le=MAX_MACHINES, description="End of the machine range (exclusive).")


class Condition(_Model):
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


class SimulationStatus(_Model):
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
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        description="Ready, Progressing and Degraded, with reasons and messages.",
    )


def parse_spec(spec: dict[str, Any]) -> SimulationSpec:
    """The spec of a SensorSimulation object as the API server returns it (camelCase)."""
    return SimulationSpec.model_validate(spec)
