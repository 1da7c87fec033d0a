"""Producer processes as the shards of one simulation (``python -m producer`` with SHARD_COUNT
and SHARD_INDEX, started together as pods start), and the topic reads the tests of continuity,
configuration history, scenarios and exactly-once judge them by."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from testbed.polling import wait_until
from tests.producer_kafka_support import REPO, Record


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def wait_for_growth(bootstrap: str, topic: str, records: int, timeout: float = 90) -> None:
    """Return once ``records`` more records than now are in ``topic``."""
    target = topic_size(bootstrap, topic) + records
    wait_until(
        lambda: topic_size(bootstrap, topic) >= target,
        timeout=timeout,
        message=f"{topic} to grow by {records} records",
    )


def shard_envs(env: dict[str, str], shards: int) -> list[dict[str, str]]:
    return [{**env, "SHARD_COUNT": str(shards), "SHARD_INDEX": str(i)} for i in range(shards)]


def spawn(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "producer"], cwd=REPO, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def started(process: subprocess.Popen[str]) -> str:
    """What the producer logged until it began simulating (fails if it exited first)."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "simulating machines" in line:
            return "".join(seen)
    pytest.fail("producer exited early:\n" + "".join(seen))


def run_shards_until(env: dict[str, str], shards: int, running: Callable[[], None]) -> str:
    """Start ``shards`` producers together, call ``running`` once every one is simulating,
    SIGTERM them all, and require a clean exit after a final checkpoint. Returns what they
    logged."""
    processes = [spawn(e) for e in shard_envs(env, shards)]  # all at once, as pods start
    logs = []
    try:
        logs = [started(process) for process in processes]
        running()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        errors = [process.communicate(timeout=60)[1] for process in processes]
    for process, err in zip(processes, errors, strict=True):
        assert process.returncode == 0, err
        assert "checkpointed" in err, err
    return "".join(logs) + "".join(errors)


def run_shards(bootstrap: str, topic: str, env: dict[str, str], shards: int, records: int) -> None:
    """``run_shards_until`` ``records`` more records reached the topic."""
    run_shards_until(env, shards, lambda: wait_for_growth(bootstrap, topic, records))


def by_machine(records: list[Record]) -> dict[bytes, list[Record]]:
    machines: dict[bytes, list[Record]] = defaultdict(list)
    for record in records:
        machines[record.key].append(record)
    return machines


def without_timestamp(value: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(value)
    del body["timestamp"]
    return body
