"""The built image's default command (the producer) as its pods run it: uid 10001, read-only
root filesystem with a tmpfs /tmp, no capabilities, no privilege escalation, against the real
broker on the host's network. Built against the stand-in base (see testbed/containers.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from domain.machine_ids import machine_ids
from testbed import containers, procs
from testbed.polling import wait_until

pytestmark = pytest.mark.container

MACHINES = 20
RECORDS = 1_000


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"image-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    finally:
        admin.close()
    return name


@pytest.fixture
def consumer(kafka_bootstrap: str, topic: str) -> Iterator[KafkaConsumer]:
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    yield consumer
    consumer.close()


def published(consumer: KafkaConsumer, topic: str) -> int:
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    return int(sum(ends.values()))


def read_all(consumer: KafkaConsumer, topic: str) -> list[dict[str, object]]:
    partitions = [TopicPartition(topic, p) for p in range(3)]
    end = consumer.end_offsets(partitions)
    consumer.seek_to_beginning(*partitions)
    bodies = []
    while any(consumer.position(p) < end[p] for p in partitions):
        for records in consumer.poll(timeout_ms=1000).values():
            bodies += [json.loads(r.value) for r in records]
    return bodies


def test_producer_container_publishes_as_restricted_pod_and_stops_cleanly_on_sigterm(
    sensorsim_image: str, kafka_bootstrap: str, topic: str, consumer: KafkaConsumer
) -> None:
    name = f"sensorsim-producer-{uuid.uuid4().hex[:8]}"
    http_port = procs.free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC": topic,
        "NUM_MACHINES": str(MACHINES),
        "SIMULATION_INTERVAL_MS": "20",
        "SIMULATION_NAME": "image",
        "SIMULATION_SEED": "7",
        "HTTP_PORT": str(http_port),
    }
    containers.podman(
        "run", "--detach", f"--name={name}", *containers.hardened_run_args(env), sensorsim_image
    )
    try:
        readyz = f"http://127.0.0.1:{http_port}/readyz"
        wait_until(
            lambda: procs.http_ok(readyz), timeout=120, message="the producer container's /readyz"
        )
        wait_until(
            lambda: published(consumer, topic) >= RECORDS,
            timeout=120,
            message=f"{RECORDS} records in {topic}",
        )
        # The constraints hold inside the running container.
        assert containers.podman("exec", name, "id", "-u").stdout.strip() == "10001"
        status = containers.podman("exec", name, "cat", "/proc/1/status").stdout
        assert "CapEff:\t0000000000000000" in status
        assert "NoNewPrivs:\t1" in status
        write = containers.podman("exec", name, "touch", "/app/written", check=False)
        assert write.returncode != 0
        assert "Read-only file system" in write.stderr

        containers.podman("stop", "--time=30", name)  # SIGTERM, SIGKILL only after 30 s
        state = containers.podman(
            "inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", name
        ).stdout.split()
        logs = containers.podman("logs", name).stderr
        assert state == ["0", "false"], logs
    finally:
        containers.podman("rm", "--force", name, check=False)

    bodies = read_all(consumer, topic)
    assert len(bodies) >= RECORDS
    assert {b["machine_id"] for b in bodies} == set(machine_ids("image", range(MACHINES)))
    assert all(set(b) == {"machine_id", "timestamp", "readings"} for b in bodies)
