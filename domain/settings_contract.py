"""The producer's configuration contract: every setting written once.

Each ``Setting`` (its type, with the enums, limits, patterns and rules it is written with, is in
``domain.settings_vocabulary``) holds a variable's name, default, bounds, pattern, choices, extra
rules and meaning. Everything else is derived from this table:

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

from collections.abc import Mapping
from typing import Final

from domain.messages import MessageFormat
from domain.settings_vocabulary import (
    DEFAULT_SHUTDOWN_GRACE_SECONDS,
    MAX_COLUMN_LIST,
    MAX_COLUMN_NAME,
    MAX_EPISODE_CYCLES,
    MAX_INTERVAL_MS,
    MAX_PARTITIONS,
    MAX_SCENARIOS_TEXT,
    MAX_SEED,
    MAX_SENSORS,
    MAX_SHARDS,
    MAX_SHUTDOWN_GRACE_SECONDS,
    MAX_SIMULATION_MACHINES,
    RATE_FAULT_NAMES,
    SERVERS_PATTERN,
    SIMULATION_UID_PATTERN,
    Acks,
    Compression,
    DeliveryGuarantee,
    LogFormat,
    LogLevel,
    SaslMechanism,
    SecurityProtocol,
    Setting,
    TableRow,
    choices_of,
    topic_setting,
)
from domain.simulation_model import (
    DEFAULT_PERSISTENCE,
    MAX_REGIMES,
    ORIGINAL_FAILURE_PROBABILITY,
    SimulationModel,
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
    topic_setting(
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
        choices=choices_of(SimulationModel),
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
    Setting(
        "SIMULATION_REGIMES",
        None,
        "Operating regimes of the learned model: each machine moves between them, with its "
        "own offset (1 = identical machines without regimes); unset: as many as the "
        "reference shows.",
        ge=1,
        le=MAX_REGIMES,
        shapes_stream=True,
        shown_default=f"learned from the reference (1 to {MAX_REGIMES})",
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
        choices=choices_of(SecurityProtocol),
        option="--security-protocol",
    ),
    Setting(
        "KAFKA_SASL_MECHANISM",
        None,
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols).",
        choices=choices_of(SaslMechanism),
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
        choices=choices_of(Compression),
        option="--compression",
    ),
    Setting("KAFKA_LINGER_MS", 5, "Producer linger (ms).", ge=0, le=60_000),
    Setting("KAFKA_BATCH_SIZE", 65536, "Producer batch size (bytes).", ge=1, le=64 * 1024 * 1024),
    Setting(
        "KAFKA_ACKS",
        "all",
        "all (idempotent), 1 or 0 (both disable idempotence).",
        choices=choices_of(Acks),
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
    topic_setting(
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
        choices=choices_of(DeliveryGuarantee),
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
        choices=choices_of(MessageFormat),
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
    Setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.", choices=choices_of(LogLevel)),
    Setting("LOG_FORMAT", "text", "text or json lines.", choices=choices_of(LogFormat)),
)

BY_ENV: Final[Mapping[str, Setting]] = {setting.env: setting for setting in SETTINGS}


STREAM_SETTINGS: Final[frozenset[str]] = frozenset(s.env for s in SETTINGS if s.shapes_stream)
"""The variables whose values shape a machine's stream (``Setting.shapes_stream``)."""


def setting(env: str) -> Setting:
    """The setting named ``env`` (a KeyError names a setting the contract does not have)."""
    return BY_ENV[env]


def table_rows() -> list[TableRow]:
    """(variable, default as shown, meaning) of every setting, in contract order."""
    return [TableRow(s.env, s.shown(), s.description) for s in SETTINGS]
