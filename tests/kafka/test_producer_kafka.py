"""The producer against a real Apache Kafka broker (KRaft), as a user runs it.

Each test runs ``python -m producer`` in a subprocess against the session broker, on a topic
of its own, and reads the topic back with kafka-python.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import defaultdict
from typing import Protocol

import pytest

from domain.machine_ids import machine_ids
from testbed.polling import wait_until
from testbed.procs import free_port
from tests.producer_kafka_support import (
    Broker,
    get_status,
    original_consumer_parse,
    producer_env,
    read_topic,
    records_delivered,
    run_producer,
    sequences,
    start_producer,
    summary,
    unique_topic,
)

pytestmark = pytest.mark.kafka


def test_machines_times_cycles_records_keyed_and_parseable(kafka_bootstrap: str) -> None:
    machines, cycles = 7, 25
    topic = unique_topic("exact")
    env = producer_env(
        kafka_bootstrap, topic, NUM_MACHINES=str(machines), SIMULATION_INTERVAL_MS="0"
    )
    result = run_producer(env, "--max-messages", str(machines * cycles))
    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == (cycles, machines * cycles, machines * cycles, 0)

    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == machines * cycles
    ids = machine_ids("kafka-test", range(machines))
    assert {r.key.decode() for r in records} == set(ids)
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    for record in records:
        machine_id, timestamp, readings, has_failure = original_consumer_parse(record.value)
        assert record.key == machine_id.encode()
        assert timestamp.utcoffset() is not None
        assert list(readings) == [f"Sensor {n}" for n in range(1, 21)]
        assert isinstance(has_failure, bool)
        assert record.headers["simulation"] == b"kafka-test"
        assert ("failure_type" in record.headers) == has_failure
        partitions_of[record.key].add(record.partition)
    assert all(len(p) == 1 for p in partitions_of.values())  # a machine stays on one partition
    for seqs in sequences(records).values():
        assert seqs == list(range(cycles))  # in order, per machine


def test_records_land_where_the_default_partitioner_puts_their_key(kafka_bootstrap: str) -> None:
    """The sink passes explicit partitions; they must be the Java client's murmur2 choice."""
    from kafka.partitioner.default import murmur2  # noqa: PLC0415

    machines = 60
    topic = unique_topic("partitions")
    env = producer_env(
        kafka_bootstrap, topic, NUM_MACHINES=str(machines), SIMULATION_INTERVAL_MS="0",
        LOG_LEVEL="INFO",
    )  # fmt: skip
    result = run_producer(env, "--max-messages", str(machines * 3))
    assert result.returncode == 0, result.stderr
    assert re.search(r"CRC-32C: crc32c", result.stderr), result.stderr
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == machines * 3
    for record in records:
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % 3, record.key
    assert len({r.partition for r in records}) == 3


def test_sigterm_mid_run_loses_nothing(kafka_bootstrap: str) -> None:
    machines = 10
    topic = unique_topic("sigterm")
    port = free_port()
    env = producer_env(
        kafka_bootstrap, topic, NUM_MACHINES=str(machines), SIMULATION_INTERVAL_MS="20",
        HTTP_PORT=str(port),
    )  # fmt: skip
    process = start_producer(env)
    wait_until(lambda: get_status(port, "/readyz") == 200, timeout=30, message="readiness")
    assert get_status(port, "/healthz") == 200
    wait_until(
        lambda: records_delivered(port) > 10 * machines, timeout=60, message="ten cycles delivered"
    )
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    cycles, sent, delivered, failed = summary(err)
    assert cycles > 10
    assert sent == delivered == cycles * machines
    assert failed == 0

    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == sent
    for seqs in sequences(records).values():
        assert seqs == list(range(cycles))


def test_broker_outage_of_ten_seconds_loses_and_duplicates_nothing(kafka_broker: Broker) -> None:
    machines, port = 20, free_port()
    topic = unique_topic("outage")
    env = producer_env(
        kafka_broker.bootstrap, topic, NUM_MACHINES=str(machines), SIMULATION_INTERVAL_MS="50",
        HTTP_PORT=str(port),
    )  # fmt: skip
    process = start_producer(env)
    started = time.monotonic()
    try:
        wait_until(lambda: records_delivered(port) > 0, timeout=30, message="first deliveries")
        kafka_broker.stop()
        time.sleep(10)  # the fault under test: the broker is down for ten seconds
    finally:
        kafka_broker.start()
    after_outage = records_delivered(port)
    wait_until(
        lambda: records_delivered(port) > after_outage, timeout=60, message="delivery to resume"
    )
    elapsed = time.monotonic() - started
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    cycles, sent, delivered, failed = summary(err)
    assert failed == 0
    assert sent == delivered == cycles * machines
    assert cycles > 0.8 * elapsed / 0.050  # the loop kept its 50 ms schedule through the outage

    records = read_topic(kafka_broker.bootstrap, topic)
    assert len(records) == sent
    seqs = sequences(records)
    assert len(seqs) == machines
    for machine_seqs in seqs.values():
        assert machine_seqs == list(range(cycles))  # no gap, no duplicate, in order


class ScramBroker(Protocol):
    bootstrap: str
    username: str
    password: str


def scram_env(broker: ScramBroker, topic: str, password: str) -> dict[str, str]:
    return producer_env(
        broker.bootstrap, topic,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME=broker.username, KAFKA_SASL_PASSWORD=password,
        NUM_MACHINES="4", SIMULATION_INTERVAL_MS="0", KAFKA_CONNECT_TIMEOUT_MS="10000",
    )  # fmt: skip


def test_scram_with_the_right_credentials(scram_kafka_broker: ScramBroker) -> None:
    topic = unique_topic("scram")
    result = run_producer(scram_env(scram_kafka_broker, topic, scram_kafka_broker.password),
                          "--max-messages", "40")  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = read_topic(
        scram_kafka_broker.bootstrap,
        topic,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=scram_kafka_broker.username,
        sasl_plain_password=scram_kafka_broker.password,
    )
    assert len(records) == 40


def test_scram_with_wrong_credentials_fails_clearly(scram_kafka_broker: ScramBroker) -> None:
    topic = unique_topic("scram-wrong")
    result = run_producer(scram_env(scram_kafka_broker, topic, "not-the-password"),
                          "--max-messages", "4", timeout=120)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert "rejected the credentials" in errors[0]
    assert "KAFKA_SASL_PASSWORD" in errors[0]
    assert "not-the-password" not in result.stderr


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_every_compression_codec_delivers_readable_records(
    kafka_bootstrap: str, codec: str
) -> None:
    machines, cycles = 5, 4
    topic = unique_topic(f"codec-{codec}")
    env = producer_env(
        kafka_bootstrap, topic, NUM_MACHINES=str(machines), SIMULATION_INTERVAL_MS="0",
        KAFKA_COMPRESSION_TYPE=codec,
    )  # fmt: skip
    result = run_producer(env, "--max-messages", str(machines * cycles))
    assert result.returncode == 0, result.stderr
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == machines * cycles
    bodies = [json.loads(record.value) for record in records]
    assert {body["machine_id"] for body in bodies} == set(
        machine_ids("kafka-test", range(machines))
    )
