"""The continuity coordinator: the one object the producer app drives to restore a shard's
machines from the state topic, catch them up and checkpoint them (see docs/continuity.md).

It joins three parts over one ``ShardPosition`` (where the shard's machines are): the start
(``restoration``: adopt the simulation's epoch, seed and configuration history, restore each
machine's state), the catch-up (``catch_up``) and the running checkpoints (``checkpoints``:
periodic, final, and the exactly-once commit path). The schedule, the configuration history
and the configuration fingerprint have modules of their own beside this one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from producer.continuity.catch_up import Progress, SendRows, Stoppable, catch_up
from producer.continuity.checkpoints import Checkpoints, IntervalCommitter
from producer.continuity.codec import SegmentRecord
from producer.continuity.history import History
from producer.continuity.position import ShardPosition
from producer.continuity.restoration import Restoration
from producer.continuity.schedule import Schedule
from producer.continuity.segments import EngineFactory, ShardSegments
from producer.errors import IntervalAbortedError
from producer.settings import ProducerSettings
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile
from producer.sinks.protocol import Sink

if TYPE_CHECKING:  # the Kafka client is imported only when continuity runs against Kafka
    from producer.continuity.state_topic import StateTopic


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
        schedule = Schedule.starting(time.time(), settings.simulation_interval_ms)
        self.position = ShardPosition(
            machine_ids,
            schedule,
            # without a state topic: one segment, the process's own settings
            History((SegmentRecord(0, 0, schedule.epoch_ms, settings.simulation_interval_ms, {}),)),
            Progress.fresh(len(machine_ids)),
        )
        self.store = store
        self.restoration = Restoration(settings, profile, self.position, store, registry)
        self.checkpoints = Checkpoints(
            self.position,
            store,
            registry,
            interval_seconds=settings.checkpoint_interval_ms / 1000,
            committer=committer,
        )

    @property
    def schedule(self) -> Schedule:
        return self.position.schedule

    @property
    def history(self) -> History:
        return self.position.history

    @property
    def progress(self) -> Progress:
        return self.position.progress

    @property
    def segments(self) -> ShardSegments:
        return self.position.segments

    # -- start -------------------------------------------------------------------------------
    def open(self, seed: int | None, fallback_seed: int) -> int:
        """Join the simulation in the state topic (``Restoration.open``); returns the seed to
        simulate with."""
        return self.restoration.open(seed, fallback_seed)

    def restore(self, engine: SimulationEngine, factory: EngineFactory | None = None) -> None:
        """Restore the machines into ``engine`` (and the engines ``factory`` builds for earlier
        segments) and plan the catch-up (``Restoration.restore``)."""
        self.restoration.restore(engine, factory)

    def catch_up(self, send: SendRows, stop: Stoppable) -> None:
        """Step the machines that are behind (alone, each cycle under the segment in force at
        it) until the shard is on one cycle of the latest segment and no skip is left to
        announce; then the shard's engine's ``cycle`` is its next cycle."""
        position = self.position
        catch_up(position.progress, position.schedule, position.segments, send, stop)

    # -- running -----------------------------------------------------------------------------
    def completed(self, cycle: int, emitted: int) -> None:
        """Rows ``0..emitted-1`` emitted ``cycle``; the rest were stepped but not emitted."""
        self.position.completed(cycle, emitted)

    def checkpoint_due(self) -> bool:
        """Whether ``maybe_checkpoint`` would write a checkpoint now."""
        return self.checkpoints.due()

    @property
    def transactional(self) -> bool:
        """Exactly-once: records count once their transaction commits."""
        return self.checkpoints.transactional

    @property
    def final_committed(self) -> bool:
        """Exactly-once: the final commit (the records left and the last checkpoint) succeeded."""
        return self.checkpoints.final_committed

    def maybe_checkpoint(self, sink: Sink) -> None:
        """A checkpoint if CHECKPOINT_INTERVAL_MS has passed since the last one."""
        self.checkpoints.maybe_checkpoint(sink)

    def checkpoint(self, sink: Sink, flush_seconds: float) -> bool:
        """A checkpoint now (``Checkpoints.checkpoint``); whether one was written."""
        return self.checkpoints.checkpoint(sink, flush_seconds)

    def aborted(self, failure: IntervalAbortedError) -> None:
        """Exactly-once: the transaction in progress was aborted; the caller replays."""
        self.checkpoints.aborted(failure)

    def finish(self, sink: Sink, flushed: bool) -> None:
        """At shutdown: the final checkpoint (if everything was delivered), then close."""
        self.checkpoints.finish(sink, flushed)
