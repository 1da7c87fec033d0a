"""Scenarios on the real broker with real producer processes: the records are exactly the
scheduled ones (machines, cycles, labels), the same from 3 shards stopped with SIGTERM and
restarted as from one undisturbed shard, and through a SIGKILL (its repeats byte-identical);
a degradation counts down to its failure; late, out-of-order and duplicated records are
labelled and done.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
from typing import Any

import pytest

from domain.machine_ids import machine_ids
from testbed.polling import wait_until
from tests.kafka.test_config_history import run_stage
from tests.producer_kafka_support import (
    Record,
    producer_env,
    read_topic,
    run_producer,
    unique_topic,
)
from tests.shard_processes import (
    by_machine,
    shard_envs,
    spawn,
    started,
    wait_for_growth,
    without_timestamp,
)

pytestmark = pytest.mark.kafka

MACHINES = 12
NAME = "scenarios"
TYPES = ("bearing_wear", "electrical_fault", "overheating", "pressure_leak")
SCENARIOS: list[dict[str, Any]] = [
    {"name": "named", "target": {"machines": [1, 4]}, "startCycle": 5,
     "failure": {"type": "overheating", "cycles": 6}},
    {"name": "fraction", "target": {"fraction": 0.3}, "startCycle": 20,
     "failure": {"type": "bearing_wear", "cycles": 8}},
    {"name": "calm", "target": {"all": True}, "startCycle": 24, "noFailures": {"cycles": 2}},
    {"name": "wear", "target": {"machines": [2]}, "startCycle": 10,
     "degradation": {"type": "pressure_leak", "cycles": 15, "shape": "knee",
                     "failureCycles": 3}},
    {"name": "stuck", "target": {"machines": [6]}, "startCycle": 8,
     "quality": {"fault": "stuck", "cycles": 4, "sensors": ["Sensor 3"]}},
    {"name": "dropout", "target": {"machines": [7]}, "startCycle": 9,
     "quality": {"fault": "dropout", "cycles": 2, "sensors": ["Sensor 1"]}},
    {"name": "spike", "target": {"machines": [8]}, "startCycle": 12,
     "quality": {"fault": "spike", "cycles": 1, "sensors": ["Sensor 5"]}},
    {"name": "drift", "target": {"machines": [9]}, "startCycle": 14,
     "quality": {"fault": "drift", "cycles": 5, "sensors": ["Sensor 7"]}},
    {"name": "late", "target": {"machines": [10]}, "startCycle": 15,
     "quality": {"fault": "late", "cycles": 2, "lateCycles": 3}},
    {"name": "held", "target": {"machines": [11]}, "startCycle": 16,
     "quality": {"fault": "out_of_order", "cycles": 3}},
    {"name": "twice", "target": {"machines": [3]}, "startCycle": 17,
     "quality": {"fault": "duplicate", "cycles": 2}},
]  # fmt: skip
HELD = {(11, 16), (11, 18)}
"""(machine, cycle) of the records sent after their machine's next one."""
LAST_CYCLE = 40


def scenario_env(bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    settings = {
        "NUM_MACHINES": str(MACHINES), "SIMULATION_INTERVAL_MS": "50",
        "MESSAGE_FORMAT": "extended", "SIMULATION_NAME": NAME, "FAILURE_PROBABILITY": "0",
        "FAILURE_RAMP_CYCLES": "2", "SCENARIOS": json.dumps(SCENARIOS),
        "CATCH_UP_MAX_CYCLES": "1000000",
    }  # fmt: skip
    return producer_env(bootstrap, topic, **{**settings, **extra})


def unique_records(stream: list[Record]) -> list[Record]:
    """A machine's records by seq, each once: every repeat (a duplicate fault's, a crash's)
    is byte-identical to the first copy (value and headers)."""
    first: dict[int, Record] = {}
    for record in stream:
        copy = first.setdefault(seq(record), record)
        assert (record.value, record.headers) == (copy.value, copy.headers), seq(record)
    return [first[c] for c in sorted(first)]


def sent_order(index: int) -> list[int]:
    """The seqs machine ``index`` sends in one undisturbed run: a held-back record after the
    next one, a duplicated record twice."""
    order: list[int] = []
    for cycle in range(LAST_CYCLE + 1):
        if (index, cycle) in HELD:
            continue
        order.append(cycle)
        if index == 3 and cycle in (17, 18):
            order.append(cycle)
        if (index, cycle - 1) in HELD:
            order.append(cycle - 1)
    return order


def machine_indices() -> dict[bytes, int]:
    """Machine id (the record key) -> machine index."""
    return {machine_id.encode(): i for i, machine_id in enumerate(machine_ids(NAME, range(12)))}


def fraction_drawn(streams: dict[bytes, list[Record]], ids: dict[bytes, int]) -> set[int]:
    """The machines the ``fraction`` scenario drew (failing in the middle of its window)."""
    return {
        ids[key]
        for key, stream in streams.items()
        for record in stream
        if seq(record) == 21 and body(record)["failure"] is not None
    }


def seq(record: Record) -> int:
    return int(record.headers["seq"])


def body(record: Record) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(record.value)
    return data


def expected_labels(index: int, cycle: int, fraction: set[int]) -> dict[str, Any]:
    """What machine ``index``'s record of ``cycle`` says, by the scenario list."""
    failure = None
    if index in (1, 4) and 5 <= cycle < 11:
        failure = "overheating"
    if index in fraction and 20 <= cycle < 28 and not 24 <= cycle < 26:
        failure = "bearing_wear"
    rul = None
    if index == 2 and 10 <= cycle < 28:
        rul = max(0, 25 - cycle)
        if cycle >= 25:
            failure = "pressure_leak"
    quality = {
        (6, c): "stuck:Sensor 3" for c in range(8, 12)
    } | {(7, c): "dropout:Sensor 1" for c in (9, 10)} | {(8, 12): "spike:Sensor 5"} | {
        (9, c): "drift:Sensor 7" for c in range(14, 19)
    } | {(10, c): "late:3" for c in (15, 16)} | {(11, c): "out_of_order" for c in (16, 18)} | {
        (3, c): "duplicate" for c in (17, 18)
    }  # fmt: skip
    return {"failure": failure, "rul_cycles": rul, "quality": quality.get((index, cycle))}


def assert_scheduled(record: Record, index: int, fraction: set[int]) -> None:
    """Machine ``index``'s record says exactly what the scenario list schedules for it."""
    data = body(record)
    want = expected_labels(index, seq(record), fraction)
    failure = data["failure"]
    assert (failure and failure["type"]) == want["failure"], (index, seq(record))
    assert data["rul_cycles"] == want["rul_cycles"], (index, seq(record))
    assert data["quality"] == want["quality"], (index, seq(record))
    assert record.headers.get("quality", b"").decode() == (want["quality"] or "")
    if want["rul_cycles"] is not None:
        assert int(record.headers["rul_cycles"]) == want["rul_cycles"]
        assert float(record.headers["health"]) == data["health"]
    else:
        assert "health" not in record.headers
        assert data["health"] is None
    if want["quality"] == "dropout:Sensor 1":
        assert data["readings"]["readings"]["Sensor 1"] is None


def test_scenarios_give_the_scheduled_records_in_any_shard_layout_and_through_restarts(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic("scenarios")
    env = scenario_env(kafka_bootstrap, topic)
    for shards in (3, 2):  # SIGTERM, then a restart with another shard count
        run_stage(kafka_bootstrap, topic, env, shards, (LAST_CYCLE // 2 + 4) * MACHINES)
    sharded = by_machine(read_topic(kafka_bootstrap, topic))

    reference_topic = unique_topic("scenarios-one")
    reference_env = scenario_env(
        kafka_bootstrap, reference_topic, SIMULATION_INTERVAL_MS="0",
        CHECKPOINT_INTERVAL_MS="86400000",  # none between a held-back record and the next
    )  # fmt: skip
    result = run_producer(reference_env, "--max-messages", str(MACHINES * (LAST_CYCLE + 1)))
    assert result.returncode == 0, result.stderr
    reference = by_machine(read_topic(kafka_bootstrap, reference_topic))

    ids = machine_indices()
    fraction = fraction_drawn(reference, ids)
    assert 1 <= len(fraction) <= 8  # 30 % of 12, drawn from the seed

    assert set(reference) == set(sharded) == set(ids)
    for key, sent in reference.items():
        index = ids[key]
        stream = unique_records(sent)
        assert [seq(r) for r in sent] == sent_order(index)
        for record in stream:
            assert_scheduled(record, index, fraction)
        # the 3- then 2-shard run with a SIGTERM between: the same records, byte for byte
        emitted = {seq(r): r for r in unique_records(sharded[key])}
        assert sorted(emitted) == list(range(len(emitted)))
        assert len(emitted) > LAST_CYCLE
        for record in stream:
            if seq(record) in emitted:
                other = emitted[seq(record)]
                assert without_timestamp(other.value) == without_timestamp(record.value)
                assert other.headers == record.headers

    # late: the timestamp of the cycle 3 earlier (the sharded run has a schedule)
    late = {
        seq(r): body(r)["timestamp"] for r in sharded[next(k for k, i in ids.items() if i == 10)]
    }
    assert (late[15], late[16]) == (late[12], late[13])
    assert late[14] != late[11]

    # the degradation: rul_cycles counts down to 0 at the failure; health never rises
    wear = [body(r) for r in unique_records(reference[next(k for k, i in ids.items() if i == 2)])]
    path = [(d["rul_cycles"], d["health"]) for d in wear if d["rul_cycles"] is not None]
    assert [rul for rul, _ in path] == [*range(15, 0, -1), 0, 0, 0]
    health = [h for _, h in path]
    assert health[0] == 1.0
    assert health[-3:] == [0.0, 0.0, 0.0]
    assert all(a >= b for a, b in itertools.pairwise(health))
    first_failing = next(d["seq"] for d in wear if d["failure"] is not None)
    assert first_failing == 25
    assert wear[25]["rul_cycles"] == 0


def latest_seqs(bootstrap: str, topic: str) -> dict[bytes, int]:
    """Each machine's highest seq in ``topic`` so far."""
    latest: dict[bytes, int] = {}
    for record in read_topic(bootstrap, topic):
        latest[record.key] = max(latest.get(record.key, -1), seq(record))
    return latest


def test_a_sigkill_repeats_identical_records_and_keeps_the_schedule(kafka_bootstrap: str) -> None:
    """3 shards, one killed with SIGKILL once checkpoints exist and restarted: its repeats are
    byte-identical, and after de-duplication on (machine, seq) every record is there with
    exactly its scheduled labels (the held-back one of an out-of-order fault included)."""
    topic = unique_topic("scenarios-kill")
    env = scenario_env(
        kafka_bootstrap, topic, SIMULATION_INTERVAL_MS="250", CHECKPOINT_INTERVAL_MS="500"
    )
    envs = shard_envs(env, 3)
    processes = [spawn(e) for e in envs]
    restarted: subprocess.Popen[str] | None = None
    try:
        for first in processes:
            started(first)
        wait_for_growth(kafka_bootstrap, f"{topic}-state", MACHINES)  # checkpoints are written
        wait_for_growth(kafka_bootstrap, topic, 3 * MACHINES)  # and records after them
        victim = processes[1]
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        restarted = spawn(envs[1])
        startup = started(restarted)
        wait_until(
            lambda: (
                len(latest := latest_seqs(kafka_bootstrap, topic)) == MACHINES
                and min(latest.values()) >= LAST_CYCLE
            ),
            timeout=180,
            message=f"every machine past cycle {LAST_CYCLE}",
        )
    finally:
        survivors: list[subprocess.Popen[str] | None] = [processes[0], processes[2], restarted]
        for survivor in survivors:
            if survivor is not None:
                survivor.send_signal(signal.SIGTERM)
                _, err = survivor.communicate(timeout=60)
                assert survivor.returncode == 0, err
    resumed = re.search(r"machines resume at cycles (\d+)\.\.(\d+)", startup)
    assert resumed, startup
    assert int(resumed.group(1)) > 0  # from its checkpoint, not from the beginning

    reference = by_machine(read_topic(kafka_bootstrap, topic))
    ids = machine_indices()
    fraction = fraction_drawn(reference, ids)
    for key, sent in reference.items():
        index = ids[key]
        stream = unique_records(sent)  # repeats byte-identical
        assert [seq(r) for r in stream] == list(range(len(stream))), f"gap for {index}"
        for record in stream[: LAST_CYCLE + 1]:
            assert_scheduled(record, index, fraction)
