"""Upgrading from a release without SIMULATION_UID, on the real broker with real producer
processes: a simulation whose state is under its name alone continues under
``<name>@<uid>`` when SIMULATION_EPOCH is the same (the operator passes the resource's
creation time), every machine's seq going on with no gap and no duplicate; another uid with
another epoch (a re-created resource) is another simulation and starts at seq 0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.kafka.test_config_history import history_env, run_stage, segments, seq
from tests.producer_kafka_support import read_topic, unique_topic
from tests.shard_processes import by_machine

pytestmark = pytest.mark.kafka

MACHINES = 12


def epoch(now: datetime) -> str:
    return now.replace(microsecond=0).isoformat()


def test_the_same_epoch_continues_the_simulation_written_without_a_uid(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic("adoption")
    state = f"{topic}-state"
    started_at = datetime.now(UTC)
    env = history_env(kafka_bootstrap, topic, SIMULATION_NAME="plant",
                      SIMULATION_EPOCH=epoch(started_at), NUM_MACHINES=str(MACHINES))  # fmt: skip

    # the previous release's keys, with a second segment of the configuration history
    run_stage(kafka_bootstrap, topic, env, 2, 20 * MACHINES)
    env = {**env, "FAILURE_PROBABILITY": "0.3"}
    run_stage(kafka_bootstrap, topic, env, 2, 20 * MACHINES)
    first_run = {key: seq(stream[-1]) for key, stream in by_machine(read_topic(
        kafka_bootstrap, topic)).items()}  # fmt: skip
    logs = run_stage(kafka_bootstrap, topic, {**env, "SIMULATION_UID": "uid-a"}, 3,
                     20 * MACHINES)  # fmt: skip

    streams = by_machine(read_topic(kafka_bootstrap, topic))
    assert len(streams) == MACHINES
    for key, stream in streams.items():
        seqs = [seq(r) for r in stream]
        assert seqs == list(range(len(seqs))), f"{key!r}: gap or duplicate after the upgrade"
        assert seqs[-1] > first_run[key]  # the second run emitted this machine too
    assert "continuing simulation 'plant'" in logs
    assert "continue from their checkpoints under the key prefix 'plant'" in logs
    state_records = read_topic(kafka_bootstrap, state)
    proposals = [json.loads(r.value) for r in state_records if r.key.startswith(b"plant@uid-a/s/")]
    adopted = proposals[0]  # the lowest offset: every shard that proposed adopted too
    assert all(p["adopted"] == {"prefix": "plant", "segments": 1} for p in proposals)
    assert segments(kafka_bootstrap, state, "plant@uid-a") == segments(kafka_bootstrap, state,
                                                                       "plant")  # fmt: skip
    assert adopted["epoch_ms"] == round(started_at.replace(microsecond=0).timestamp() * 1000)
    checkpointed = {r.key for r in state_records if r.key.startswith(b"plant@uid-a/m/")}
    assert len(checkpointed) == MACHINES  # checkpoints now go under the new prefix

    # a re-created resource: another uid and another creation time: another simulation
    later = epoch(datetime.now(UTC) + timedelta(seconds=1))
    recreated = {**env, "SIMULATION_UID": "uid-b", "SIMULATION_EPOCH": later}
    logs = run_stage(kafka_bootstrap, topic, recreated, 2, 10 * MACHINES)
    assert "another simulation of the same name" in logs
    for key, stream in by_machine(read_topic(kafka_bootstrap, topic)).items():
        seqs = [seq(r) for r in stream]
        restart = seqs.index(0, 1)
        assert seqs[:restart] == list(range(restart)), key
        assert seqs[restart:] == list(range(len(seqs) - restart)), key
