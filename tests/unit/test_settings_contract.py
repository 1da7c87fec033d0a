"""One contract: the producer's settings, the CRD, the pod environment and the README table all
say what domain/settings_contract.py says. Each test fails when one of them drifts."""

from __future__ import annotations

import typing
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import settings_contract as contract
from domain import settings_vocabulary as vocabulary
from producer.errors import ConfigError
from producer.settings import DEFAULT_DATA_FILE, ProducerSettings, load_settings
from scripts import settings_table
from sensorsim_operator.api.contract_fields import (
    API_MAX_LENGTHS,
    API_UPPER_BOUNDS,
    cel_validations,
)
from sensorsim_operator.api.kubernetes_types import MAX_SAFE_INTEGER
from sensorsim_operator.api.v1alpha1 import parse_spec
from sensorsim_operator.children.identity import SimulationRef
from sensorsim_operator.children.producer_env import producer_settings
from sensorsim_operator.crd import spec_schema

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SIMULATION = SimulationRef(namespace="plant", name="line-a", uid="uid-1", generation=1)

# Where each setting the operator sets from the spec lives in the CRD. The CRD property must
# carry the contract's bounds, enum and rules.
CRD_PATHS: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrapServers",
    "KAFKA_TOPIC": "kafka.topic",
    "NUM_SENSORS": "sensors",
    "SIMULATION_INTERVAL_MS": "intervalMs",
    "NUM_MACHINES": "machines",
    "SHARD_COUNT": "replicas",
    "SIMULATION_SEED": "seed",
    "SIMULATION_MODEL": "model",
    "SIMULATION_PERSISTENCE": "persistence",
    "SIMULATION_REGIMES": "regimes",
    "FAILURE_PROBABILITY": "failures.probability",
    "FAILURE_SHARE": "failures.share",
    "SENSOR_COLUMNS": "referenceData.sensorColumns",
    "LABEL_COLUMN": "referenceData.labelColumn",
    "NORMAL_LABELS": "referenceData.normalLabels",
    "TIME_COLUMN": "referenceData.timeColumn",
    "GROUP_COLUMN": "referenceData.groupColumn",
    "FAILURE_MIN_CYCLES": "failures.minCycles",
    "FAILURE_MAX_CYCLES": "failures.maxCycles",
    "FAILURE_RAMP_CYCLES": "failures.rampCycles",
    "KAFKA_SECURITY_PROTOCOL": "kafka.securityProtocol",
    "KAFKA_SASL_MECHANISM": "kafka.sasl.mechanism",
    "KAFKA_COMPRESSION_TYPE": "kafka.compression",
    "KAFKA_CREATE_TOPIC": "kafka.createTopic",
    "KAFKA_TOPIC_PARTITIONS": "kafka.partitions",
    "MESSAGE_FORMAT": "messageFormat",
    "LOG_LEVEL": "logLevel",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in contract.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)


def _crd_property(path: str) -> dict[str, Any]:
    node = spec_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_every_contract_setting_is_a_producer_field_and_nothing_else_is() -> None:
    assert set(ProducerSettings.model_fields) == {s.name for s in contract.SETTINGS}


def test_producer_fields_carry_the_contract_defaults_and_descriptions() -> None:
    defaults = load_settings()
    for setting in contract.SETTINGS:
        field = ProducerSettings.model_fields[setting.name]
        assert field.description == setting.description, setting.env
        if setting.env != "SENSOR_DATA_FILE":
            assert getattr(defaults, setting.name) == setting.default, setting.env
    assert defaults.sensor_data_file == DEFAULT_DATA_FILE


def _allowed(annotation: Any) -> set[str]:
    """The values a field's type admits: an enum's values or a Literal's (None aside)."""
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return {member.value for member in annotation}
    found: set[str] = set()
    for arg in typing.get_args(annotation):
        if arg is type(None):
            continue
        found |= _allowed(arg) if isinstance(arg, type) or typing.get_args(arg) else {str(arg)}
    return found


def test_enum_settings_have_exactly_the_contract_choices() -> None:
    for setting in contract.SETTINGS:
        if setting.choices:
            annotation = ProducerSettings.model_fields[setting.name].annotation
            assert _allowed(annotation) == set(setting.choices), setting.env


@pytest.mark.parametrize("env", sorted(CRD_PATHS))
def test_the_crd_takes_bounds_enums_and_rules_from_the_contract(env: str) -> None:
    setting, node = contract.setting(env), _crd_property(CRD_PATHS[env])
    if setting.ge is not None:
        assert node["minimum"] == setting.ge
    if setting.gt is not None:
        assert (node["minimum"], node["exclusiveMinimum"]) == (setting.gt, True)
    upper = API_UPPER_BOUNDS.get(env, setting.le)
    if upper is not None:
        assert node["maximum"] == upper
    if setting.lt is not None:
        assert (node["maximum"], node["exclusiveMaximum"]) == (setting.lt, True)
    if setting.choices:
        assert node["enum"] == list(setting.choices)
    assert node.get("x-kubernetes-validations", []) == cel_validations(setting)
    max_length = API_MAX_LENGTHS.get(env, setting.max_length)
    if max_length is not None:
        assert node["maxLength"] == max_length


def test_the_longest_topic_the_crd_admits_still_derives_a_legal_state_topic() -> None:
    longest = _crd_property("kafka.topic")["maxLength"]
    loaded = load_settings(kafka_topic="t" * longest)
    assert len(loaded.state_topic) == vocabulary.MAX_TOPIC_LENGTH
    with pytest.raises(ConfigError, match="too long to derive the state topic"):
        load_settings(kafka_topic="t" * (longest + 1))


def test_the_settings_that_shape_the_stream_are_the_design_list() -> None:
    design_list = {
        # ownership
        "NUM_MACHINES",
        "SHARD_INDEX",
        "SHARD_COUNT",
        # identity
        "SIMULATION_NAME",
        "SIMULATION_UID",
        "SIMULATION_SEED",
        "SIMULATION_EPOCH",
        # what each machine emits, and where
        "SIMULATION_MODEL",
        "SIMULATION_PERSISTENCE",
        "SIMULATION_REGIMES",
        "SIMULATION_INTERVAL_MS",
        "NUM_SENSORS",
        "SENSOR_DATA_FILE",
        "SENSOR_COLUMNS",
        "LABEL_COLUMN",
        "NORMAL_LABELS",
        "TIME_COLUMN",
        "GROUP_COLUMN",
        "FAILURE_PROBABILITY",
        "FAILURE_SHARE",
        "FAILURE_MIN_CYCLES",
        "FAILURE_MAX_CYCLES",
        "FAILURE_RAMP_CYCLES",
        "SCENARIOS",
        "SCENARIOS_FILE",
        "QUALITY_FAULT_RATE",
        "QUALITY_FAULT_KINDS",
        "KAFKA_TOPIC",
        "KAFKA_STATE_TOPIC",
    }
    assert design_list == contract.STREAM_SETTINGS


@pytest.mark.parametrize(
    ("value", "problem"),
    [("0b1e4c4e-6f7a-4d2b-9a53-1c2d3e4f5a6b", False), ("", True), ("A1", True), ("a" * 65, True)],
)
def test_the_simulation_uid_takes_a_kubernetes_uid(value: str, problem: bool) -> None:
    assert (contract.setting("SIMULATION_UID").problem(value) is not None) == problem


def test_every_crd_setting_reaches_the_pods_under_its_contract_name() -> None:
    spec = parse_spec(
        {
            "seed": 5,
            "persistence": 0.9,
            "regimes": 2,
            "failures": {"probability": 0.01, "share": 0.05},
            "referenceData": {
                "configMapName": "data",
                "sensorColumns": "a,b",
                "labelColumn": "is_anomaly",
                "normalLabels": "0",
                "timeColumn": "timestamp",
                "groupColumn": "recording",
            },
            "kafka": {
                "bootstrapServers": "k:9093",
                "securityProtocol": "SASL_SSL",
                "sasl": {"credentialsSecret": {"name": "creds"}},
            },
        }
    )
    assert set(CRD_PATHS) <= set(producer_settings(SIMULATION, spec))


def test_the_readme_and_contracts_tables_are_generated_from_the_contract() -> None:
    assert settings_table.main([]) == 0, "run `python scripts/settings_table.py --write`"
    readme = (REPO / "README.md").read_text()
    for setting in contract.SETTINGS:
        assert f"| `{setting.env}` | {setting.shown()} | {setting.description} |" in readme


def test_the_bundled_data_has_the_sensor_columns_the_crd_allows() -> None:
    columns = pd.read_csv(DEFAULT_DATA_FILE, nrows=0).columns
    sensors = [c for c in columns if str(c).startswith("Sensor ")]
    assert len(sensors) == vocabulary.BUNDLED_SENSOR_COLUMNS


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:0", "port of 1-65535"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:99999", "port of 1-65535"),
        ("KAFKA_TOPIC", ".", "not valid Kafka topic"),
        ("KAFKA_TOPIC", "..", "not valid Kafka topic"),
        ("KAFKA_TOPIC", "__consumer_offsets", "internal topics"),
        ("SIMULATION_MODEL", "walk", "SIMULATION_MODEL"),
        ("SIMULATION_PERSISTENCE", "1", "less than 1"),
        ("SIMULATION_PERSISTENCE", "-0.5", "greater than or equal to 0"),
        ("SIMULATION_REGIMES", "0", "greater than or equal to 1"),
        ("SIMULATION_REGIMES", "25", "less than or equal to 24"),
    ],
)
def test_the_producer_refuses_what_admission_refuses(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


_SPECS = st.fixed_dictionaries(
    {
        "replicas": st.integers(1, 8),
        "machines": st.integers(8, 10_000),
        "sensors": st.integers(1, vocabulary.BUNDLED_SENSOR_COLUMNS),
        "intervalMs": st.integers(0, vocabulary.MAX_INTERVAL_MS),
        "seed": st.integers(0, MAX_SAFE_INTEGER),
        "model": st.sampled_from(contract.setting("SIMULATION_MODEL").choices),
        "persistence": st.floats(0.0, 1.0, exclude_max=True),
        "messageFormat": st.sampled_from(contract.setting("MESSAGE_FORMAT").choices),
        "kafka": st.fixed_dictionaries(
            {
                "bootstrapServers": st.sampled_from(["k:1", "k-0.k.svc:65535,[::1]:9092"]),
                "topic": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,30}\Z"),
                "compression": st.sampled_from(contract.setting("KAFKA_COMPRESSION_TYPE").choices),
                "partitions": st.integers(1, vocabulary.MAX_PARTITIONS),
            }
        ),
        "failures": st.integers(1, 1000).flatmap(
            lambda low: st.fixed_dictionaries(
                {
                    "minCycles": st.just(low),
                    "maxCycles": st.integers(low, vocabulary.MAX_EPISODE_CYCLES),
                    "probability": st.floats(0.0, 1.0),
                }
            )
        ),
    }
)


@settings(max_examples=60, deadline=None)
@given(spec=_SPECS)
def test_every_env_the_operator_builds_from_an_admitted_spec_loads_in_the_producer(
    spec: dict[str, Any],
) -> None:
    env = producer_settings(SIMULATION, parse_spec(spec))
    loaded = load_settings(**{key.lower(): value for key, value in env.items()})
    assert loaded.num_machines == spec["machines"]
    assert loaded.simulation_model == spec["model"]
    assert loaded.simulation_persistence == spec["persistence"]
