"""The running checkpoints of a shard (see docs/continuity.md).

Every CHECKPOINT_INTERVAL_MS, at a cycle boundary, the producer waits until every record sent
so far is acknowledged and then writes each machine's state and the cycle it emits next; at
shutdown a last checkpoint follows the flush. A restart therefore resumes at or before the
last acknowledged cycle: no gap; what is emitted twice after a crash is byte-identical (same
seq, timestamp, body, headers). Exactly-once: each checkpoint is committed in one transaction
with the records of its interval instead.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from producer.continuity.codec import encode_machines
from producer.continuity.position import ShardPosition
from producer.errors import IntervalAbortedError
from producer.sinks.protocol import Sink

if TYPE_CHECKING:  # the Kafka client is imported only when continuity runs against Kafka
    from producer.continuity.state_topic import StateTopic

STATE_PARTITION = 0
"""The state topic's one partition (``state_topic.STATE_PARTITION``; that module imports the
Kafka client, which this one does not)."""

log = logging.getLogger(__name__)

CHECKPOINT_FLUSH_SECONDS = 10.0
"""How long a periodic checkpoint waits for the records before it (then it is skipped)."""

COMMIT_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class IntervalCommitter(Protocol):
    """Exactly-once: commits the interval's records together with its checkpoint records."""

    def commit(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes]], timeout: float
    ) -> None:
        """Raises ``IntervalAbortedError`` when the interval must be replayed."""


class Checkpoints:
    """Writes the state of the shard's checkpointable rows (``position``) to ``store``, every
    ``interval_seconds`` and at shutdown; with a ``committer`` (exactly-once) each checkpoint
    is committed with the interval's records through it (None: at-least-once, written through
    ``store`` once delivered). Without a state topic it writes nothing."""

    def __init__(
        self,
        position: ShardPosition,
        store: StateTopic | None,
        registry: CollectorRegistry,
        *,
        interval_seconds: float,
        committer: IntervalCommitter | None = None,
    ) -> None:
        self._position = position
        self._store = store
        self._committer = committer
        self._interval = interval_seconds
        self._last_checkpoint = time.monotonic()
        self._warned_unflushed = False
        self.final_committed = False
        """Exactly-once: the final commit (the records left and the last checkpoint) succeeded."""
        self.written = Counter(
            "sensorsim_checkpoints", "Checkpoints written (all machines of the shard).",
            registry=registry,
        )  # fmt: skip
        self.transactions_committed = Counter(
            "sensorsim_transactions_committed",
            "Exactly-once: transactions committed (an interval's records with its checkpoint).",
            registry=registry,
        )
        self.transactions_aborted = Counter(
            "sensorsim_transactions_aborted",
            "Exactly-once: transactions aborted (the interval was replayed from the last commit).",
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "sensorsim_transaction_commit_seconds",
            "Exactly-once: seconds from the start of a commit (checkpoint records sent, then "
            "the transaction's end) to its acknowledgement.",
            buckets=COMMIT_SECONDS_BUCKETS,
            registry=registry,
        )

    @property
    def transactional(self) -> bool:
        """Exactly-once: records count once their transaction commits."""
        return self._committer is not None and self._store is not None

    def due(self) -> bool:
        """Whether ``maybe_checkpoint`` would write a checkpoint now."""
        return (
            self._store is not None and time.monotonic() - self._last_checkpoint >= self._interval
        )

    def maybe_checkpoint(self, sink: Sink) -> None:
        if self.due():
            self.checkpoint(sink, CHECKPOINT_FLUSH_SECONDS)

    def checkpoint(self, sink: Sink, flush_seconds: float) -> bool:
        """Write the state of every checkpointable row, once all records sent so far are
        acknowledged (else a crash could leave a checkpoint ahead of the data: a gap)."""
        store = self._store
        if store is None:
            return False
        self._last_checkpoint = time.monotonic()
        if self._committer is not None:
            return self._commit(self._committer, store, flush_seconds)
        if not sink.wait_delivered(flush_seconds):
            if not self._warned_unflushed:
                log.warning(
                    "checkpoint skipped: records are unacknowledged or failed (%d pending, %d "
                    "failed); a restart resumes from the previous checkpoint",
                    sink.stats.pending,
                    sink.stats.failed,
                )
                self._warned_unflushed = True
            return False
        records = self._records(store.prefix)
        if not records:
            return False
        store.write(records)
        self.written.inc()
        return True

    def _commit(self, committer: IntervalCommitter, store: StateTopic, timeout: float) -> bool:
        """Exactly-once: commit the records sent since the last commit with the checkpoint of
        every checkpointable row (``IntervalAbortedError`` when the interval must be replayed)."""
        started = time.monotonic()
        committer.commit(store.topic, STATE_PARTITION, self._records(store.prefix), timeout)
        self.commit_seconds.observe(time.monotonic() - started)
        self.transactions_committed.inc()
        self.written.inc()
        return True

    def aborted(self, failure: IntervalAbortedError) -> None:
        """Exactly-once: the transaction in progress was aborted; the caller replays."""
        self.transactions_aborted.inc()
        log.warning(
            "exactly-once: transaction aborted (%s); replaying from the last committed checkpoint",
            failure,
        )

    def _records(self, prefix: str) -> list[tuple[bytes, bytes]]:
        """The checkpoint record of every checkpointable row: its state and next cycle."""
        position = self._position
        progress = position.progress
        rows = np.flatnonzero(progress.clean)
        segments = position.history.segments
        records: list[tuple[bytes, bytes]] = []
        if rows.size == 0:
            return records
        for index, group, state in position.segments.groups(rows):
            config = segments[index].config
            records += encode_machines(
                prefix,
                [position.machine_ids[r] for r in group.tolist()],
                progress.next_cycle[group].tolist(),
                model=str(config.get("model")),
                fingerprint=segments[index].fingerprint,
                state=state,
                segment=index,
            )
        return records

    def finish(self, sink: Sink, flushed: bool) -> None:
        """At shutdown: the final checkpoint (if everything was delivered), then close."""
        store = self._store
        if store is None:
            return
        try:
            if self._committer is not None:
                self._final_commit(sink, store)
            elif flushed and self.checkpoint(sink, 1.0):
                if store.flush(5.0) and not store.failed:
                    log.info(
                        "checkpointed %d machines at cycle %d to %r",
                        int(self._position.progress.clean.sum()),
                        int(self._position.progress.next_cycle.max()),
                        store.topic,
                    )
                else:
                    log.error("final checkpoint not acknowledged: %s", store.last_error)
            elif not flushed:
                log.warning(
                    "no final checkpoint: not every record was acknowledged; a restart resumes "
                    "from the previous checkpoint (repeating, not losing, cycles)"
                )
        finally:
            store.close()

    def _final_commit(self, sink: Sink, store: StateTopic) -> None:
        """Exactly-once: commit what is left with the last checkpoint; if that fails, the
        next producer replays from the previous commit."""
        try:
            self.checkpoint(sink, CHECKPOINT_FLUSH_SECONDS)
        except IntervalAbortedError as exc:
            self.transactions_aborted.inc()
            log.warning(
                "no final commit (%s): a restart replays from the last committed checkpoint",
                exc,
            )
            return
        self.final_committed = True
        log.info(
            "checkpointed %d machines at cycle %d to %r (committed)",
            int(self._position.progress.clean.sum()),
            int(self._position.progress.next_cycle.max()),
            store.topic,
        )
