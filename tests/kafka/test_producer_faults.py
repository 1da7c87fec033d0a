"""The producer under faults, against the real broker: a hung broker (its JVM suspended with
SIGSTOP), shutdown while it hangs, signals, unusable topics.

The freeze tests suspend the session broker: they end by resuming it (``finally``), and
the broker answers the next test as before.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from testbed.kafka import KafkaBroker
from testbed.polling import wait_until
from testbed.procs import free_port
from tests.producer_kafka_support import (
    Record,
    get_status,
    metric,
    producer_env,
    read_topic,
    records_delivered,
    records_sent,
    run_producer,
    sequences,
    start_producer,
    summary,
    unique_topic,
)

pytestmark = pytest.mark.kafka

GRACE_PERIOD = 30.0


@contextmanager
def frozen(broker: KafkaBroker) -> Iterator[None]:
    broker.freeze()
    try:
        yield
    finally:
        broker.thaw()


def exited(process: subprocess.Popen[str], timeout: float) -> str:
    """The process must exit within ``timeout`` seconds; its standard error."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"the producer did not exit within {timeout:g} s of SIGTERM:\n{err[-3000:]}")
    return err


def finish(process: subprocess.Popen[str], timeout: float) -> str:
    """SIGTERM, then the process must exit within ``timeout`` seconds; its standard error."""
    process.send_signal(signal.SIGTERM)
    return exited(process, timeout)


def assert_no_duplicates_in_order(records: list[Record]) -> None:
    for key, seqs in sequences(records).items():
        assert seqs == sorted(set(seqs)), f"machine {key!r}: duplicates or out of order"


def test_a_broker_hung_beyond_the_delivery_timeout_is_recovered_from(
    kafka_broker: KafkaBroker,
) -> None:
    """Issue 10's acceptance: 100 machines, 100 ms cycles, 20 s delivery timeout; the broker
    hangs 35 s, then resumes: delivery resumes for every machine, the producer exits within
    the grace period with its summary, and counts what reached the topic."""
    machines, port = 100, free_port()
    topic = unique_topic("hung")
    env = producer_env(
        kafka_broker.bootstrap, topic, NUM_MACHINES=str(machines), SIMULATION_INTERVAL_MS="100",
        KAFKA_DELIVERY_TIMEOUT_MS="20000", HTTP_PORT=str(port),
    )  # fmt: skip
    process = start_producer(env)
    try:
        wait_until(
            lambda: records_delivered(port) >= 10 * machines, timeout=30, message="first deliveries"
        )
        with frozen(kafka_broker):
            wait_until(
                lambda: get_status(port, "/readyz") == 503, timeout=30, message="readiness to drop"
            )
            assert get_status(port, "/healthz") == 200  # the loop itself is fine
            time.sleep(35 - 10)  # the fault lasts 35 s in all (readiness took up to 10 s)
        resumed_at = records_delivered(port)
        wait_until(
            lambda: records_delivered(port) >= resumed_at + 10 * machines,
            timeout=60,
            message="delivery to resume",
        )
        wait_until(
            lambda: get_status(port, "/readyz") == 200, timeout=30, message="readiness to return"
        )
        thawed_cycles = metric(port, "sensorsim_cycles_total") or 0.0
    finally:
        err = finish(process, GRACE_PERIOD)
    assert "Traceback" not in err, err
    _, sent, delivered_total, failed = summary(err)
    assert sent == delivered_total + failed
    assert "replacing the Kafka client" in err, err  # recovery was the sink's doing
    records = read_topic(kafka_broker.bootstrap, topic)
    print(f"summary delivered={delivered_total} failed={failed}; topic has {len(records)}")
    print("".join(line for line in err.splitlines(True) if "broker holds" in line))
    assert_no_duplicates_in_order(records)
    seqs = sequences(records)
    assert len(seqs) == machines
    for machine_seqs in seqs.values():  # every machine delivers again after the hang
        assert max(machine_seqs) >= thawed_cycles - 1  # (seq counts from 0)
    # Records in flight when the broker hung were given up by the client but written by the
    # broker when it resumed; the producer asked the broker afterwards and counts them.
    assert delivered_total == len(records)


def test_sigterm_while_the_broker_hangs_exits_within_the_grace_period(
    kafka_broker: KafkaBroker,
) -> None:
    port = free_port()
    topic = unique_topic("hung-sigterm")
    env = producer_env(
        kafka_broker.bootstrap, topic, NUM_MACHINES="100", SIMULATION_INTERVAL_MS="100",
        HTTP_PORT=str(port),
    )  # fmt: skip
    process = start_producer(env)
    wait_until(lambda: records_delivered(port) > 0, timeout=30, message="first deliveries")
    with frozen(kafka_broker):
        # Records the hung broker cannot acknowledge are pending when the signal comes.
        wait_until(
            lambda: records_sent(port) - records_delivered(port) >= 100,
            timeout=30,
            message="records pending at the hung broker",
        )
        process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: get_status(port, "/readyz") in (503, 0), timeout=10, message="readiness to drop"
        )
        err = exited(process, GRACE_PERIOD)
    assert process.returncode == 1, err  # records were left undelivered
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err  # nothing from atexit either
    _, sent, delivered_total, failed = summary(err)
    assert failed > 0
    assert sent == delivered_total + failed


def test_a_second_signal_exits_at_once(kafka_broker: KafkaBroker) -> None:
    topic = unique_topic("second-signal")
    env = producer_env(kafka_broker.bootstrap, topic, NUM_MACHINES="10",
                       SIMULATION_INTERVAL_MS="100")  # fmt: skip
    process = start_producer(env)
    assert process.stderr is not None
    with frozen(kafka_broker):  # so that the first signal's flush has to wait
        process.send_signal(signal.SIGTERM)
        lines = []
        while "flushing" not in (line := process.stderr.readline()):
            lines.append(line)
            assert line, "".join(lines)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 1
    assert "second SIGTERM: exiting without waiting for delivery" in err
    assert "Traceback" not in err


def test_a_broker_hung_for_ten_seconds_loses_and_duplicates_nothing(
    kafka_broker: KafkaBroker,
) -> None:
    machines = 20
    topic = unique_topic("hung-10s")
    env = producer_env(kafka_broker.bootstrap, topic, NUM_MACHINES=str(machines),
                       SIMULATION_INTERVAL_MS="50", HTTP_PORT=str(port := free_port()))  # fmt: skip
    process = start_producer(env)
    try:
        wait_until(lambda: records_delivered(port) > 0, timeout=30, message="first deliveries")
        with frozen(kafka_broker):
            time.sleep(10)  # the fault under test: the broker hangs for ten seconds
        after = records_delivered(port)
        wait_until(
            lambda: records_delivered(port) > after, timeout=60, message="delivery to resume"
        )
    finally:
        err = finish(process, GRACE_PERIOD)
    assert process.returncode == 0, err
    cycles, sent, delivered_total, failed = summary(err)
    assert failed == 0
    assert sent == delivered_total == cycles * machines
    records = read_topic(kafka_broker.bootstrap, topic)
    assert len(records) == sent
    for machine_seqs in sequences(records).values():
        assert machine_seqs == list(range(cycles))  # no gap, no duplicate, in order


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture(scope="module")
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    yield client
    client.close()


def test_an_internal_topic_is_refused(kafka_bootstrap: str, admin: KafkaAdminClient) -> None:
    from kafka import KafkaConsumer  # noqa: PLC0415

    # A consumer joining a group makes the broker create __consumer_offsets.
    joined = unique_topic("group")
    admin.create_topics([NewTopic(joined, 1, 1)])
    consumer = KafkaConsumer(joined, bootstrap_servers=kafka_bootstrap, group_id="faults-test")
    wait_until(
        lambda: consumer.poll(500) is not None and bool(consumer.assignment()),
        timeout=60,
        message="the consumer to join its group",
    )
    consumer.close()
    env = producer_env(kafka_bootstrap, "__consumer_offsets", KAFKA_CREATE_TOPIC="false")
    result = run_producer(env, "--max-messages", "5", timeout=60)
    assert result.returncode in (2, 3), result.stderr
    line = one_error_line(result.stderr)
    assert "__consumer_offsets" in line
    assert "internal" in line


def test_a_compacted_topic_is_refused_unless_allowed(
    kafka_bootstrap: str, admin: KafkaAdminClient
) -> None:
    topic = unique_topic("compacted")
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    env = producer_env(kafka_bootstrap, topic, KAFKA_CREATE_TOPIC="false", NUM_MACHINES="3",
                       SIMULATION_INTERVAL_MS="0")  # fmt: skip
    refused = run_producer(env, "--max-messages", "6", timeout=60)
    assert refused.returncode == 3, refused.stderr
    line = one_error_line(refused.stderr)
    assert f"KAFKA_TOPIC={topic} has cleanup.policy=compact" in line
    assert "KAFKA_ALLOW_COMPACTED_TOPIC=true" in line
    allowed = run_producer({**env, "KAFKA_ALLOW_COMPACTED_TOPIC": "true"}, "--max-messages", "6")
    assert allowed.returncode == 0, allowed.stderr


def test_a_topic_whose_records_cannot_fit_is_refused(
    kafka_bootstrap: str, admin: KafkaAdminClient
) -> None:
    topic = unique_topic("tiny-records")
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "300"})])
    env = producer_env(kafka_bootstrap, topic, KAFKA_CREATE_TOPIC="false")
    result = run_producer(env, "--max-messages", "5", timeout=60)
    assert result.returncode == 3, result.stderr
    line = one_error_line(result.stderr)
    assert f"KAFKA_TOPIC={topic} has max.message.bytes=300" in line


def test_json_logs_are_one_object_per_line(kafka_bootstrap: str) -> None:
    topic = unique_topic("json-logs")
    env = producer_env(kafka_bootstrap, topic, LOG_FORMAT="json", NUM_MACHINES="2",
                       SIMULATION_INTERVAL_MS="0")  # fmt: skip
    result = run_producer(env, "--max-messages", "10")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any("stopped after" in e["message"] for e in entries)
    levels: dict[str, int] = defaultdict(int)
    for entry in entries:
        levels[entry["level"]] += 1
    assert set(levels) <= {"INFO", "WARNING"}
