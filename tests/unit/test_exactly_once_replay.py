"""Exactly-once in-process replay, without a broker: when a transaction is aborted, the producer
restores its machines from the last committed checkpoints and emits the cycles since again,
byte for byte, in the next transaction.

The fakes keep a transaction's records apart until it commits: ``TransactionalSink`` is the
data producer (it aborts the commits it is told to), ``CommittedStateTopic`` the state topic as
a read_committed consumer sees it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from producer.assembly import assemble, load_shard
from producer.errors import ExitCode, IntervalAbortedError
from producer.settings import ProducerSettings
from producer.sinks.protocol import DeliveryStats, OutgoingCycle
from tests.unit.test_producer_state_adoption import MemoryStateTopic

pytestmark = pytest.mark.unit

Copy = tuple[bytes, tuple[tuple[str, bytes], ...]]
"""A record as a consumer sees it: body and scenario headers (seq and machine are the key)."""


class CommittedStateTopic(MemoryStateTopic):
    """The state topic's committed records, in order (``StateTopic``'s surface the producer
    uses): proposals are written at once, checkpoints only by a committed transaction."""

    def __init__(self, settings: ProducerSettings) -> None:
        super().__init__([], settings)
        self.failed = 0
        self.last_error = ""

    def ensure(self) -> None:
        return None

    def write(self, records: list[tuple[bytes, bytes]]) -> None:
        raise AssertionError("exactly-once writes checkpoints only through a commit")

    def flush(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        return None


class TransactionalSink:
    """The data producer: the records of the open transaction become visible (``committed``)
    with its checkpoint at a commit; ``abort_commits`` lists the commits (1 = the first) that
    fail with an abortable error, their records going to ``aborted``."""

    def __init__(self, store: CommittedStateTopic, abort_commits: set[int]) -> None:
        self.stats = DeliveryStats()
        self._store = store
        self._abort = abort_commits
        self._open: list[tuple[int, int, Copy]] = []
        self.commits = 0
        self.committed: list[tuple[int, int, Copy]] = []
        """(row, seq, record) of every committed record, in order."""
        self.aborted: list[tuple[int, int, Copy]] = []

    def start(self) -> None:
        return None

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        labels = cycle.labels or [[] for _ in cycle.bodies]
        for i, (body, headers) in enumerate(zip(cycle.bodies, labels, strict=True)):
            self._open.append((cycle.first_row + i, cycle.seq, (body, tuple(headers))))
        self.stats.sent += len(cycle.bodies)
        self.stats.delivered += len(cycle.bodies)

    def commit(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes]], timeout: float
    ) -> None:
        assert topic == self._store.topic
        self.commits += 1
        sent, self._open = self._open, []
        if self.commits in self._abort:
            self.aborted += sent
            raise IntervalAbortedError("InvalidTxnStateError: forced by the test")
        self.committed += sent
        self._store.log += records

    def delivering(self) -> bool:
        return True

    @property
    def accepting(self) -> bool:
        return True

    def wait_delivered(self, timeout: float) -> bool:
        return True

    def flush(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        self.aborted += self._open  # what was not committed is aborted
        self._open = []


def run(abort_commits: set[int], **overrides: Any) -> TransactionalSink:
    settings = ProducerSettings(
        **{
            "http_port": 0,
            "num_machines": 4,
            "simulation_seed": 7,
            "simulation_interval_ms": 10,
            "checkpoint_interval_ms": 40,
            "delivery_guarantee": "exactly-once",
            "catch_up_max_cycles": 1_000_000,
            "max_messages": 4 * 60,
            **overrides,
        }
    )
    store = CommittedStateTopic(settings)
    sink = TransactionalSink(store, abort_commits)
    app = assemble(settings, load_shard(settings), sink, store, committer=sink)  # type: ignore[arg-type]
    summary = app.run()
    assert summary.exit_code is ExitCode.OK
    return sink


def streams(records: list[tuple[int, int, Copy]]) -> dict[int, list[tuple[int, Copy]]]:
    by_row: dict[int, list[tuple[int, Copy]]] = defaultdict(list)
    for row, seq, copy in records:
        by_row[row].append((seq, copy))
    return by_row


def test_an_aborted_interval_is_replayed_byte_for_byte_from_the_last_commit() -> None:
    """Two commits fail (the first, before any checkpoint was committed, and the third): what
    is committed is each machine's seq 0..N once, and every aborted record equals the
    committed record of its machine and seq."""
    sink = run({1, 3})
    assert sink.commits > 3
    assert sink.aborted, "the forced aborts left no aborted records"
    committed = streams(sink.committed)
    assert sorted(committed) == [0, 1, 2, 3]
    for row, stream in committed.items():
        seqs = [seq for seq, _ in stream]
        assert seqs == list(range(len(seqs))), f"row {row}: gap, duplicate or reorder"
    final = {(row, seq): copy for row, seq, copy in sink.committed}
    for row, seq, copy in sink.aborted:
        assert final.get((row, seq), copy) == copy, f"row {row} seq {seq}: the replay differs"
    replayed = [(row, seq) for row, seq, _ in sink.aborted if (row, seq) in final]
    assert replayed, "no aborted record was replayed"


def test_the_replay_equals_an_undisturbed_run() -> None:
    """The committed stream after aborts equals, record for record, the stream of a run in
    which no transaction failed (same seed)."""
    epoch = datetime.now(UTC)  # one schedule for both runs: the same timestamps
    disturbed = streams(run({2, 3}, simulation_epoch=epoch).committed)
    undisturbed = streams(run(set(), simulation_epoch=epoch).committed)
    for row, stream in disturbed.items():
        reference = dict(undisturbed[row])
        for seq, copy in stream:
            if seq in reference:
                assert copy == reference[seq], f"row {row} seq {seq}"
    assert any(
        seq in dict(undisturbed[row]) for row, stream in disturbed.items() for seq, _ in stream
    )
