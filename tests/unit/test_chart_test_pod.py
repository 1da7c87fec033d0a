"""The `helm test` check (charts/sensorsim/files/check_records.py): what it accepts as a reading
in the wire format, and how it maps the producer's security variables to kafka-python."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import pytest

from tests.chart_support import CHART_DIR


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_records", CHART_DIR / "files" / "check_records.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = load_check()
GOOD: dict[str, Any] = {
    "machine_id": "3f2a9c1d",
    "timestamp": "2026-11-29T12:34:56.789+00:00",
    "readings": {"readings": {"Sensor 0": 0.452113, "Sensor 1": -0.120001}, "has_failure": False},
}


def test_a_reading_in_the_wire_format_passes() -> None:
    assert CHECK.wire_format_error(GOOD) is None
    extended = {**GOOD, "seq": 4, "failure": {"type": "1.0", "progress": 0.5, "cycle": 3}}
    assert CHECK.wire_format_error(extended) is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "not a JSON object"),
        ({"machine_id": "x", "timestamp": "2026-11-29T12:00:00+00:00"}, "missing keys"),
        ({**GOOD, "machine_id": ""}, "machine_id"),
        ({**GOOD, "timestamp": "yesterday"}, "ISO-8601"),
        ({**GOOD, "readings": {"readings": {"Sensor 0": 1.0}}}, "has_failure"),
        ({**GOOD, "readings": {"readings": {}, "has_failure": True}}, "non-empty"),
        ({**GOOD, "readings": {"readings": {"Sensor 0": "1"}, "has_failure": True}}, "number"),
        ({**GOOD, "readings": {"readings": {"Sensor 0": True}, "has_failure": True}}, "number"),
    ],
)
def test_bodies_outside_the_wire_format_fail(body: Any, problem: str) -> None:
    error = CHECK.wire_format_error(body)
    assert error is not None
    assert problem in error


def test_client_settings_use_the_producers_variable_names() -> None:
    assert CHECK.client_settings({}) == {"security_protocol": "PLAINTEXT"}
    settings = CHECK.client_settings(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "user",
            "KAFKA_SASL_PASSWORD": "secret",
            "KAFKA_SSL_CAFILE": "/etc/kafka-ca/ca.crt",
        }
    )
    assert settings == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "user",
        "sasl_plain_password": "secret",
        "ssl_cafile": "/etc/kafka-ca/ca.crt",
    }
