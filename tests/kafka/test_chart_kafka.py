"""The chart's Kafka pieces against a real broker (the kwok cluster fakes pods, so nothing runs
in tests/k8s):

- the `helm test` check (charts/sensorsim/files/check_records.py) passes on records the real
  producer wrote and fails when none arrive;
- the dev Kafka's configuration (the chart's ConfigMap and the StatefulSet's start script) starts
  a real KRaft broker that auto-creates the producer's topic.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from testbed import procs, tools
from testbed.polling import wait_until
from testbed.tools import REPO_ROOT
from tests.chart_support import CHART_DIR, find, render

CHECK_SCRIPT = (CHART_DIR / "files" / "check_records.py").read_text()


def produce(bootstrap: str, topic: str, messages: int, create_topic: bool) -> None:
    """Run the real producer until it has sent ``messages`` records."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC": topic,
        "KAFKA_CREATE_TOPIC": "true" if create_topic else "false",
        "NUM_MACHINES": "3",
        "SIMULATION_INTERVAL_MS": "100",
        "MAX_MESSAGES": str(messages),
        "HTTP_PORT": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "producer"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def run_check(
    bootstrap: str, topic: str, minimum: int, timeout: int
) -> subprocess.CompletedProcess[str]:
    """The test pod's command: `python -c <check_records.py>` with the pod's environment."""
    env = {
        **os.environ,
        "TEST_BOOTSTRAP_SERVERS": bootstrap,
        "TEST_TOPIC": topic,
        "TEST_MIN_RECORDS": str(minimum),
        "TEST_TIMEOUT_SECONDS": str(timeout),
    }
    return subprocess.run(
        [sys.executable, "-c", CHECK_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=False,
    )


def test_the_helm_test_check_passes_on_the_producers_records(kafka_bootstrap: str) -> None:
    produce(kafka_bootstrap, "chart-helm-test", messages=15, create_topic=True)
    result = run_check(kafka_bootstrap, "chart-helm-test", minimum=10, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 10 records in the wire format" in result.stdout


def test_the_helm_test_check_fails_without_records(kafka_bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic("chart-helm-test-empty", 1, 1)])
    finally:
        admin.close()
    result = run_check(kafka_bootstrap, "chart-helm-test-empty", minimum=1, timeout=8)
    assert result.returncode == 1
    assert "FAIL: only 0 of 1 records" in result.stdout


@pytest.fixture
def dev_broker(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A broker started the way the chart's dev Kafka starts, on loopback ports."""
    tools.install(tools.KAFKA)
    docs = render("--set", "kafka.enabled=true", release="dev", namespace="dev")
    config_map = find(docs, "ConfigMap", "dev-sensorsim-kafka")["data"]
    container = find(docs, "StatefulSet", "dev-sensorsim-kafka")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {item["name"]: item.get("value", "") for item in container["env"]}
    script = container["args"][0]

    # The only substitutions: loopback ports instead of 9092/9093, a local data directory.
    port, controller = procs.free_port(), procs.free_port()
    properties = (
        config_map["server.properties"]
        .replace("PLAINTEXT://:9092", f"PLAINTEXT://127.0.0.1:{port}")
        .replace(":9093", f":{controller}")
        .replace("log.dirs=/var/lib/kafka/data", f"log.dirs={tmp_path / 'data'}")
    )
    # What the start script appends (there: the pod's DNS name under the headless Service).
    properties += f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
    config = tmp_path / "server.properties"
    config.write_text(properties)
    log4j = tmp_path / "log4j2.properties"
    log4j.write_text(config_map["log4j2.properties"])

    java = [
        "java",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={tmp_path / 'logs'}",
        "-cp",
        f"{tools.kafka_libs()}/*",
    ]
    # The script's storage format command, with the script's own flags.
    (format_line,) = [line for line in script.splitlines() if "kafka-storage.sh format" in line]
    format_args = shlex.split(
        format_line.replace('"$KAFKA_CLUSTER_ID"', env["KAFKA_CLUSTER_ID"]).replace(
            '"$config"', str(config)
        )
    )[1:]
    formatted = subprocess.run(
        [*java, "-Xmx256m", "kafka.tools.StorageTool", *format_args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr

    heap = env["BROKER_HEAP_OPTS"].split()
    log_file = tmp_path / "broker.log"
    process = procs.start_detached([*java, *heap, "kafka.Kafka", str(config)], log_file)
    bootstrap = f"127.0.0.1:{port}"

    def answers() -> bool:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            admin.list_topics()
            return True
        finally:
            admin.close()

    try:
        wait_until(
            answers,
            timeout=120,
            message=f"the dev Kafka on {bootstrap}",
            process=process,
            log_file=log_file,
        )
        yield bootstrap, process
    finally:
        procs.stop_pid(process.pid)
        process.wait(timeout=30)


@pytest.mark.tools
def test_the_dev_kafka_configuration_runs_a_broker(
    dev_broker: tuple[str, subprocess.Popen[bytes]],
) -> None:
    bootstrap, _ = dev_broker
    # No topic creation by the producer: the dev broker creates it on first use.
    produce(bootstrap, "sensor-data", messages=12, create_topic=False)
    result = run_check(bootstrap, "sensor-data", minimum=10, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (description,) = admin.describe_topics(["sensor-data"])
    finally:
        admin.close()
    assert len(description["partitions"]) == 6  # kafka.numPartitions
