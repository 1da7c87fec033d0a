"""Exactly-once on the real broker: a read_committed consumer sees every machine's cycle once,
through a crash, with bodies equal to an undisturbed run of the same seed; a read_uncommitted
consumer of the same topic sees the aborted duplicates (so the transactions do the work).

Producers run as processes (``python -m producer``); the tests wait on what the topics show.
"""

from __future__ import annotations

import re
import signal
import time
from collections import defaultdict

import pytest
from kafka import KafkaConsumer, TopicPartition

from domain.machine_ids import machine_ids
from domain.partitioning import shard_table
from testbed.polling import wait_until
from tests.kafka.test_continuity import (
    MACHINES,
    assert_bodies_of_an_undisturbed_run,
    continuity_env,
)
from tests.producer_kafka_support import (
    Record,
    run_producer,
    start_producer,
    unique_topic,
)
from tests.shard_processes import shard_envs, spawn, started, wait_for_growth

pytestmark = pytest.mark.kafka


def read_committed(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[Record]:
    """Every committed record of the topic, read up to its last stable offset (with
    ``read_uncommitted``: every record, aborted ones too, up to its end). Positions, not
    counts, tell the end: transaction markers take offsets too."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)  # read_committed: the last stable offsets
        records: list[Record] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(p) < ends[p] for p in partitions):
            assert time.monotonic() < deadline, "could not read the topic to its stable end"
            for batch in consumer.poll(timeout_ms=1000).values():
                for message in batch:
                    records.append(
                        Record(message.key, message.value, dict(message.headers), message.partition)
                    )
        return records
    finally:
        consumer.close()


def exactly_once_env(bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    settings = {"DELIVERY_GUARANTEE": "exactly-once", "CHECKPOINT_INTERVAL_MS": "1000"}
    return continuity_env(bootstrap, topic, **{**settings, **extra})


def committed_size(bootstrap: str, topic: str) -> int:
    return len(read_committed(bootstrap, topic))


def uncommitted(bootstrap: str, topic: str, keys: set[bytes]) -> bool:
    """Some of ``keys`` have records in the topic that are not committed (yet)."""
    counts: dict[bytes, int] = defaultdict(int)
    for record in read_committed(bootstrap, topic, "read_uncommitted"):
        counts[record.key] += record.key in keys
    for record in read_committed(bootstrap, topic):
        counts[record.key] -= record.key in keys
    return any(n > 0 for n in counts.values())


def assert_every_cycle_once(bootstrap: str, topic: str) -> tuple[int, int]:
    """A read_committed consumer sees every machine's seq 0..N exactly once, bodies equal to
    an undisturbed run of the same seed; a read_uncommitted one sees those records and
    aborted copies of some, byte-identical (value and headers) to the committed ones.
    Returns the number of committed records and of (machine, seq) pairs the read_uncommitted
    consumer sees more than once (the aborted duplicates)."""
    committed = read_committed(bootstrap, topic)
    streams: dict[bytes, list[Record]] = defaultdict(list)
    for record in committed:
        streams[record.key].append(record)
    assert len(streams) == MACHINES
    for key, stream in streams.items():
        seqs = [int(r.headers["seq"]) for r in stream]
        assert seqs == list(range(len(seqs))), f"machine {key!r}: gap, duplicate or reorder"

    everything = read_committed(bootstrap, topic, "read_uncommitted")
    counts: dict[tuple[bytes, int], int] = defaultdict(int)
    copies: dict[tuple[bytes, int], set[tuple[bytes, tuple[tuple[str, bytes], ...]]]] = defaultdict(
        set
    )
    for record in everything:
        counts[record.key, int(record.headers["seq"])] += 1
        copies[record.key, int(record.headers["seq"])].add(
            (record.value, tuple(sorted(record.headers.items())))
        )
    assert set(counts) == {(r.key, int(r.headers["seq"])) for r in committed}
    assert all(len(c) == 1 for c in copies.values()), "an aborted copy differs from the replay"
    assert len(everything) == len(committed) + sum(n - 1 for n in counts.values())

    assert_bodies_of_an_undisturbed_run(bootstrap, streams)
    return len(committed), sum(1 for n in counts.values() if n > 1)


def test_sigkill_mid_interval_leaves_every_cycle_once_for_read_committed(
    kafka_bootstrap: str,
) -> None:
    """One of two shards is SIGKILLed in the middle of a commit interval and restarted: a
    read_committed consumer sees each machine's seq 0..N exactly once, bodies equal to an
    undisturbed run; a read_uncommitted consumer sees the killed interval's records twice."""
    topic = unique_topic("eos-crash")
    env = exactly_once_env(kafka_bootstrap, topic, CHECKPOINT_INTERVAL_MS="3000")
    first, second = shard_envs(env, 2)
    victim_range = shard_table(MACHINES, 2)[1]
    victim_keys = {
        m.encode() for m in machine_ids("continuity", range(victim_range.start, victim_range.stop))
    }
    survivor = start_producer(first)
    victim = start_producer(second)
    restarted = None
    try:
        wait_for_growth(kafka_bootstrap, f"{topic}-state", MACHINES)  # commits happened
        wait_until(  # and the victim's open interval has records in the topic
            lambda: uncommitted(kafka_bootstrap, topic, victim_keys),
            timeout=60,
            message="records of the victim's open transaction",
        )
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        restarted = spawn(second)
        startup = started(restarted)
        wait_for_growth(kafka_bootstrap, f"{topic}-state", MACHINES)  # it committed again
        wait_for_growth(kafka_bootstrap, topic, 20 * MACHINES)
    finally:
        errors = []
        for process in (survivor, restarted):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                _, err = process.communicate(timeout=60)
                errors.append(err)
                assert process.returncode == 0, err
    assert all("(committed)" in err for err in errors), errors
    assert "exactly-once: transactional id" in startup, startup
    resumed = re.search(r"machines resume at cycles (\d+)\.\.(\d+)", startup)
    assert resumed, startup
    assert int(resumed.group(1)) > 0  # from its committed checkpoint, not from the beginning

    _, duplicates = assert_every_cycle_once(kafka_bootstrap, topic)
    assert duplicates  # the killed interval, written twice (aborted the first time)


def test_a_second_producer_of_the_same_machines_fences_the_first(kafka_bootstrap: str) -> None:
    """Two producers of one shard plan: the second's init_transactions fences the first, which
    stops with exit code 3 and says why."""
    topic = unique_topic("eos-fenced")
    env = exactly_once_env(kafka_bootstrap, topic)
    first = start_producer(env)
    second = None
    try:
        wait_for_growth(kafka_bootstrap, topic, 5 * MACHINES)
        second = spawn(env)
        started(second)
        _, err = first.communicate(timeout=60)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=60)
    assert first.returncode == 3, err
    assert "another producer of the same machines" in err, err


def test_exactly_once_needs_checkpoints(kafka_bootstrap: str) -> None:
    env = exactly_once_env(kafka_bootstrap, unique_topic("eos-config"))
    env["CHECKPOINT_INTERVAL_MS"] = "0"
    result = run_producer(env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "CHECKPOINT_INTERVAL_MS must be > 0" in result.stderr
