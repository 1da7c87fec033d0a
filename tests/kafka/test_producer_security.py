"""The producer against a broker that requires TLS, and SASL over TLS, with each mechanism.

One broker for the module: a SASL_SSL listener offering PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512,
and a TLS-only listener, both with a certificate signed by a test CA the producer is given with
KAFKA_SSL_CAFILE.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testbed import tools
from testbed.kafka import KafkaBroker
from tests.producer_kafka_support import producer_env, read_topic, run_producer, unique_topic

pytestmark = pytest.mark.kafka

USER, PASSWORD = "sensorsim", "sensorsim-tls-secret"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    tools.install(tools.KAFKA)
    broker = KafkaBroker(
        tmp_path_factory.mktemp("kafka-secure"), scram_user=USER, scram_password=PASSWORD,
        secure=True,
    )  # fmt: skip
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()


def client_settings(broker: KafkaBroker, mechanism: str | None) -> dict[str, Any]:
    if mechanism is None:
        return {"security_protocol": "SSL", "ssl_cafile": str(broker.ca_file)}
    return {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(broker.ca_file),
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
    }


@pytest.mark.parametrize(
    "mechanism",
    ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", None],
    ids=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "TLS-only"],
)
def test_records_are_delivered_over_tls_with_each_sasl_mechanism(
    secure_broker: KafkaBroker, mechanism: str | None
) -> None:
    topic = unique_topic(f"secure-{(mechanism or 'tls').lower()}")
    bootstrap = secure_broker.bootstrap if mechanism else secure_broker.tls_bootstrap
    security: dict[str, str] = {"KAFKA_SSL_CAFILE": str(secure_broker.ca_file)}
    if mechanism is None:
        security["KAFKA_SECURITY_PROTOCOL"] = "SSL"
    else:
        security |= {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }
    env = producer_env(bootstrap, topic, NUM_MACHINES="4", SIMULATION_INTERVAL_MS="0", **security)
    result = run_producer(env, "--max-messages", "40", timeout=120)
    assert result.returncode == 0, result.stderr
    records = read_topic(bootstrap, topic, **client_settings(secure_broker, mechanism))
    assert len(records) == 40
    assert PASSWORD not in result.stderr


def test_a_wrong_password_over_tls_is_one_clear_line(secure_broker: KafkaBroker) -> None:
    env = producer_env(
        secure_broker.bootstrap, unique_topic("secure-wrong"), KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SSL_CAFILE=str(secure_broker.ca_file), KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD="not-the-password",
        KAFKA_CONNECT_TIMEOUT_MS="45000",  # a loaded machine can need more than 10 s
    )  # fmt: skip
    result = run_producer(env, "--max-messages", "4", timeout=120)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert "rejected the credentials" in errors[0]
    assert "not-the-password" not in result.stderr
