"""The producer's configuration contract: every setting written once.

Each :class:`Setting` holds a variable's name, default, bounds, pattern, choices, extra rules and
meaning. Everything else is derived from this table:

* ``producer/settings.py`` builds its pydantic-settings fields from it (``Setting.field``) and
  checks its patterns and rules with ``Setting.problem``;
* the operator's SensorSimulation CRD takes the same bounds, enums and rules (each rule carries
  its CEL expression; ``sensorsim_operator/api/contract_fields.py`` turns a setting into a spec
  field), so the API server refuses what the producer would refuse;
* the operator writes the pod environment under these names (``Setting.render``);
* the README's variable table is generated from it (``table_rows``, written by
  ``scripts/settings_table.py``) and checked by a test.

Adding a setting is one entry here (plus its typed field in ``ProducerSettings``, which a test
insists on). Rules are written as CEL and as a Python predicate side by side; tests put the
same values to the real API server and to the producer's settings, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal, get_args

from pydantic import Field

from domain.messages import MessageFormat
from domain.simulation_model import (
    DEFAULT_PERSISTENCE,
    ORIGINAL_FAILURE_PROBABILITY,
    SimulationModel,
)

# --- enums --------------------------------------------------------------------------------------


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class DeliveryGuarantee(StrEnum):
    AT_LEAST_ONCE = "at-least-once"
    EXACTLY_ONCE = "exactly-once"


Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
Acks = Literal["all", "1", "0"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]

# --- limits -------------------------------------------------------------------------------------

MAX_SIMULATION_MACHINES: Final = 10_000_000
"""Machines in one simulation (over all shards). Machine ids exist for 2**32 machines; this bound
catches a typo (an extra zero or three) before it asks a cluster for terabytes."""
MAX_SHARDS: Final = 1024
MAX_SENSORS: Final = 1000
MAX_INTERVAL_MS: Final = 86_400_000  # one day
MAX_EPISODE_CYCLES: Final = 1_000_000
MAX_PARTITIONS: Final = 100_000
MAX_SEED: Final = 2**64 - 1
MAX_COLUMN_NAME: Final = 256
MAX_COLUMN_LIST: Final = 65_536
MAX_SCENARIOS_TEXT: Final = 1_048_576
RATE_FAULT_NAMES: Final = ("dropout", "spike", "late", "out_of_order", "duplicate")
"""The data-quality faults QUALITY_FAULT_RATE may draw (``domain.scenarios.RATE_FAULTS``)."""
BUNDLED_SENSOR_COLUMNS: Final = 20
"""'Sensor <n>' columns of the bundled data/data_sensors.csv (a test reads the file)."""

# Kafka topic names: legal characters, and not the names Kafka refuses or keeps for itself.
TOPIC_PATTERN: Final = r"^[A-Za-z0-9._-]+$"
MAX_TOPIC_LENGTH: Final = 249
STATE_TOPIC_SUFFIX: Final = "-state"
"""The state topic's name is the data topic's with this suffix unless KAFKA_STATE_TOPIC is set,
so a data topic derives a legal state topic only up to ``MAX_TOPIC_LENGTH`` minus its length."""
SIMULATION_UID_PATTERN: Final = r"^[a-z0-9-]{1,64}$"
DEFAULT_SHUTDOWN_GRACE_SECONDS: Final = 30
MAX_SHUTDOWN_GRACE_SECONDS: Final = 3600
# host:port with a port of 1-65535; hosts are names, IPv4 addresses or bracketed IPv6 addresses.
HOST_PATTERN: Final = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?)"
PORT_PATTERN: Final = (
    r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
SERVER_PATTERN: Final = f"^{HOST_PATTERN}:{PORT_PATTERN}$"
SERVERS_PATTERN: Final = f"^{HOST_PATTERN}:{PORT_PATTERN}(,{HOST_PATTERN}:{PORT_PATTERN})*$"


@dataclass(frozen=True, slots=True)
class Rule:
    """A check beyond bounds and pattern, as CEL (for the API server, ``self`` is the value) and
    as a Python predicate (for the producer), with the message both give."""

    cel: str
    check: Callable[[Any], bool]
    message: str


@dataclass(frozen=True, slots=True)
class Setting:
    """One producer setting (an environment variable)."""

    env: str
    default: Any
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    pattern_message: str = ""
    choices: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    shown_default: str | None = None
    secret: bool = False
    option: str | None = None
    """The command-line option of ``sensorsim run`` when it is not the variable's name in
    lower case with dashes (``--bootstrap-servers`` for KAFKA_BOOTSTRAP_SERVERS)."""
    shapes_stream: bool = False
    """True when the setting changes what a machine emits or which process emits it (ownership,
    identity, model, schedule, failures, data, topics). The producer records these values as a
    segment of the simulation's configuration history; the operator hashes them to decide that
    a change must stop every old pod before a new one starts (docs/operator.md)."""

    @property
    def name(self) -> str:
        """The Python field name (the variable in lower case)."""
        return self.env.lower()

    @property
    def flag(self) -> str | None:
        """The command-line option that sets this variable (None: the environment only, for
        secrets, which a process listing would show)."""
        if self.secret:
            return None
        return self.option or "--" + self.env.lower().replace("_", "-")

    def bounds(self) -> dict[str, Any]:
        """The bounds that are set, as pydantic ``Field`` arguments (``ge``, ``le``, ...)."""
        bounds = {
            "ge": self.ge,
            "gt": self.gt,
            "le": self.le,
            "lt": self.lt,
            "min_length": self.min_length,
            "max_length": self.max_length,
        }
        return {key: value for key, value in bounds.items() if value is not None}

    def field(self) -> Any:
        """The pydantic ``Field`` of the producer's setting (patterns and rules are checked by
        :meth:`problem`, so their messages are the contract's own)."""
        return Field(self.default, description=self.description, **self.bounds())

    def validate(self, value: Any) -> Any:
        """``value`` if :meth:`problem` finds nothing, else ValueError (a pydantic validator)."""
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` by this setting's pattern and rules (None = fine)."""
        if (
            self.pattern is not None
            and isinstance(value, str)
            and re.fullmatch(self.pattern, value) is None
        ):
            return self.pattern_message
        for rule in self.rules:
            if not rule.check(value):
                return rule.message
        return None

    def render(self, value: Any) -> str:
        """``value`` as this variable's text in a pod's environment."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, StrEnum):
            return value.value
        if isinstance(value, float):
            return repr(value)
        return str(value)

    def shown(self) -> str:
        """The default as the docs show it."""
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "unset"
        return self.render(self.default)


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


def _text(literal: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in get_args(literal))


_TOPIC_RULES: Final = (
    Rule(
        cel="self != '.' && self != '..'",
        check=lambda value: value not in {".", ".."},
        message="'.' and '..' are not valid Kafka topic names",
    ),
    Rule(
        cel="!self.startsWith('__')",
        check=lambda value: not str(value).startswith("__"),
        message=(
            "topics starting with '__' are Kafka's internal topics (e.g. __consumer_offsets): "
            "choose another name"
        ),
    ),
)


def _topic_setting(env: str, default: str | None, description: str, option: str) -> Setting:
    """A Kafka topic name: what Kafka accepts, less what the producer must not write to."""
    return Setting(
        env,
        default,
        description,
        min_length=1,
        max_length=MAX_TOPIC_LENGTH,
        pattern=TOPIC_PATTERN,
        pattern_message=f"must be 1-{MAX_TOPIC_LENGTH} characters of A-Z a-z 0-9 . _ -",
        rules=_TOPIC_RULES,
        shapes_stream=True,
        option=option,
    )


SETTINGS: Final[tuple[Setting, ...]] = (
    # Kafka target (original names and defaults)
    Setting(
        "KAFKA_BOOTSTRAP_SERVERS",
        "localhost:9092",
        "Comma-separated host:port list of Kafka brokers.",
        min_length=1,
        max_length=2048,
        pattern=SERVERS_PATTERN,
        pattern_message=(
            "must be a comma-separated list of host:port with a port of 1-65535 "
            "(no scheme such as PLAINTEXT://)"
        ),
        option="--bootstrap-servers",
    ),
    _topic_setting(
        "KAFKA_TOPIC", "sensor-data", "Topic the readings are published to.", option="--topic"
    ),
    # Simulation (original names and defaults)
    Setting(
        "NUM_SENSORS",
        20,
        "Use the first N 'Sensor <n>' columns of the data (unset: all of a narrower file).",
        ge=1,
        le=MAX_SENSORS,
        shapes_stream=True,
        option="--sensors",
    ),
    Setting(
        "SIMULATION_INTERVAL_MS",
        1000,
        "Cycle period in ms (0 = as fast as possible).",
        ge=0,
        le=MAX_INTERVAL_MS,
        shapes_stream=True,
        option="--interval",
    ),
    Setting(
        "SENSOR_DATA_FILE",
        None,  # the producer fills in the bundled file's path
        "Reference CSV (default: the bundled data set).",
        shown_default="data/data_sensors.csv (bundled)",
        shapes_stream=True,
        option="--data",
    ),
    # Reference table columns (docs/simulation.md, "Reference data")
    Setting(
        "SENSOR_COLUMNS",
        None,
        "Comma-separated sensor columns (default: the 'Sensor <n>' columns, else every numeric "
        "column but the label, time and group columns).",
        min_length=1,
        max_length=MAX_COLUMN_LIST,
        shapes_stream=True,
    ),
    Setting(
        "LABEL_COLUMN",
        "Label",
        "Column naming each row's failure type (a normal value: a normal row).",
        min_length=1,
        max_length=MAX_COLUMN_NAME,
        shapes_stream=True,
    ),
    Setting(
        "NORMAL_LABELS",
        "",
        "Comma-separated label values that mean normal, e.g. 0 or NORMAL (a blank label is "
        "always normal).",
        max_length=MAX_COLUMN_LIST,
        shown_default="blank",
        shapes_stream=True,
    ),
    Setting(
        "TIME_COLUMN",
        None,
        "Column of times (numbers or timestamps) ordering each group's rows as a time series.",
        min_length=1,
        max_length=MAX_COLUMN_NAME,
        shapes_stream=True,
    ),
    Setting(
        "GROUP_COLUMN",
        None,
        "Column of machine or recording ids; each group is its own series.",
        min_length=1,
        max_length=MAX_COLUMN_NAME,
        shapes_stream=True,
    ),
    # Fleet
    Setting(
        "NUM_MACHINES",
        1,
        "Machines in the simulation.",
        ge=1,
        le=MAX_SIMULATION_MACHINES,
        shapes_stream=True,
        option="--machines",
    ),
    Setting(
        "SHARD_INDEX",
        0,
        "This process's shard (0-based).",
        ge=0,
        lt=MAX_SHARDS,
        shapes_stream=True,
        option="--shard-index",
    ),
    Setting(
        "SHARD_COUNT",
        1,
        "Number of shards the machines are split into.",
        ge=1,
        le=MAX_SHARDS,
        shapes_stream=True,
        option="--shard-count",
    ),
    Setting(
        "SIMULATION_SEED",
        None,
        "Seed for reproducible output (unset = random).",
        ge=0,
        le=MAX_SEED,
        shapes_stream=True,
        option="--seed",
    ),
    Setting(
        "SIMULATION_NAME",
        "sensorsim",
        "Name keying machine ids and carried in a record header.",
        min_length=1,
        max_length=253,
        shapes_stream=True,
        option="--name",
    ),
    Setting(
        "SIMULATION_UID",
        None,
        "The simulation's identity beside its name (the operator passes the resource's uid).",
        pattern=SIMULATION_UID_PATTERN,
        pattern_message="must be 1-64 characters of a-z 0-9 -",
        shapes_stream=True,
    ),
    Setting(
        "SIMULATION_MODEL",
        SimulationModel.LEARNED,
        "learned (the reference's distributions and dependence) or original.",
        choices=_values(SimulationModel),
        shapes_stream=True,
        option="--model",
    ),
    Setting(
        "SIMULATION_PERSISTENCE",
        None,
        "Per-cycle autocorrelation of the learned model's readings (0..<1); set, it overrides "
        "the dynamics learned from TIME_COLUMN.",
        ge=0.0,
        lt=1.0,
        shapes_stream=True,
        shown_default=f"learned from TIME_COLUMN, else {DEFAULT_PERSISTENCE}",
    ),
    # Failure model
    Setting(
        "FAILURE_PROBABILITY",
        None,
        "Chance per cycle that a healthy machine starts failing; set, it wins over FAILURE_SHARE.",
        ge=0.0,
        le=1.0,
        shapes_stream=True,
        shown_default=f"{ORIGINAL_FAILURE_PROBABILITY} (original model), else from FAILURE_SHARE",
    ),
    Setting(
        "FAILURE_SHARE",
        None,
        "Long-run share of failing readings (0..<1); the start chance follows from it and the "
        "episode lengths.",
        ge=0.0,
        lt=1.0,
        shown_default="the reference's labelled share (learned model)",
        shapes_stream=True,
    ),
    Setting(
        "FAILURE_MIN_CYCLES",
        30,
        "Shortest failure episode (cycles).",
        ge=1,
        le=MAX_EPISODE_CYCLES,
        shapes_stream=True,
    ),
    Setting(
        "FAILURE_MAX_CYCLES",
        60,
        "Longest failure episode (cycles).",
        ge=1,
        le=MAX_EPISODE_CYCLES,
        shapes_stream=True,
    ),
    Setting(
        "FAILURE_RAMP_CYCLES",
        10,
        "Cycles over which a failure sets in linearly (0 = at once).",
        ge=0,
        le=MAX_EPISODE_CYCLES,
        shapes_stream=True,
    ),
    # Scenarios (docs/scenarios.md)
    Setting(
        "SCENARIOS",
        None,
        "Scenarios as a JSON list: failures on demand, no-failure windows, degradation with "
        "remaining-useful-life labels, data-quality faults (docs/scenarios.md).",
        min_length=1,
        max_length=MAX_SCENARIOS_TEXT,
        shapes_stream=True,
    ),
    Setting(
        "SCENARIOS_FILE",
        None,
        "A JSON or YAML file of scenarios (instead of SCENARIOS).",
        shapes_stream=True,
    ),
    Setting(
        "QUALITY_FAULT_RATE",
        0.0,
        "Each record's chance of a random data-quality fault, labelled (0 = none; "
        "docs/scenarios.md).",
        ge=0.0,
        le=1.0,
        shapes_stream=True,
    ),
    Setting(
        "QUALITY_FAULT_KINDS",
        ",".join(RATE_FAULT_NAMES),
        "Comma-separated faults QUALITY_FAULT_RATE draws from, each its equal share.",
        pattern=f"^({'|'.join(RATE_FAULT_NAMES)})(,({'|'.join(RATE_FAULT_NAMES)}))*$",
        pattern_message=f"must be a comma-separated list of {', '.join(RATE_FAULT_NAMES)}",
        shapes_stream=True,
    ),
    # Kafka client
    Setting(
        "KAFKA_SECURITY_PROTOCOL",
        SecurityProtocol.PLAINTEXT,
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        choices=_values(SecurityProtocol),
        option="--security-protocol",
    ),
    Setting(
        "KAFKA_SASL_MECHANISM",
        None,
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols).",
        choices=_values(SaslMechanism),
    ),
    Setting("KAFKA_SASL_USERNAME", None, "SASL user name.", secret=True),
    Setting("KAFKA_SASL_PASSWORD", None, "SASL password.", secret=True),
    Setting(
        "KAFKA_SASL_JAAS_CONFIG",
        None,
        "A JAAS line (sasl.jaas.config, as a Strimzi KafkaUser Secret holds it) giving the SASL "
        "username and password when KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD are unset.",
        secret=True,
    ),
    Setting("KAFKA_SSL_CAFILE", None, "CA bundle to verify the brokers."),
    Setting(
        "KAFKA_SSL_CERTFILE",
        None,
        "Client certificate (PEM) for TLS client authentication (SSL, SASL_SSL).",
    ),
    Setting(
        "KAFKA_SSL_KEYFILE",
        None,
        "Unencrypted private key (PEM) of KAFKA_SSL_CERTFILE.",
    ),
    Setting(
        "KAFKA_COMPRESSION_TYPE",
        "none",
        "Batch compression: none, gzip, snappy, lz4 or zstd.",
        choices=_text(Compression),
        option="--compression",
    ),
    Setting("KAFKA_LINGER_MS", 5, "Producer linger (ms).", ge=0, le=60_000),
    Setting("KAFKA_BATCH_SIZE", 65536, "Producer batch size (bytes).", ge=1, le=64 * 1024 * 1024),
    Setting(
        "KAFKA_ACKS",
        "all",
        "all (idempotent), 1 or 0 (both disable idempotence).",
        choices=_text(Acks),
        option="--acks",
    ),
    Setting(
        "KAFKA_CREATE_TOPIC",
        False,
        "Create the topic at start if missing.",
        option="--create-topic",
    ),
    Setting(
        "KAFKA_ALLOW_COMPACTED_TOPIC",
        False,
        "Accept a topic with cleanup.policy=compact (keeps one record per key).",
    ),
    Setting(
        "KAFKA_TOPIC_PARTITIONS",
        6,
        "Partitions when the topic is created.",
        ge=1,
        le=MAX_PARTITIONS,
    ),
    Setting(
        "KAFKA_CONNECT_TIMEOUT_MS",
        15_000,
        "How long to try to reach the brokers at start.",
        ge=100,
    ),
    Setting(
        "KAFKA_DELIVERY_TIMEOUT_MS",
        120_000,
        "How long a record may wait for acknowledgement.",
        ge=1000,
    ),
    Setting(
        "KAFKA_MAX_PENDING_RECORDS",
        200_000,
        "Unacknowledged records before the cycle loop waits.",
        ge=1,
        le=100_000_000,
    ),
    # Continuity (docs/continuity.md)
    _topic_setting(
        "KAFKA_STATE_TOPIC",
        None,
        "Compacted topic of the machines' checkpoints (default: KAFKA_TOPIC-state).",
        option="--state-topic",
    ),
    Setting(
        "CHECKPOINT_INTERVAL_MS",
        30_000,
        "How often each machine's state is checkpointed (0 = no continuity).",
        ge=0,
        le=86_400_000,
    ),
    Setting(
        "DELIVERY_GUARANTEE",
        DeliveryGuarantee.AT_LEAST_ONCE,
        "at-least-once, or exactly-once for read_committed consumers (transactions committed "
        "every CHECKPOINT_INTERVAL_MS: their end-to-end latency).",
        choices=_values(DeliveryGuarantee),
        option="--delivery-guarantee",
    ),
    Setting(
        "CATCH_UP_MAX_CYCLES",
        600,
        "Missed cycles re-emitted after a restart; beyond, the producer skips ahead.",
        ge=0,
    ),
    Setting(
        "SIMULATION_EPOCH",
        None,
        "When cycle 0 was due, ISO-8601 with offset (unset = kept in the state topic).",
        shapes_stream=True,
    ),
    # Output and operations
    Setting(
        "MESSAGE_FORMAT",
        MessageFormat.ORIGINAL,
        "original (the compatible body) or extended.",
        choices=_values(MessageFormat),
        option="--format",
    ),
    Setting(
        "MAX_MESSAGES",
        None,
        "Stop after this many records from this process.",
        ge=1,
        option="--max-messages",
    ),
    Setting("DURATION_SECONDS", None, "Stop after this many seconds.", gt=0, option="--duration"),
    Setting(
        "HTTP_PORT",
        8080,
        "Port of /healthz, /readyz, /metrics (0 disables).",
        ge=0,
        le=65535,
    ),
    Setting(
        "SHUTDOWN_GRACE_SECONDS",
        DEFAULT_SHUTDOWN_GRACE_SECONDS,
        "Seconds from SIGTERM to SIGKILL; shutdown (flush, final checkpoint) ends before.",
        ge=1,
        le=MAX_SHUTDOWN_GRACE_SECONDS,
    ),
    Setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.", choices=_text(LogLevel)),
    Setting("LOG_FORMAT", "text", "text or json lines.", choices=_text(LogFormat)),
)

BY_ENV: Final[Mapping[str, Setting]] = {setting.env: setting for setting in SETTINGS}


STREAM_SETTINGS: Final[frozenset[str]] = frozenset(s.env for s in SETTINGS if s.shapes_stream)
"""The variables whose values shape a machine's stream (``Setting.shapes_stream``)."""


def setting(env: str) -> Setting:
    """The setting named ``env`` (a KeyError names a setting the contract does not have)."""
    return BY_ENV[env]


@dataclass(frozen=True, slots=True)
class TableRow:
    variable: str
    default: str
    meaning: str = field(default="")


def table_rows() -> list[TableRow]:
    """(variable, default as shown, meaning) of every setting, in contract order."""
    return [TableRow(s.env, s.shown(), s.description) for s in SETTINGS]
