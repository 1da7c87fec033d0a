"""Running the producer against the real broker and reading the topic back (tests/kafka)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from kafka import KafkaConsumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"stopped after (\d+) cycles: (\d+) records sent, (\d+) delivered, (\d+) failed"
)


class Broker(Protocol):
    bootstrap: str

    def stop(self) -> None: ...

    def start(self) -> None: ...


@dataclass
class Record:
    key: bytes
    value: bytes
    headers: dict[str, bytes]
    partition: int


def unique_topic(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def producer_env(bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC": topic,
        "KAFKA_CREATE_TOPIC": "true",
        "KAFKA_TOPIC_PARTITIONS": "3",
        "HTTP_PORT": "0",
        "SIMULATION_SEED": "11",
        "SIMULATION_NAME": "kafka-test",
        "KAFKA_CONNECT_TIMEOUT_MS": "15000",
        **extra,
    }


def run_producer(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_producer(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "producer", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    while True:
        line = process.stderr.readline()
        seen.append(line)
        if "simulating machines" in line:
            return process
        if not line and process.poll() is not None:
            pytest.fail("producer exited early:\n" + "".join(seen))


def summary(stderr: str) -> tuple[int, int, int, int]:
    match = SUMMARY.search(stderr)
    assert match, stderr
    cycles, sent, delivered, failed = (int(g) for g in match.groups())
    return cycles, sent, delivered, failed


def read_topic(bootstrap: str, topic: str, **client: Any) -> list[Record]:
    """Every record of the topic (end offsets first, so the count is exact)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **client,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        total = sum(ends.values())
        records: list[Record] = []
        deadline = time.monotonic() + 120
        while len(records) < total and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                for message in batch:
                    records.append(
                        Record(message.key, message.value, dict(message.headers), message.partition)
                    )
        assert len(records) == total
        return records
    finally:
        consumer.close()


def original_consumer_parse(value: bytes) -> tuple[str, datetime, dict[str, float], bool]:
    """What the original system's consumer did with a body."""
    data = json.loads(value.decode("utf-8"))
    machine_id = data["machine_id"]
    timestamp = datetime.fromisoformat(data["timestamp"])
    readings = data["readings"]["readings"]
    has_failure = data["readings"]["has_failure"]
    return machine_id, timestamp, readings, has_failure


def sequences(records: list[Record]) -> dict[bytes, list[int]]:
    seqs: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        seqs[record.key].append(int(record.headers["seq"]))
    return seqs


def records_sent(port: int) -> float:
    """The producer's count of records handed to the Kafka client (0 while it does not answer)."""
    return metric(port, "sensorsim_records_sent_total") or 0.0


def records_delivered(port: int) -> float:
    """The producer's count of records the broker acknowledged (0 while it does not answer)."""
    return metric(port, "sensorsim_records_delivered_total") or 0.0


def get_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def metric(port: int, name: str) -> float | None:
    """The value of an unlabelled metric from /metrics, or None if it cannot be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None
