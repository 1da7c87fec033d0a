"""Producer configuration from the environment (pydantic-settings).

Every variable of docs/contracts.md ("Producer environment"), with the original names and
defaults. Invalid values stop the process at start with one line per problem naming the
variable and the rule.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain import settings_contract as contract
from domain import settings_vocabulary as vocabulary
from domain.jaas import jaas_options
from domain.messages import MessageFormat
from domain.reference_columns import ReferenceColumns
from domain.scenarios import (
    MAX_SCENARIOS,
    QualityFault,
    Scenario,
    ScenarioError,
    parse_scenarios_text,
    random_quality_faults,
)
from domain.settings_vocabulary import SaslMechanism, SecurityProtocol
from domain.simulation_model import FailureModel, SimulationModel
from producer.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
_CHECKOUT_DATA_FILE = REPO_ROOT / "data" / "data_sensors.csv"
# An installed wheel carries the file in <prefix>/share/sensorsim (pyproject.toml, data-files).
_INSTALLED_DATA_FILE = Path(sys.prefix) / "share" / "sensorsim" / "data_sensors.csv"
DEFAULT_DATA_FILE = (
    _INSTALLED_DATA_FILE
    if not _CHECKOUT_DATA_FILE.exists() and _INSTALLED_DATA_FILE.exists()
    else _CHECKOUT_DATA_FILE
)
_SETTING = contract.BY_ENV
"""The contract of each setting by its environment variable name."""
MAX_REFERENCE_SHARE = 0.99
"""A reference whose rows are (nearly) all labelled still leaves machines some healthy
readings."""
MIN_REQUEST_TIMEOUT_MS = 500
"""The shortest request timeout the derived one may be (KAFKA_DELIVERY_TIMEOUT_MS minus
KAFKA_LINGER_MS, capped at Kafka's default 30 s)."""

TRANSACTION_COMMIT_MARGIN_MS = 60_000
"""Beyond the commit interval, how long an exactly-once transaction may stay open (the commit
itself: the interval's last records, the checkpoint, the markers) before the broker aborts it."""
MAX_TRANSACTION_INTERVAL_MS = 900_000 - TRANSACTION_COMMIT_MARGIN_MS

__all__ = [
    "DEFAULT_DATA_FILE",
    "ProducerSettings",
    "SaslMechanism",
    "SecurityProtocol",
    "SimulationModel",
    "env_table",
    "load_settings",
]


class ProducerSettings(BaseSettings):
    """One field per environment variable (the upper-case field name). Names, defaults, bounds,
    choices and meanings come from ``domain.settings_contract``; a test checks that every
    setting of the contract has its field here and nothing else does."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,
        frozen=True,
        allow_inf_nan=False,
    )

    # Kafka (original names and defaults)
    kafka_bootstrap_servers: str = _SETTING["KAFKA_BOOTSTRAP_SERVERS"].field()
    kafka_topic: str = _SETTING["KAFKA_TOPIC"].field()
    # Simulation (original names and defaults)
    num_sensors: int = _SETTING["NUM_SENSORS"].field()
    simulation_interval_ms: int = _SETTING["SIMULATION_INTERVAL_MS"].field()
    sensor_data_file: Path = Field(
        DEFAULT_DATA_FILE, description=_SETTING["SENSOR_DATA_FILE"].description
    )
    # Reference table columns
    sensor_columns: str | None = _SETTING["SENSOR_COLUMNS"].field()
    label_column: str = _SETTING["LABEL_COLUMN"].field()
    normal_labels: str = _SETTING["NORMAL_LABELS"].field()
    time_column: str | None = _SETTING["TIME_COLUMN"].field()
    group_column: str | None = _SETTING["GROUP_COLUMN"].field()
    # Fleet
    num_machines: int = _SETTING["NUM_MACHINES"].field()
    shard_index: int = _SETTING["SHARD_INDEX"].field()
    shard_count: int = _SETTING["SHARD_COUNT"].field()
    simulation_seed: int | None = _SETTING["SIMULATION_SEED"].field()
    simulation_name: str = _SETTING["SIMULATION_NAME"].field()
    simulation_uid: str | None = _SETTING["SIMULATION_UID"].field()
    simulation_model: SimulationModel = _SETTING["SIMULATION_MODEL"].field()
    simulation_persistence: float | None = _SETTING["SIMULATION_PERSISTENCE"].field()
    simulation_regimes: int | None = _SETTING["SIMULATION_REGIMES"].field()
    # Failure model
    failure_probability: float | None = _SETTING["FAILURE_PROBABILITY"].field()
    failure_share: float | None = _SETTING["FAILURE_SHARE"].field()
    failure_min_cycles: int = _SETTING["FAILURE_MIN_CYCLES"].field()
    failure_max_cycles: int = _SETTING["FAILURE_MAX_CYCLES"].field()
    failure_ramp_cycles: int = _SETTING["FAILURE_RAMP_CYCLES"].field()
    # scenarios
    scenarios: str | None = _SETTING["SCENARIOS"].field()
    scenarios_file: Path | None = _SETTING["SCENARIOS_FILE"].field()
    quality_fault_rate: float = _SETTING["QUALITY_FAULT_RATE"].field()
    quality_fault_kinds: str = _SETTING["QUALITY_FAULT_KINDS"].field()
    # Kafka client
    kafka_security_protocol: SecurityProtocol = _SETTING["KAFKA_SECURITY_PROTOCOL"].field()
    kafka_sasl_mechanism: SaslMechanism | None = _SETTING["KAFKA_SASL_MECHANISM"].field()
    kafka_sasl_username: str | None = _SETTING["KAFKA_SASL_USERNAME"].field()
    kafka_sasl_password: SecretStr | None = _SETTING["KAFKA_SASL_PASSWORD"].field()
    kafka_sasl_jaas_config: SecretStr | None = _SETTING["KAFKA_SASL_JAAS_CONFIG"].field()
    kafka_ssl_cafile: Path | None = _SETTING["KAFKA_SSL_CAFILE"].field()
    kafka_ssl_certfile: Path | None = _SETTING["KAFKA_SSL_CERTFILE"].field()
    kafka_ssl_keyfile: Path | None = _SETTING["KAFKA_SSL_KEYFILE"].field()
    kafka_compression_type: vocabulary.Compression = _SETTING["KAFKA_COMPRESSION_TYPE"].field()
    kafka_linger_ms: int = _SETTING["KAFKA_LINGER_MS"].field()
    kafka_batch_size: int = _SETTING["KAFKA_BATCH_SIZE"].field()
    kafka_acks: vocabulary.Acks = _SETTING["KAFKA_ACKS"].field()
    kafka_create_topic: bool = _SETTING["KAFKA_CREATE_TOPIC"].field()
    kafka_allow_compacted_topic: bool = _SETTING["KAFKA_ALLOW_COMPACTED_TOPIC"].field()
    kafka_topic_partitions: int = _SETTING["KAFKA_TOPIC_PARTITIONS"].field()
    kafka_connect_timeout_ms: int = _SETTING["KAFKA_CONNECT_TIMEOUT_MS"].field()
    kafka_delivery_timeout_ms: int = _SETTING["KAFKA_DELIVERY_TIMEOUT_MS"].field()
    kafka_max_pending_records: int = _SETTING["KAFKA_MAX_PENDING_RECORDS"].field()
    # Continuity (docs/continuity.md)
    kafka_state_topic: str | None = _SETTING["KAFKA_STATE_TOPIC"].field()
    checkpoint_interval_ms: int = _SETTING["CHECKPOINT_INTERVAL_MS"].field()
    delivery_guarantee: vocabulary.DeliveryGuarantee = _SETTING["DELIVERY_GUARANTEE"].field()
    catch_up_max_cycles: int = _SETTING["CATCH_UP_MAX_CYCLES"].field()
    simulation_epoch: datetime | None = _SETTING["SIMULATION_EPOCH"].field()
    # Output and operations
    message_format: MessageFormat = _SETTING["MESSAGE_FORMAT"].field()
    max_messages: int | None = _SETTING["MAX_MESSAGES"].field()
    duration_seconds: float | None = _SETTING["DURATION_SECONDS"].field()
    http_port: int = _SETTING["HTTP_PORT"].field()
    shutdown_grace_seconds: int = _SETTING["SHUTDOWN_GRACE_SECONDS"].field()
    log_level: vocabulary.LogLevel = _SETTING["LOG_LEVEL"].field()
    log_format: vocabulary.LogFormat = _SETTING["LOG_FORMAT"].field()

    @field_validator("log_level", "kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "log_format",
        "kafka_compression_type",
        "kafka_acks",
        "simulation_model",
        "delivery_guarantee",
        mode="before",
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
        return str(_SETTING["KAFKA_TOPIC"].validate(value))

    @field_validator("simulation_uid")
    @classmethod
    def _uid(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return str(_SETTING["SIMULATION_UID"].validate(value))

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("must list at least one host:port")
        for server in servers:
            if re.fullmatch(vocabulary.SERVER_PATTERN, server) is None:
                raise ValueError(
                    f"{server!r} is not host:port with a port of 1-65535 "
                    "(no scheme such as PLAINTEXT://)"
                )
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
            problems += self._credential_problems()
        elif self.kafka_sasl_mechanism is not None:
            problems.append(
                "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol.value} (use SASL_PLAINTEXT or SASL_SSL)"
            )
        if self.kafka_delivery_timeout_ms < self.kafka_linger_ms + MIN_REQUEST_TIMEOUT_MS:
            # kafka-python needs delivery >= linger + request timeout; the request timeout is
            # derived (30 s where it fits, else what is left), and a request needs some time.
            problems.append(
                f"KAFKA_DELIVERY_TIMEOUT_MS ({self.kafka_delivery_timeout_ms}) must be >= "
                f"KAFKA_LINGER_MS ({self.kafka_linger_ms}) + {MIN_REQUEST_TIMEOUT_MS}"
            )
        problems += self._continuity_problems()
        problems += self._tls_problems()
        problems += self._scenario_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _credential_problems(self) -> list[str]:
        """SASL needs a username and a password: each from its variable, else from the JAAS
        line of KAFKA_SASL_JAAS_CONFIG (never echoed: it holds the password)."""
        try:
            username, password = self.sasl_credentials
        except ValueError as exc:
            return [f"KAFKA_SASL_JAAS_CONFIG: {exc}"]
        if username and password is not None:
            return []
        return [
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_JAAS_CONFIG with "
            "username and password) are required with "
            f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol.value}"
        ]

    def _tls_problems(self) -> list[str]:
        problems = []
        files = (
            ("KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
            ("KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
            ("KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile),
        )
        for variable, path in files:
            if path is not None and not path.is_file():
                problems.append(f"{variable}: {path} is not a readable file")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            problems.append(
                "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE are set together or not at all"
            )
        tls = self.kafka_security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)
        if self.kafka_ssl_certfile is not None and not tls:
            problems.append(
                "KAFKA_SSL_CERTFILE is set but KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol.value} (use SSL or SASL_SSL)"
            )
        return problems

    @property
    def sasl_credentials(self) -> tuple[str | None, SecretStr | None]:
        """The SASL username and password: KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD, each
        falling back on the JAAS line's (ValueError when that line cannot be read)."""
        username, password = self.kafka_sasl_username, self.kafka_sasl_password
        if self.kafka_sasl_jaas_config is not None and (not username or password is None):
            options = jaas_options(self.kafka_sasl_jaas_config.get_secret_value())
            username = username or options.get("username")
            if password is None and "password" in options:
                password = SecretStr(options["password"])
        return username, password

    def _scenario_problems(self) -> list[str]:
        if self.scenarios is not None and self.scenarios_file is not None:
            return ["SCENARIOS and SCENARIOS_FILE are set together: set one"]
        try:
            self.scenario_list()
        except ScenarioError as exc:
            variable = "SCENARIOS" if self.scenarios is not None else "SCENARIOS_FILE"
            return [f"{variable}: {exc}"]
        return []

    def scenario_list(self) -> list[Scenario]:
        """The scenarios of SCENARIOS or SCENARIOS_FILE (none when both are unset), then those
        of QUALITY_FAULT_RATE; ``ScenarioError`` says what is wrong."""
        scenarios: list[Scenario] = []
        if self.scenarios is not None:
            scenarios = parse_scenarios_text(self.scenarios)
        elif self.scenarios_file is not None:
            try:
                text = self.scenarios_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ScenarioError(f"cannot read {self.scenarios_file}: {exc.strerror}") from None
            scenarios = parse_scenarios_text(text)
        if len(scenarios) > MAX_SCENARIOS:
            raise ScenarioError(f"{len(scenarios)} scenarios: at most {MAX_SCENARIOS}")
        if self.quality_fault_rate > 0:
            kinds = dict.fromkeys(QualityFault(k) for k in self.quality_fault_kinds.split(","))
            scenarios += random_quality_faults(self.quality_fault_rate, list(kinds))
        return scenarios

    def _continuity_problems(self) -> list[str]:
        problems = []
        if self.state_topic == self.kafka_topic:
            problems.append("KAFKA_STATE_TOPIC must differ from KAFKA_TOPIC")
        elif len(self.state_topic) > vocabulary.MAX_TOPIC_LENGTH:
            problems.append(
                f"KAFKA_TOPIC is too long to derive the state topic {self.state_topic!r} from it "
                f"(over {vocabulary.MAX_TOPIC_LENGTH} characters): set KAFKA_STATE_TOPIC"
            )
        if self.exactly_once:
            problems += self._transaction_problems()
        if self.simulation_epoch is not None and self.simulation_epoch.utcoffset() is None:
            problems.append("SIMULATION_EPOCH must carry a UTC offset, e.g. 2026-12-01T00:00:00Z")
        return problems

    def _transaction_problems(self) -> list[str]:
        """Exactly-once commits every checkpoint interval, with idempotence, and an open
        transaction must fit the broker's default transaction.max.timeout.ms (15 min)."""
        problems = []
        if self.checkpoint_interval_ms == 0:
            problems.append(
                "DELIVERY_GUARANTEE=exactly-once commits at each checkpoint: "
                "CHECKPOINT_INTERVAL_MS must be > 0"
            )
        if self.kafka_acks != "all":
            problems.append("DELIVERY_GUARANTEE=exactly-once needs KAFKA_ACKS=all")
        if self.checkpoint_interval_ms > MAX_TRANSACTION_INTERVAL_MS:
            problems.append(
                f"CHECKPOINT_INTERVAL_MS ({self.checkpoint_interval_ms}) must be <= "
                f"{MAX_TRANSACTION_INTERVAL_MS} with DELIVERY_GUARANTEE=exactly-once (a "
                "transaction stays open for one interval plus "
                f"{TRANSACTION_COMMIT_MARGIN_MS} ms, within the broker's default "
                "transaction.max.timeout.ms of 15 min)"
            )
        return problems

    @property
    def exactly_once(self) -> bool:
        return self.delivery_guarantee is vocabulary.DeliveryGuarantee.EXACTLY_ONCE

    @property
    def transaction_timeout_ms(self) -> int:
        """transaction.timeout.ms of the exactly-once producer: one commit interval plus the
        time a commit may take. It also bounds how long a crashed producer's open transaction
        holds read_committed consumers back when no producer with its transactional id
        starts again (docs/continuity.md)."""
        return self.checkpoint_interval_ms + TRANSACTION_COMMIT_MARGIN_MS

    def failure_model(self, reference_share: float) -> FailureModel:
        """The failure model in force. Its start chance per cycle is FAILURE_PROBABILITY when
        set (it wins); else the chance that gives FAILURE_SHARE with these episode lengths;
        else, for the learned model, the chance that gives ``reference_share`` (the reference's
        share of labelled rows), and for the original model the seed system's 0.05."""
        lengths = FailureModel(
            min_cycles=self.failure_min_cycles,
            max_cycles=self.failure_max_cycles,
            ramp_cycles=self.failure_ramp_cycles,
        )
        if self.failure_probability is not None:
            return replace(lengths, probability=self.failure_probability)
        if self.failure_share is not None:
            return lengths.with_share(self.failure_share)
        if self.simulation_model is SimulationModel.LEARNED:
            return lengths.with_share(min(reference_share, MAX_REFERENCE_SHARE))
        return lengths

    @property
    def reference_columns(self) -> ReferenceColumns:
        """Which columns of the reference table are sensors, label, time and group."""
        return ReferenceColumns.parse(
            sensors=self.sensor_columns,
            label=self.label_column,
            label_set="label_column" in self.model_fields_set,
            normal_labels=self.normal_labels,
            time=self.time_column,
            group=self.group_column,
        )

    @property
    def state_topic(self) -> str:
        """KAFKA_STATE_TOPIC, or the name derived from KAFKA_TOPIC (one state per data topic)."""
        return self.kafka_state_topic or f"{self.kafka_topic}-state"

    @property
    def state_prefix(self) -> str:
        """The key prefix of this simulation's records in the state topic: the name, and the
        uid beside it when SIMULATION_UID is set (docs/continuity.md)."""
        if self.simulation_uid is None:
            return self.simulation_name
        return f"{self.simulation_name}@{self.simulation_uid}"

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
    return [(row.variable, row.default, row.meaning) for row in contract.table_rows()]
