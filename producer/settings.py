"""Producer configuration from the environment (pydantic-settings).

Every variable of DESIGN §4 / docs/contracts.md, with the original names and defaults. Invalid
values stop the process at start with one line per problem naming the variable and the rule.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.machine_ids import MAX_MACHINES
from domain.messages import MessageFormat
from domain.simulation_model import FailureModel
from producer.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_FILE = REPO_ROOT / "data" / "data_sensors.csv"
_MAX_TOPIC = 249
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?)$")
"""A host name, an IPv4 address or a bracketed IPv6 address (no scheme, no path)."""


class SimulationModel(StrEnum):
    LEARNED = "learned"
    ORIGINAL = "original"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class ProducerSettings(BaseSettings):
    """One field per environment variable (the upper-case field name)."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,
        frozen=True,
        allow_inf_nan=False,
    )

    # Kafka (original names and defaults)
    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_topic: str = Field("sensor-data", description="Topic the readings are published to.")
    # Simulation (original names and defaults)
    num_sensors: int = Field(
        20, ge=1, le=1000, description="Use the first N 'Sensor <n>' columns of the data."
    )
    simulation_interval_ms: int = Field(
        1000, ge=0, le=86_400_000, description="Cycle period in ms (0 = as fast as possible)."
    )
    sensor_data_file: Path = Field(
        DEFAULT_DATA_FILE, description="Reference CSV (default: the bundled data set)."
    )
    # Fleet
    num_machines: int = Field(1, ge=1, le=MAX_MACHINES, description="Machines in the simulation.")
    shard_index: int = Field(0, ge=0, description="This process's shard (0-based).")
    shard_count: int = Field(1, ge=1, description="Number of shards the machines are split into.")
    simulation_seed: int | None = Field(
        None, ge=0, lt=2**64, description="Seed for reproducible output (unset = random)."
    )
    simulation_name: str = Field(
        "sensorsim",
        min_length=1,
        max_length=253,
        description="Name keying machine ids and carried in a record header.",
    )
    simulation_model: SimulationModel = Field(
        SimulationModel.LEARNED,
        description="learned (the reference's distributions and dependence) or original.",
    )
    simulation_persistence: float = Field(
        0.95,
        ge=0.0,
        lt=1.0,
        description="Per-cycle autocorrelation of the learned model's readings (0..<1).",
    )
    # Failure model
    failure_probability: float = Field(
        0.05, ge=0.0, le=1.0, description="Chance per cycle that a healthy machine starts failing."
    )
    failure_min_cycles: int = Field(30, ge=1, description="Shortest failure episode (cycles).")
    failure_max_cycles: int = Field(60, ge=1, description="Longest failure episode (cycles).")
    failure_ramp_cycles: int = Field(
        10, ge=0, description="Cycles over which a failure sets in linearly (0 = at once)."
    )
    # Kafka client
    kafka_security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT, description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers.")
    kafka_compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="Batch compression: none, gzip, snappy, lz4 or zstd."
    )
    kafka_linger_ms: int = Field(5, ge=0, le=60_000, description="Producer linger (ms).")
    kafka_batch_size: int = Field(
        65536, ge=1, le=64 * 1024 * 1024, description="Producer batch size (bytes)."
    )
    kafka_acks: Literal["all", "1", "0"] = Field(
        "all", description="all (idempotent), 1 or 0 (both disable idempotence)."
    )
    kafka_create_topic: bool = Field(False, description="Create the topic at start if missing.")
    kafka_topic_partitions: int = Field(
        6, ge=1, le=100_000, description="Partitions when the topic is created."
    )
    kafka_connect_timeout_ms: int = Field(
        15_000, ge=100, description="How long to try to reach the brokers at start."
    )
    kafka_delivery_timeout_ms: int = Field(
        120_000, ge=1000, description="How long a record may wait for acknowledgement."
    )
    kafka_max_pending_records: int = Field(
        200_000, ge=1, description="Unacknowledged records before the cycle loop waits."
    )
    # Continuity (docs/continuity.md)
    kafka_state_topic: str | None = Field(
        None,
        description="Compacted topic of the machines' checkpoints (default: KAFKA_TOPIC-state).",
    )
    checkpoint_interval_ms: int = Field(
        30_000,
        ge=0,
        le=86_400_000,
        description="How often each machine's state is checkpointed (0 = no continuity).",
    )
    catch_up_max_cycles: int = Field(
        600,
        ge=0,
        description="Missed cycles re-emitted after a restart; beyond, the producer skips ahead.",
    )
    simulation_epoch: datetime | None = Field(
        None,
        description="When cycle 0 was due, ISO-8601 with offset (unset = kept in the state topic).",
    )
    # Output and operations
    message_format: MessageFormat = Field(
        MessageFormat.ORIGINAL, description="original (the compatible body) or extended."
    )
    max_messages: int | None = Field(
        None, ge=1, description="Stop after this many records from this process."
    )
    duration_seconds: float | None = Field(None, gt=0, description="Stop after this many seconds.")
    http_port: int = Field(
        8080, ge=0, le=65535, description="Port of /healthz, /readyz, /metrics (0 disables)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["text", "json"] = Field("text", description="text or json lines.")

    @field_validator("log_level", "kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "log_format", "kafka_compression_type", "kafka_acks", "simulation_model", mode="before"
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("kafka_topic", "kafka_state_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _TOPIC.match(value) or value in {".", ".."}:
            raise ValueError("must be 1-249 characters of A-Z a-z 0-9 . _ -")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("must list at least one host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port (no scheme such as PLAINTEXT://)")
        return ",".join(servers)

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        problems = []
        if self.failure_max_cycles < self.failure_min_cycles:
            problems.append(
                f"FAILURE_MAX_CYCLES ({self.failure_max_cycles}) must be >= "
                f"FAILURE_MIN_CYCLES ({self.failure_min_cycles})"
            )
        if self.shard_count > self.num_machines:
            problems.append(
                f"SHARD_COUNT ({self.shard_count}) must be <= NUM_MACHINES ({self.num_machines})"
            )
        if self.shard_index >= self.shard_count:
            problems.append(
                f"SHARD_INDEX ({self.shard_index}) must be < SHARD_COUNT ({self.shard_count})"
            )
        sasl = self.kafka_security_protocol in (
            SecurityProtocol.SASL_PLAINTEXT,
            SecurityProtocol.SASL_SSL,
        )
        if sasl:
            if self.kafka_sasl_mechanism is None:
                problems.append(
                    f"KAFKA_SASL_MECHANISM is required with KAFKA_SECURITY_PROTOCOL="
                    f"{self.kafka_security_protocol.value}"
                )
            if not self.kafka_sasl_username or self.kafka_sasl_password is None:
                problems.append(
                    "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with "
                    f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol.value}"
                )
        elif self.kafka_sasl_mechanism is not None:
            problems.append(
                "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol.value} (use SASL_PLAINTEXT or SASL_SSL)"
            )
        if self.state_topic == self.kafka_topic:
            problems.append("KAFKA_STATE_TOPIC must differ from KAFKA_TOPIC")
        elif len(self.state_topic) > _MAX_TOPIC:
            problems.append(
                f"KAFKA_TOPIC is too long to derive the state topic {self.state_topic!r} from it "
                f"(over {_MAX_TOPIC} characters): set KAFKA_STATE_TOPIC"
            )
        if self.simulation_epoch is not None and self.simulation_epoch.utcoffset() is None:
            problems.append("SIMULATION_EPOCH must carry a UTC offset, e.g. 2026-12-01T00:00:00Z")
        if self.kafka_ssl_cafile is not None and not self.kafka_ssl_cafile.is_file():
            problems.append(f"KAFKA_SSL_CAFILE: {self.kafka_ssl_cafile} is not a readable file")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def failure_model(self) -> FailureModel:
        return FailureModel(
            probability=self.failure_probability,
            min_cycles=self.failure_min_cycles,
            max_cycles=self.failure_max_cycles,
            ramp_cycles=self.failure_ramp_cycles,
        )

    @property
    def state_topic(self) -> str:
        """KAFKA_STATE_TOPIC, or the name derived from KAFKA_TOPIC (one state per data topic)."""
        return self.kafka_state_topic or f"{self.kafka_topic}-state"

    @property
    def bootstrap_list(self) -> list[str]:
        return self.kafka_bootstrap_servers.split(",")


def load_settings(**overrides: Any) -> ProducerSettings:
    """Settings from the environment, ``overrides`` (field names) taking precedence.

    Raises ``ConfigError`` with one line per problem, naming the variable.
    """
    try:
        return ProducerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            name = str(error["loc"][0]).upper()
            value = error.get("input")
            shown = f"={value!r}" if isinstance(value, str | int | float) else ""
            lines.append(f"{name}{shown}: {message}")
        else:
            lines.append(message)
    return "invalid configuration: " + "; ".join(lines)


def env_table() -> list[tuple[str, str, str]]:
    """(VARIABLE, default, meaning) for every setting, for --help and the docs."""
    rows = []
    for name, field in ProducerSettings.model_fields.items():
        default = field.default
        if name == "sensor_data_file":
            shown = "data/data_sensors.csv (bundled)"
        elif default is None:
            shown = "unset"
        elif isinstance(default, StrEnum):
            shown = default.value
        elif isinstance(default, bool):
            shown = str(default).lower()
        else:
            shown = str(default)
        rows.append((name.upper(), shown, field.description or ""))
    return rows
