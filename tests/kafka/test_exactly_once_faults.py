"""Exactly-once through broker faults and the operator's handover, on the real broker: a
broker hung beyond the transaction timeout, a broker restart, and a replica change 2 -> 3 -> 1
(every old producer stopped before the new layout starts). Each leaves a read_committed
consumer with every machine's seq 0..N once, bodies equal to an undisturbed run; a
read_uncommitted consumer of the same topic sees the aborted duplicates where there are any.

The fault tests suspend or restart the session broker and end with it running again.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from testbed.kafka import KafkaBroker
from testbed.polling import wait_until
from tests.kafka.test_continuity import MACHINES
from tests.kafka.test_exactly_once import assert_every_cycle_once, exactly_once_env
from tests.kafka.test_producer_faults import finish, frozen
from tests.producer_kafka_support import unique_topic
from tests.shard_processes import (
    run_shards,
    shard_envs,
    spawn,
    started,
    topic_size,
    wait_for_growth,
)

pytestmark = pytest.mark.kafka

CHECKPOINT_INTERVAL_MS = 1000
TRANSACTION_TIMEOUT_S = (CHECKPOINT_INTERVAL_MS + 60_000) / 1000
"""The producer's transaction.timeout.ms (CHECKPOINT_INTERVAL_MS + 60 s), in seconds."""


def start_shards(env: dict[str, str], shards: int) -> list[subprocess.Popen[str]]:
    processes = [spawn(e) for e in shard_envs(env, shards)]
    for process in processes:
        started(process)
    return processes


def wait_for_growth_after(bootstrap: str, topic: str, records: int) -> None:
    """``wait_for_growth`` once the broker answers again (after a fault it may answer
    metadata without brokers for a moment)."""
    size = wait_until(
        lambda: (topic_size(bootstrap, topic),),
        timeout=120,
        message=f"the broker to describe {topic} again",
    )[0]
    wait_until(
        lambda: topic_size(bootstrap, topic) >= size + records,
        timeout=180,
        message=f"{topic} to grow by {records} records",
    )


def stop_all(processes: list[subprocess.Popen[str]]) -> list[str]:
    """SIGTERM each; each must exit 0 having committed its final checkpoint."""
    errors = [finish(process, 90) for process in processes]
    for process, err in zip(processes, errors, strict=True):
        assert process.returncode == 0, err[-4000:]
        assert "(committed)" in err, err[-4000:]
    return errors


def test_a_broker_hung_beyond_the_transaction_timeout_is_survived(
    kafka_broker: KafkaBroker,
) -> None:
    """The broker hangs longer than the transaction timeout (it aborts the open transactions
    when it resumes): both shards go on, replaying the aborted interval, and stop cleanly."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic("eos-hung")
    env = exactly_once_env(bootstrap, topic, CHECKPOINT_INTERVAL_MS=str(CHECKPOINT_INTERVAL_MS))
    processes = start_shards(env, 2)
    errors: list[str] = []
    try:
        wait_for_growth(bootstrap, f"{topic}-state", MACHINES)  # commits happened
        wait_for_growth(bootstrap, topic, 5 * MACHINES)  # and an interval is open
        with frozen(kafka_broker):
            time.sleep(TRANSACTION_TIMEOUT_S + 5)  # the fault: longer than the timeout
        wait_for_growth_after(bootstrap, f"{topic}-state", 2 * MACHINES)  # both commit again
        wait_for_growth_after(bootstrap, topic, 20 * MACHINES)
    finally:
        errors = stop_all(processes)
    assert all("transaction aborted" in err for err in errors), errors
    committed, duplicates = assert_every_cycle_once(bootstrap, topic)
    assert duplicates  # the intervals open when the broker hung, aborted and replayed
    print(f"{committed} committed records, {duplicates} aborted duplicates")


def test_a_broker_restart_is_survived(kafka_broker: KafkaBroker) -> None:
    """The broker stops (controlled shutdown) and starts again under two shards."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic("eos-restart")
    env = exactly_once_env(bootstrap, topic)
    processes = start_shards(env, 2)
    try:
        wait_for_growth(bootstrap, f"{topic}-state", MACHINES)
        wait_for_growth(bootstrap, topic, 5 * MACHINES)
        try:
            kafka_broker.stop()
        finally:
            kafka_broker.start()
        wait_for_growth_after(bootstrap, f"{topic}-state", 2 * MACHINES)
        wait_for_growth_after(bootstrap, topic, 20 * MACHINES)
    finally:
        errors = stop_all(processes)
    committed, duplicates = assert_every_cycle_once(bootstrap, topic)
    aborts = sum(err.count("transaction aborted") for err in errors)
    print(f"{committed} committed records, {duplicates} aborted duplicates, {aborts} aborts")


def test_a_replica_change_with_the_handover_leaves_every_cycle_once(kafka_bootstrap: str) -> None:
    """2 -> 3 -> 1 shards, as the operator's handover does it: every producer of the old
    layout SIGTERMed and gone before the new layout starts with another SHARD_COUNT."""
    topic = unique_topic("eos-reshard")
    env = exactly_once_env(kafka_bootstrap, topic)
    for shards in (2, 3, 1):
        run_shards(kafka_bootstrap, topic, env, shards, 30 * MACHINES)
    committed, duplicates = assert_every_cycle_once(kafka_bootstrap, topic)
    assert committed > MACHINES * 60  # three runs of ~30 cycles each
    print(f"{committed} committed records, {duplicates} aborted duplicates")
