"""Continuity on the real broker: restarts, re-sharding and crashes continue every machine's
stream exactly; bad state topics and another identity (seed, epoch) are refused clearly.

Producers run as processes (``python -m producer``) as a user or a pod runs them; the tests
wait on what the topics show (records arriving), never on fixed sleeps.
"""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from tests.producer_kafka_support import (
    Record,
    producer_env,
    read_topic,
    run_producer,
    start_producer,
    unique_topic,
)
from tests.shard_processes import (
    by_machine,
    run_shards,
    shard_envs,
    spawn,
    started,
    topic_size,
    wait_for_growth,
    without_timestamp,
)

pytestmark = pytest.mark.kafka

MACHINES = 30
INTERVAL_MS = 50


def continuity_env(bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    settings = {
        "NUM_MACHINES": str(MACHINES), "SIMULATION_INTERVAL_MS": str(INTERVAL_MS),
        "MESSAGE_FORMAT": "extended", "SIMULATION_NAME": "continuity",
        # Producers on a loaded test machine can take tens of seconds to start: re-emit every
        # missed cycle (the bound is tested on its own below).
        "CATCH_UP_MAX_CYCLES": "1000000",
    }  # fmt: skip
    return producer_env(bootstrap, topic, **{**settings, **extra})


def test_restarts_and_resharding_continue_every_machine_exactly(kafka_bootstrap: str) -> None:
    """2 shards -> SIGTERM -> 3 shards -> SIGTERM -> 1 shard -> SIGTERM equals, machine by
    machine and seq by seq, one undisturbed run of the same simulation."""
    topic = unique_topic("continuity")
    env = continuity_env(kafka_bootstrap, topic)
    for shards in (2, 3, 1):
        run_shards(kafka_bootstrap, topic, env, shards, 40 * MACHINES)

    records = read_topic(kafka_bootstrap, topic)
    machines = by_machine(records)
    assert len(machines) == MACHINES
    for key, stream in machines.items():
        seqs = [int(r.headers["seq"]) for r in stream]
        assert seqs == list(range(len(seqs))), f"machine {key!r}: gap, duplicate or reorder"
        assert all("skipped_cycles" not in r.headers for r in stream)
        assert len(seqs) > 100  # three runs of ~40 cycles each
        stamps = [datetime.fromisoformat(json.loads(r.value)["timestamp"]) for r in stream]
        # The simulation's schedule: seq n is due at epoch + n * interval, whoever emits it.
        assert all(
            stamp - stamps[0] == timedelta(milliseconds=INTERVAL_MS * n)
            for n, stamp in enumerate(stamps)
        )

    assert_bodies_of_an_undisturbed_run(kafka_bootstrap, machines)


def assert_bodies_of_an_undisturbed_run(
    bootstrap: str, machines: dict[bytes, list[Record]]
) -> None:
    """Every record's body (but its timestamp) equals the one of the same machine and seq in
    one undisturbed run of the same simulation."""
    longest = max(len(r) for r in machines.values())
    undisturbed_topic = unique_topic("undisturbed")
    undisturbed_env = continuity_env(bootstrap, undisturbed_topic, SIMULATION_INTERVAL_MS="0")
    result = run_producer(undisturbed_env, "--max-messages", str(MACHINES * longest))
    assert result.returncode == 0, result.stderr
    expected = {
        (r.key, int(r.headers["seq"])): without_timestamp(r.value)
        for r in read_topic(bootstrap, undisturbed_topic)
    }
    for key, stream in machines.items():
        for record in stream:
            seq = int(record.headers["seq"])
            assert without_timestamp(record.value) == expected[key, seq], (key, seq)


def test_sigkill_of_a_shard_repeats_identical_records_and_loses_none(
    kafka_bootstrap: str,
) -> None:
    """At-least-once: after a crash the shard resumes from its last checkpoint, re-emitting
    what it sent since; every repeat is byte-identical (value and headers), and nothing is
    missing."""
    topic = unique_topic("crash")
    env = continuity_env(kafka_bootstrap, topic, CHECKPOINT_INTERVAL_MS="500")
    first, second = shard_envs(env, 2)
    survivor = start_producer(first)
    victim = start_producer(second)
    restarted = None
    try:
        wait_for_growth(kafka_bootstrap, topic, 40 * MACHINES)
        wait_for_growth(kafka_bootstrap, f"{topic}-state", MACHINES)  # checkpoints are written
        wait_for_growth(kafka_bootstrap, topic, 5 * MACHINES)  # and records after them
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        restarted = spawn(second)
        startup = started(restarted)
        wait_for_growth(kafka_bootstrap, topic, 40 * MACHINES)
    finally:
        for process in (survivor, restarted):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                _, err = process.communicate(timeout=60)
                assert process.returncode == 0, err
    resumed = re.search(r"machines resume at cycles (\d+)\.\.(\d+)", startup)
    assert resumed, startup
    assert int(resumed.group(1)) > 0  # from its checkpoint, not from the beginning

    records = read_topic(kafka_bootstrap, topic)
    machines = by_machine(records)
    assert len(machines) == MACHINES
    for key, stream in machines.items():
        first_copy: dict[int, Record] = {}
        for record in stream:
            seq = int(record.headers["seq"])
            if seq in first_copy:
                original = first_copy[seq]
                assert (record.value, record.headers) == (original.value, original.headers)
            else:
                first_copy[seq] = record
        assert sorted(first_copy) == list(range(len(first_copy))), f"gap for {key!r}"


def test_a_machine_too_far_behind_skips_ahead_and_says_so(kafka_bootstrap: str) -> None:
    """A simulation that began 10 s ago (SIMULATION_EPOCH) with CATCH_UP_MAX_CYCLES=5: each
    machine re-emits 5 missed cycles, not 200, and its first record carries the skip."""
    topic = unique_topic("skip")
    began = datetime.now(UTC) - timedelta(seconds=10)
    env = continuity_env(
        kafka_bootstrap, topic, NUM_MACHINES="4", CATCH_UP_MAX_CYCLES="5",
        SIMULATION_EPOCH=began.isoformat(),
    )  # fmt: skip
    result = run_producer(env, "--max-messages", str(4 * 20))
    assert result.returncode == 0, result.stderr
    assert "more than CATCH_UP_MAX_CYCLES=5" in result.stderr
    for key, stream in by_machine(read_topic(kafka_bootstrap, topic)).items():
        seqs = [int(r.headers["seq"]) for r in stream]
        skipped = int(stream[0].headers["skipped_cycles"])
        assert seqs[0] == skipped > 190, key  # ~200 cycles in 10 s
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert all("skipped_cycles" not in r.headers for r in stream[1:])


def create_topic(bootstrap: str, name: str, cleanup_policy: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            {name: {"num_partitions": 1, "configs": {"cleanup.policy": cleanup_policy}}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def test_a_state_topic_that_is_not_compacted_is_refused(kafka_bootstrap: str) -> None:
    state = unique_topic("not-compacted")
    create_topic(kafka_bootstrap, state, "delete")
    env = continuity_env(kafka_bootstrap, unique_topic("data"), KAFKA_STATE_TOPIC=state)
    result = run_producer(env, "--max-messages", "30")
    assert result.returncode == 3, result.stderr  # ExitCode.BROKER
    assert f"state topic {state!r} has cleanup.policy=delete, not compact" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_foreign_record_in_the_state_topic_is_refused(kafka_bootstrap: str) -> None:
    state = unique_topic("foreign")
    create_topic(kafka_bootstrap, state, "compact")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(state, key=b"hello", value=b"world").get(timeout=30)
    producer.close()
    env = continuity_env(kafka_bootstrap, unique_topic("data"), KAFKA_STATE_TOPIC=state)
    result = run_producer(env, "--max-messages", "30")
    assert result.returncode == 3, result.stderr
    assert "key b'hello' is not a sensorsim checkpoint key" in result.stderr


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"SIMULATION_SEED": "12"}, "SIMULATION_SEED=12 but simulation 'continuity'"),
        ({"SIMULATION_EPOCH": "2026-01-01T00:00:00Z"}, "SIMULATION_EPOCH=2026-01-01T00:00:00"),
    ],
)
def test_another_identity_is_refused(
    kafka_bootstrap: str, change: dict[str, str], named: str
) -> None:
    """The seed and the epoch are the simulation's identity: the only settings a producer
    cannot change (others start a new segment: tests/kafka/test_config_history.py)."""
    topic = unique_topic("mismatch")
    env = continuity_env(kafka_bootstrap, topic, SIMULATION_INTERVAL_MS="0")
    first = run_producer(env, "--max-messages", str(MACHINES * 3))
    assert first.returncode == 0, first.stderr
    before = topic_size(kafka_bootstrap, topic)
    second = run_producer({**env, **change}, "--max-messages", str(MACHINES * 3))
    assert second.returncode == 2, second.stderr  # ExitCode.CONFIG
    assert named in second.stderr
    assert "they define the simulation" in second.stderr
    assert topic_size(kafka_bootstrap, topic) == before  # nothing was mixed in


def test_an_unseeded_simulation_keeps_its_seed_across_restarts(kafka_bootstrap: str) -> None:
    topic = unique_topic("unseeded")
    env = continuity_env(kafka_bootstrap, topic, SIMULATION_INTERVAL_MS="0", NUM_MACHINES="3")
    del env["SIMULATION_SEED"]
    for _ in range(2):
        result = run_producer(env, "--max-messages", str(3 * 10))
        assert result.returncode == 0, result.stderr
    stream = by_machine(read_topic(kafka_bootstrap, topic))
    reference = {**env, "SIMULATION_SEED": adopted_seed(kafka_bootstrap, f"{topic}-state")}
    replay_topic = unique_topic("unseeded-replay")
    replay_env = {**reference, "KAFKA_TOPIC": replay_topic}
    assert run_producer(replay_env, "--max-messages", str(3 * 20)).returncode == 0
    replay = by_machine(read_topic(kafka_bootstrap, replay_topic))
    for key, records in stream.items():
        assert [int(r.headers["seq"]) for r in records] == list(range(20))
        assert [without_timestamp(r.value) for r in records] == [
            without_timestamp(r.value) for r in replay[key]
        ]


def adopted_seed(bootstrap: str, state_topic: str) -> str:
    records = read_topic(bootstrap, state_topic)
    seeds = {json.loads(r.value)["seed"] for r in records if b"/s/" in r.key}
    assert len(seeds) == 1, seeds
    return str(seeds.pop())
