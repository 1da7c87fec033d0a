"""The continuity coordinator: restores a shard's machines from the state topic, catches
them up, checkpoints them (see docs/continuity.md).

Checkpoints: every CHECKPOINT_INTERVAL_MS, at a cycle boundary, the producer waits until every
record sent so far is acknowledged and then writes each machine's state and the cycle it emits
next. A restart therefore resumes at or before the last acknowledged cycle: no gap; what is
emitted twice after a crash is byte-identical (same seq, timestamp, body, headers). The epoch
(and, when SIMULATION_SEED is unset, the seed) is adopted from the state topic's first
simulation record. The schedule, the catch-up and the configuration fingerprint have modules
of their own beside this one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from producer.continuity.adoption import join
from producer.continuity.catch_up import Progress, SendRows, Stoppable, catch_up, plan_skips
from producer.continuity.codec import (
    MachineCheckpoint,
    SegmentRecord,
    encode_machines,
    stack_states,
)
from producer.continuity.history import History
from producer.continuity.schedule import Schedule
from producer.continuity.segments import EngineFactory, ShardSegments
from producer.errors import ConfigError, IntervalAbortedError
from producer.settings import ProducerSettings
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile
from producer.sinks.protocol import Sink

if TYPE_CHECKING:  # the Kafka client is imported only when continuity runs against Kafka
    from producer.continuity.snapshot import StateSnapshot
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


class Continuity:
    """Restores a shard's machines from the state topic, catches them up, checkpoints them.

    Without a state topic (``store`` None: the stdout sink, or CHECKPOINT_INTERVAL_MS=0) it
    only provides the schedule of a process that starts the simulation now (or at
    SIMULATION_EPOCH) and writes no checkpoint."""

    def __init__(
        self,
        settings: ProducerSettings,
        profile: ReferenceProfile,
        machine_ids: list[str],
        store: StateTopic | None,
        registry: CollectorRegistry,
        *,
        committer: IntervalCommitter | None = None,
    ) -> None:
        """``committer``: exactly-once, checkpoints are committed with the interval's records
        through it (None: at-least-once, written through ``store`` once delivered)."""
        self._settings = settings
        self._committer = committer
        self._profile = profile
        self._ids = machine_ids
        self.store = store
        self.progress = Progress.fresh(len(machine_ids))
        self.schedule = Schedule.starting(time.time(), settings.simulation_interval_ms)
        self.history = History(
            (SegmentRecord(0, 0, self.schedule.epoch_ms, settings.simulation_interval_ms, {}),)
        )
        """Without a state topic: one segment, the process's own settings."""
        self.segments: ShardSegments
        self._checkpoints: dict[str, MachineCheckpoint] = {}
        self._last_checkpoint = time.monotonic()
        self._interval = settings.checkpoint_interval_ms / 1000
        self._warned_unflushed = False
        self.final_committed = False
        """Exactly-once: the final commit (the records left and the last checkpoint) succeeded."""
        self.skipped_cycles = Counter(
            "sensorsim_skipped_cycles",
            "Missed cycles not re-emitted because they exceeded CATCH_UP_MAX_CYCLES.",
            registry=registry,
        )
        self.caught_up_cycles = Counter(
            "sensorsim_caught_up_cycles",
            "Machine-cycles that were already due when this producer started (re-emitted late).",
            registry=registry,
        )
        self.checkpoints = Counter(
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

    # -- start -------------------------------------------------------------------------------
    def open(self, seed: int | None, fallback_seed: int) -> int:
        """Read the state topic; adopt the simulation's epoch and seed (proposing them, with
        ``fallback_seed`` when SIMULATION_SEED (``seed``) is unset, if the simulation is new)
        and its configuration history (proposing a new segment if the settings changed).
        Returns the seed to simulate with."""
        if self.store is None:
            return fallback_seed if seed is None else seed
        store = self.store
        store.ensure()
        joined = join(
            store,
            self._settings,
            self._profile,
            set(self._ids),
            seed=seed,
            fallback_seed=fallback_seed,
        )
        record = joined.record
        self.history = joined.history
        self.schedule = joined.history.schedule()
        self._checkpoints = self._matching(joined.snapshot, store.topic)
        log.info(
            "simulation %r began at %s (seed %d, %d configuration segments); %d of %d machines "
            "have a checkpoint in %r",
            record.simulation,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.epoch_ms / 1000)),
            record.seed,
            len(self.history.segments),
            len(self._checkpoints),
            len(self._ids),
            store.topic,
        )
        return record.seed

    def _matching(self, snapshot: StateSnapshot, topic: str) -> dict[str, MachineCheckpoint]:
        """The machines' checkpoints, if every one was written under a segment of the
        history (its configuration's fingerprint and model)."""
        segments = self.history.segments
        for machine_id, checkpoint in snapshot.machines.items():
            segment = segments[checkpoint.segment] if checkpoint.segment < len(segments) else None
            if (
                segment is None
                or checkpoint.fingerprint != segment.fingerprint
                or checkpoint.model != segment.config.get("model")
            ):
                raise ConfigError(
                    f"state topic {topic!r}: the checkpoint of machine {machine_id} was written "
                    f"under configuration {checkpoint.fingerprint} (segment "
                    f"{checkpoint.segment}, model {checkpoint.model}), which is not in this "
                    "simulation's configuration history; use another KAFKA_STATE_TOPIC"
                )
        return snapshot.machines

    def restore(self, engine: SimulationEngine, factory: EngineFactory | None = None) -> None:
        """Put each checkpointed machine's state into the engine of the segment it was written
        under (``engine`` is the latest segment's; ``factory`` builds the others), start the
        machines without one, and plan the catch-up."""
        if self.store is None:  # no shared schedule: cycle 0 (or SIMULATION_EPOCH) is now
            epoch = self._settings.simulation_epoch
            self.schedule = Schedule.starting(
                time.time() if epoch is None else epoch.timestamp(), self.schedule.interval_ms
            )
        self.segments = ShardSegments(self.history, engine, len(self._ids), factory)
        self.progress = Progress.fresh(len(self._ids))  # a replay (exactly-once) starts anew
        self._restore_states(engine.first_machine)
        progress = self.progress
        current = self.schedule.current_cycle(time.time())
        skipped = plan_skips(progress.next_cycle, current, self._settings.catch_up_max_cycles)
        progress.skipped[:] = skipped
        if skipped.any():
            total = int(skipped.sum())
            self.skipped_cycles.inc(total)
            log.warning(
                "%d machines are more than CATCH_UP_MAX_CYCLES=%d cycles behind schedule: "
                "skipping %d machine-cycles; each one's next record carries header skipped_cycles",
                int((skipped > 0).sum()),
                self._settings.catch_up_max_cycles,
                total,
            )
        if current is not None:
            self.caught_up_cycles.inc(int(np.maximum(current + 1 - progress.next_cycle, 0).sum()))
        if self.store is not None:
            log.info(
                "machines resume at cycles %d..%d; the schedule is at cycle %s",
                int(progress.next_cycle.min()),
                int(progress.next_cycle.max()),
                "-" if current is None else current,
            )
        engine.cycle = int(progress.next_cycle.min())

    def _restore_states(self, first_machine: int) -> None:
        """Each checkpointed machine's state into the engine of its segment, its cycle into
        the progress; each other machine starts where the history first includes it."""
        restored: dict[tuple[int, int], list[int]] = {}
        started: dict[int, list[int]] = {}
        for row, machine_id in enumerate(self._ids):
            checkpoint = self._checkpoints.get(machine_id)
            if checkpoint is None:
                cycle = self.history.first_cycle(first_machine + row)
                started.setdefault(cycle, []).append(row)
            else:
                restored.setdefault((checkpoint.segment, checkpoint.cycle), []).append(row)
                cycle = checkpoint.cycle
            self.progress.next_cycle[row] = cycle
        for (segment, _), rows in restored.items():
            states = stack_states([self._checkpoints[self._ids[r]] for r in rows])
            try:
                self.segments.place(np.array(rows, dtype=np.int64), segment, states)
            except ValueError as exc:
                raise ConfigError(
                    f"state topic checkpoints do not fit this engine ({exc}); use another "
                    "KAFKA_STATE_TOPIC"
                ) from None
        for cycle, rows in started.items():
            self.segments.start(np.array(rows, dtype=np.int64), cycle)
        self._checkpoints = {}

    def catch_up(self, send: SendRows, stop: Stoppable) -> None:
        """Step the machines that are behind (alone, each cycle under the segment in force at
        it) until the shard is on one cycle of the latest segment and no skip is left to
        announce; then the shard's engine's ``cycle`` is its next cycle."""
        catch_up(self.progress, self.schedule, self.segments, send, stop)

    # -- running -----------------------------------------------------------------------------
    def completed(self, cycle: int, emitted: int) -> None:
        """Rows ``0..emitted-1`` emitted ``cycle``; the rest were stepped but not emitted."""
        progress = self.progress
        progress.next_cycle[:emitted] = cycle + 1
        if emitted < len(progress.next_cycle):
            progress.clean[emitted:] = False

    def checkpoint_due(self) -> bool:
        """Whether ``maybe_checkpoint`` would write a checkpoint now."""
        return self.store is not None and time.monotonic() - self._last_checkpoint >= self._interval

    def maybe_checkpoint(self, sink: Sink) -> None:
        if self.checkpoint_due():
            self.checkpoint(sink, CHECKPOINT_FLUSH_SECONDS)

    def checkpoint(self, sink: Sink, flush_seconds: float) -> bool:
        """Write the state of every checkpointable row, once all records sent so far are
        acknowledged (else a crash could leave a checkpoint ahead of the data: a gap)."""
        store = self.store
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
        records = self._checkpoint_records(store.prefix)
        if not records:
            return False
        store.write(records)
        self.checkpoints.inc()
        return True

    def _commit(self, committer: IntervalCommitter, store: StateTopic, timeout: float) -> bool:
        """Exactly-once: commit the records sent since the last commit with the checkpoint of
        every checkpointable row (``IntervalAbortedError`` when the interval must be replayed)."""
        started = time.monotonic()
        committer.commit(store.topic, STATE_PARTITION, self._checkpoint_records(store.prefix),
                         timeout)  # fmt: skip
        self.commit_seconds.observe(time.monotonic() - started)
        self.transactions_committed.inc()
        self.checkpoints.inc()
        return True

    @property
    def transactional(self) -> bool:
        """Exactly-once: records count once their transaction commits."""
        return self._committer is not None and self.store is not None

    def aborted(self, failure: IntervalAbortedError) -> None:
        """Exactly-once: the transaction in progress was aborted; the caller replays."""
        self.transactions_aborted.inc()
        log.warning(
            "exactly-once: transaction aborted (%s); replaying from the last committed checkpoint",
            failure,
        )

    def _checkpoint_records(self, prefix: str) -> list[tuple[bytes, bytes]]:
        """The checkpoint record of every checkpointable row: its state and next cycle."""
        progress = self.progress
        rows = np.flatnonzero(progress.clean)
        segments = self.history.segments
        records: list[tuple[bytes, bytes]] = []
        if rows.size == 0:
            return records
        for index, group, state in self.segments.groups(rows):
            config = segments[index].config
            records += encode_machines(
                prefix,
                [self._ids[r] for r in group.tolist()],
                progress.next_cycle[group].tolist(),
                model=str(config.get("model")),
                fingerprint=segments[index].fingerprint,
                state=state,
                segment=index,
            )
        return records

    def finish(self, sink: Sink, flushed: bool) -> None:
        """At shutdown: the final checkpoint (if everything was delivered), then close."""
        store = self.store
        if store is None:
            return
        try:
            if self._committer is not None:
                self._final_commit(sink, store)
            elif flushed and self.checkpoint(sink, 1.0):
                if store.flush(5.0) and not store.failed:
                    log.info(
                        "checkpointed %d machines at cycle %d to %r",
                        int(self.progress.clean.sum()),
                        int(self.progress.next_cycle.max()),
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
            int(self.progress.clean.sum()),
            int(self.progress.next_cycle.max()),
            store.topic,
        )
