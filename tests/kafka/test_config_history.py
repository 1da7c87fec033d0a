"""A change of the settings that shape the stream is a new segment of the same simulation, on
the real broker with real producer processes: each stage stops every shard with SIGTERM (as
the operator's handover does) and starts them again under changed settings. No producer exits
for it; every machine's seq goes on with no gap and no duplicate; the records after the change
follow the new settings; a crash before a change repeats only byte-identical records.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from testbed.polling import wait_until
from tests.producer_kafka_support import (
    REPO,
    Record,
    producer_env,
    read_topic,
    unique_topic,
)
from tests.shard_processes import (
    by_machine,
    run_shards_until,
    shard_envs,
    spawn,
    started,
    wait_for_growth,
)

pytestmark = pytest.mark.kafka

INTERVAL_MS = 100


def history_env(bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    settings = {
        "NUM_MACHINES": "12", "SIMULATION_INTERVAL_MS": str(INTERVAL_MS),
        "MESSAGE_FORMAT": "extended", "SIMULATION_NAME": "history",
        "SIMULATION_MODEL": "original", "FAILURE_PROBABILITY": "0",
        "FAILURE_MIN_CYCLES": "5", "FAILURE_MAX_CYCLES": "5", "FAILURE_RAMP_CYCLES": "0",
        "CATCH_UP_MAX_CYCLES": "1000000",
    }  # fmt: skip
    return producer_env(bootstrap, topic, **{**settings, **extra})


def run_stage(bootstrap: str, topic: str, env: dict[str, str], shards: int, records: int) -> str:
    """Run ``shards`` producers until every machine has a record and ``records`` more records
    arrived; every one exits 0 after its final checkpoint. Returns what they logged."""
    machines = int(env["NUM_MACHINES"])

    def running() -> None:
        wait_for_growth(bootstrap, topic, records)
        wait_until(
            lambda: len(keys_so_far(bootstrap, topic)) >= machines,
            timeout=120,
            message=f"records of all {machines} machines",
        )

    return run_shards_until(env, shards, running)


def keys_so_far(bootstrap: str, topic: str) -> set[bytes]:
    """The keys of the records in ``topic`` up to its end offsets now (producers still run)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    keys: set[bytes] = set()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(p) < ends[p] for p in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                keys.update(message.key for message in batch)
    finally:
        consumer.close()
    return keys


def segments(bootstrap: str, state_topic: str, prefix: str) -> list[dict[str, Any]]:
    """The agreed configuration history after segment 0: for each index the proposal at the
    lowest offset."""
    winners: dict[int, dict[str, Any]] = {}
    for record in read_topic(bootstrap, state_topic):
        if record.key.startswith(f"{prefix}/c/".encode()):
            value = json.loads(record.value)
            winners.setdefault(value["index"], value)
    return [winners[i] for i in sorted(winners)]


def checkpointed_cycles(bootstrap: str, state_topic: str) -> dict[str, int]:
    """Each machine's next cycle in its latest checkpoint."""
    cycles: dict[str, int] = {}
    for record in read_topic(bootstrap, state_topic):
        value = json.loads(record.value)
        if value.get("format") == "sensorsim-checkpoint/1":
            cycles[value["machine_id"]] = value["cycle"]
    return cycles


def freeze_past_checkpoints(
    bootstrap: str, topic: str, shards: list[subprocess.Popen[str]]
) -> None:
    """SIGSTOP every shard at a moment when each machine has records past its latest
    checkpoint, so a shard killed now must repeat cycles: a stopped process writes no further
    checkpoint, and what its sockets still held has reached the broker by the time we look."""
    for _ in range(30):
        for shard in shards:
            shard.send_signal(signal.SIGSTOP)
        time.sleep(1)
        checkpointed = checkpointed_cycles(bootstrap, f"{topic}-state")
        sent = {key.decode(): max(map(seq, stream))
                for key, stream in by_machine(read_topic(bootstrap, topic)).items()}  # fmt: skip
        if checkpointed and all(sent[m] >= cycle for m, cycle in checkpointed.items()):
            return
        for shard in shards:
            shard.send_signal(signal.SIGCONT)
        time.sleep(0.5)
    raise AssertionError("no moment with records past every machine's checkpoint")


def seq(record: Record) -> int:
    return int(record.headers["seq"])


def stamp(record: Record) -> datetime:
    return datetime.fromisoformat(json.loads(record.value)["timestamp"])


def failing(record: Record) -> bool:
    return json.loads(record.value)["failure"] is not None


@pytest.fixture
def other_data(tmp_path: Path) -> Iterator[Path]:
    """The bundled reference data with other content (the rows reversed)."""
    source = REPO / "data" / "data_sensors.csv"
    lines = source.read_text().splitlines(keepends=True)
    changed = tmp_path / "other.csv"
    changed.write_text(lines[0] + "".join(reversed(lines[1:])))
    yield changed
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_every_change_is_a_segment_of_one_continuous_simulation(
    kafka_bootstrap: str, other_data: Path
) -> None:
    topic = unique_topic("history")
    state = f"{topic}-state"
    env = history_env(kafka_bootstrap, topic)
    stages: list[tuple[dict[str, str], int, str]] = [
        ({}, 2, "base"),
        ({"FAILURE_PROBABILITY": "0.5"}, 2, "failures"),
        ({"SIMULATION_INTERVAL_MS": "40"}, 3, "interval"),
        ({"SIMULATION_MODEL": "learned", "SIMULATION_PERSISTENCE": "0.7"}, 2, "model"),
        ({"SENSOR_DATA_FILE": str(other_data)}, 2, "data"),
        ({"NUM_MACHINES": "8"}, 3, "lowered"),
        ({"NUM_MACHINES": "16"}, 2, "raised"),
    ]
    logs = {}
    for change, shards, name in stages:
        env = {**env, **change}
        machines = int(env["NUM_MACHINES"])
        logs[name] = run_stage(kafka_bootstrap, topic, env, shards, 30 * machines)
    history = segments(kafka_bootstrap, state, "history")
    assert [s["index"] for s in history] == list(range(1, 7)), history
    assert "continues under segment 1" in logs["failures"]
    starts = {name: s["from_cycle"] for (_, _, name), s in zip(stages[1:], history, strict=True)}
    assert list(starts.values()) == sorted(starts.values())

    streams = by_machine(read_topic(kafka_bootstrap, topic))
    assert len(streams) == 16
    for key, stream in streams.items():
        seqs = [seq(r) for r in stream]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{key!r}: gap or duplicate"
        stamps = [stamp(r) for r in stream]
        assert stamps == sorted(stamps), f"{key!r}: timestamps go back"
        assert all("skipped_cycles" not in r.headers for r in stream)

    ordered = sorted(streams.items())  # machine ids are not in index order: use the streams
    old = [s for _, s in ordered if seq(s[0]) == 0]
    new = [s for _, s in ordered if seq(s[0]) != 0]
    assert len(old) == 12
    assert len(new) == 4
    # machines added start at the cycle the change took effect
    assert {seq(s[0]) for s in new} == {starts["raised"]}
    # the machines removed and added back continued from their checkpoints: no gap above
    assert sum(1 for s in old if seq(s[-1]) >= starts["raised"]) == 12

    # failures: none at all before the change, about the new expected share after it
    # (episodes of 5 cycles started with p = 0.5: 5 / (5 + 2) of the cycles fail)
    before = [r for s in old for r in s if seq(r) < starts["failures"]]
    after = [r for s in old for r in s if starts["failures"] <= seq(r) < starts["interval"]]
    assert before
    assert not any(failing(r) for r in before)
    share = sum(failing(r) for r in after) / len(after)
    assert 0.5 < share < 0.9, share

    # interval: 100 ms between cycles before the change, 40 ms after it
    stream = old[0]
    spacing = {
        (seq(a), (stamp(b) - stamp(a)).total_seconds() * 1000)
        for a, b in itertools.pairwise(stream)
    }
    assert {ms for c, ms in spacing if c < starts["interval"] - 1} == {100}
    assert {ms for c, ms in spacing if starts["interval"] <= c} == {40}

    # same name, another SIMULATION_UID: another simulation, from cycle 0 for every machine
    run_stage(kafka_bootstrap, topic, {**env, "SIMULATION_UID": "0b1e4c4e-6f7a"}, 1, 16 * 10)
    again = by_machine(read_topic(kafka_bootstrap, topic))
    starts_at_zero = {key: sum(seq(r) == 0 for r in stream) for key, stream in again.items()}
    assert sorted(starts_at_zero.values()) == [1] * 4 + [2] * 12
    assert segments(kafka_bootstrap, state, "history@0b1e4c4e-6f7a") == []


def test_a_crash_before_a_change_repeats_only_identical_records(kafka_bootstrap: str) -> None:
    """A shard SIGKILLed, the other SIGTERMed, both restarted with another failure probability:
    the killed shard's machines replay the cycles since their checkpoint under the old
    settings, byte-identical to their first copies; the change takes effect after them."""
    topic = unique_topic("history-crash")
    env = history_env(kafka_bootstrap, topic, CHECKPOINT_INTERVAL_MS="500",
                      FAILURE_PROBABILITY="0.2")  # fmt: skip
    first, second = (spawn(e) for e in shard_envs(env, 2))
    started(first)
    started(second)
    try:
        wait_for_growth(kafka_bootstrap, topic, 20 * 12)
        wait_for_growth(kafka_bootstrap, f"{topic}-state", 12)
        wait_for_growth(kafka_bootstrap, topic, 10 * 12)
        freeze_past_checkpoints(kafka_bootstrap, topic, [first, second])
    finally:
        second.send_signal(signal.SIGKILL)
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
        second.communicate(timeout=60)
    assert first.returncode == 0
    logs = run_stage(kafka_bootstrap, topic, {**env, "FAILURE_PROBABILITY": "0.9"}, 2, 30 * 12)
    assert "continues under segment 1" in logs
    (change,) = segments(kafka_bootstrap, f"{topic}-state", "history")
    repeated = 0
    for key, stream in by_machine(read_topic(kafka_bootstrap, topic)).items():
        first_copy: dict[int, Record] = {}
        for record in stream:
            if seq(record) in first_copy:
                original = first_copy[seq(record)]
                assert (record.value, record.headers) == (original.value, original.headers), key
                assert seq(record) < change["from_cycle"]
                repeated += 1
            else:
                first_copy[seq(record)] = record
        assert sorted(first_copy) == list(range(len(first_copy))), f"gap for {key!r}"
    assert repeated > 0  # the killed shard did repeat cycles
