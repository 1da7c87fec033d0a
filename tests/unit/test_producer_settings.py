"""Configuration from the environment: names, defaults, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.messages import MessageFormat
from producer.errors import ConfigError
from producer.settings import DEFAULT_DATA_FILE, ProducerSettings, env_table, load_settings

pytestmark = pytest.mark.unit

CONTRACT_VARIABLES = {
    "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
    "KAFKA_TOPIC": "sensor-data",
    "NUM_SENSORS": "20",
    "SIMULATION_INTERVAL_MS": "1000",
    "NUM_MACHINES": "1",
    "SHARD_INDEX": "0",
    "SHARD_COUNT": "1",
    "SIMULATION_SEED": "unset",
    "SIMULATION_NAME": "sensorsim",
    "FAILURE_PROBABILITY": "0.05 (original model), else from FAILURE_SHARE",
    "FAILURE_MIN_CYCLES": "30",
    "FAILURE_MAX_CYCLES": "60",
    "FAILURE_RAMP_CYCLES": "10",
    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "unset",
    "KAFKA_SASL_USERNAME": "unset",
    "KAFKA_SASL_PASSWORD": "unset",
    "KAFKA_SSL_CAFILE": "unset",
    "KAFKA_COMPRESSION_TYPE": "none",
    "KAFKA_LINGER_MS": "5",
    "KAFKA_BATCH_SIZE": "65536",
    "KAFKA_ACKS": "all",
    "KAFKA_CREATE_TOPIC": "false",
    "KAFKA_TOPIC_PARTITIONS": "6",
    "MESSAGE_FORMAT": "original",
    "MAX_MESSAGES": "unset",
    "DURATION_SECONDS": "unset",
    "HTTP_PORT": "8080",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _, _ in env_table():
        monkeypatch.delenv(name, raising=False)


def test_every_contract_variable_exists_with_its_default() -> None:
    table = {name: default for name, default, _ in env_table()}
    for name, default in CONTRACT_VARIABLES.items():
        assert table[name] == default, name
    assert table["SENSOR_DATA_FILE"].startswith("data/data_sensors.csv")
    assert all(meaning for _, _, meaning in env_table())


def test_defaults() -> None:
    s = load_settings()
    assert s.sensor_data_file == DEFAULT_DATA_FILE
    assert DEFAULT_DATA_FILE.is_file()
    assert s.message_format is MessageFormat.ORIGINAL
    # the learned model (the default) fails as often as the reference is labelled
    assert s.failure_model(0.0625).failing_share() == pytest.approx(0.0625)
    assert load_settings(simulation_model="original").failure_model(0.0625).probability == 0.05
    assert s.simulation_seed is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUM_MACHINES", "12")
    monkeypatch.setenv("SHARD_COUNT", "3")
    monkeypatch.setenv("SHARD_INDEX", "2")
    monkeypatch.setenv("SIMULATION_SEED", "18446744073709551615")
    monkeypatch.setenv("MESSAGE_FORMAT", "extended")
    monkeypatch.setenv("KAFKA_ACKS", "1")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", " a:1 , b:2 ")
    monkeypatch.setenv("MAX_MESSAGES", "")  # blank = unset
    s = load_settings()
    assert (s.num_machines, s.shard_count, s.shard_index) == (12, 3, 2)
    assert s.simulation_seed == 2**64 - 1
    assert s.message_format is MessageFormat.EXTENDED
    assert s.kafka_acks == "1"
    assert s.log_level == "DEBUG"
    assert s.bootstrap_list == ["a:1", "b:2"]
    assert s.max_messages is None


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_MESSAGES", "5")
    assert load_settings(max_messages=9).max_messages == 9
    assert load_settings(max_messages=None).max_messages == 5


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"NUM_SENSORS": "abc"}, ["NUM_SENSORS='abc'"]),
        ({"NUM_SENSORS": "0"}, ["NUM_SENSORS"]),
        ({"FAILURE_PROBABILITY": "1.5"}, ["FAILURE_PROBABILITY"]),
        ({"KAFKA_TOPIC": "bad topic"}, ["KAFKA_TOPIC"]),
        ({"KAFKA_BOOTSTRAP_SERVERS": "nohost"}, ["KAFKA_BOOTSTRAP_SERVERS"]),
        ({"KAFKA_BOOTSTRAP_SERVERS": "PLAINTEXT://kafka:9092"}, ["no scheme"]),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:1,http://b:2"}, ["KAFKA_BOOTSTRAP_SERVERS"]),
        ({"KAFKA_BOOTSTRAP_SERVERS": "my host:9092"}, ["KAFKA_BOOTSTRAP_SERVERS"]),
        ({"DURATION_SECONDS": "inf"}, ["DURATION_SECONDS='inf'", "finite"]),
        ({"FAILURE_PROBABILITY": "nan"}, ["FAILURE_PROBABILITY='nan'", "finite"]),
        ({"KAFKA_COMPRESSION_TYPE": "brotli"}, ["KAFKA_COMPRESSION_TYPE"]),
        ({"MESSAGE_FORMAT": "xml"}, ["MESSAGE_FORMAT"]),
        ({"HTTP_PORT": "70000"}, ["HTTP_PORT"]),
        ({"SIMULATION_SEED": "-1"}, ["SIMULATION_SEED"]),
        ({"FAILURE_MIN_CYCLES": "10", "FAILURE_MAX_CYCLES": "5"}, ["FAILURE_MAX_CYCLES"]),
        ({"NUM_MACHINES": "2", "SHARD_COUNT": "3", "SHARD_INDEX": "0"}, ["SHARD_COUNT"]),
        ({"SHARD_INDEX": "1"}, ["SHARD_INDEX"]),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, ["KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME"]),
        ({"KAFKA_SASL_MECHANISM": "PLAIN"}, ["KAFKA_SECURITY_PROTOCOL"]),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, ["KAFKA_SSL_CAFILE"]),
        ({"NUM_SENSORS": "x", "HTTP_PORT": "y"}, ["NUM_SENSORS", "HTTP_PORT"]),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: list[str]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid configuration: ")
    assert "\n" not in message
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    "servers", ["kafka:9092", "10.0.0.1:9092,b-1.kafka_x.example.com:9093", "[::1]:9092"]
)
def test_bootstrap_servers_accept_names_ipv4_and_ipv6(
    monkeypatch: pytest.MonkeyPatch, servers: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", servers)
    assert load_settings().kafka_bootstrap_servers == servers


def test_sasl_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(ca))
    s = load_settings()
    assert s.kafka_sasl_mechanism is not None
    assert s.kafka_sasl_mechanism.value == "SCRAM-SHA-512"
    assert "s3cret" not in repr(s)


def test_settings_are_frozen() -> None:
    s = ProducerSettings()
    with pytest.raises(ValueError, match="frozen"):
        s.num_sensors = 3  # type: ignore[misc]
