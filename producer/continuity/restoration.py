"""The start of a shard: join the simulation in the state topic (adopt or propose its epoch,
seed and configuration segments), put each machine's checkpointed state into the engine of
its segment and plan the catch-up (see docs/continuity.md, "Restore and catch-up")."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from producer.continuity.adoption import join
from producer.continuity.catch_up import Progress, plan_skips
from producer.continuity.codec import MachineCheckpoint, stack_states
from producer.continuity.position import ShardPosition
from producer.continuity.schedule import Schedule
from producer.continuity.segments import EngineFactory, ShardSegments
from producer.errors import ConfigError
from producer.settings import ProducerSettings
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile

if TYPE_CHECKING:  # the Kafka client is imported only when continuity runs against Kafka
    from producer.continuity.snapshot import StateSnapshot
    from producer.continuity.state_topic import StateTopic

log = logging.getLogger(__name__)


class Restoration:
    """Sets the shard's ``position`` from the state topic: the schedule and history on
    ``open``, the segments and each row's progress on ``restore``.

    Without a state topic (``store`` None) the schedule starts now (or at SIMULATION_EPOCH)
    and every machine starts at cycle 0."""

    def __init__(
        self,
        settings: ProducerSettings,
        profile: ReferenceProfile,
        position: ShardPosition,
        store: StateTopic | None,
        registry: CollectorRegistry,
    ) -> None:
        self._settings = settings
        self._profile = profile
        self._position = position
        self._store = store
        self._checkpoints: dict[str, MachineCheckpoint] = {}
        """Read by ``open``, placed (and dropped) by ``restore``."""
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

    def open(self, seed: int | None, fallback_seed: int) -> int:
        """Read the state topic; adopt the simulation's epoch and seed (proposing them, with
        ``fallback_seed`` when SIMULATION_SEED (``seed``) is unset, if the simulation is new)
        and its configuration history (proposing a new segment if the settings changed).
        Returns the seed to simulate with."""
        if self._store is None:
            return fallback_seed if seed is None else seed
        store = self._store
        position = self._position
        ids = position.machine_ids
        store.ensure()
        joined = join(
            store,
            self._settings,
            self._profile,
            set(ids),
            seed=seed,
            fallback_seed=fallback_seed,
        )
        record = joined.record
        position.history = joined.history
        position.schedule = joined.history.schedule()
        self._checkpoints = self._matching(joined.snapshot, store.topic)
        log.info(
            "simulation %r began at %s (seed %d, %d configuration segments); %d of %d machines "
            "have a checkpoint in %r",
            record.simulation,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.epoch_ms / 1000)),
            record.seed,
            len(position.history.segments),
            len(self._checkpoints),
            len(ids),
            store.topic,
        )
        return record.seed

    def _matching(self, snapshot: StateSnapshot, topic: str) -> dict[str, MachineCheckpoint]:
        """The machines' checkpoints, if every one was written under a segment of the
        history (its configuration's fingerprint and model)."""
        segments = self._position.history.segments
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
        position = self._position
        rows = len(position.machine_ids)
        if self._store is None:  # no shared schedule: cycle 0 (or SIMULATION_EPOCH) is now
            epoch = self._settings.simulation_epoch
            position.schedule = Schedule.starting(
                time.time() if epoch is None else epoch.timestamp(), position.schedule.interval_ms
            )
        position.segments = ShardSegments(position.history, engine, rows, factory)
        position.progress = Progress.fresh(rows)  # a replay (exactly-once) starts anew
        self._restore_states(engine.first_machine)
        progress = position.progress
        current = position.schedule.current_cycle(time.time())
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
        if self._store is not None:
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
        position = self._position
        ids = position.machine_ids
        restored: dict[tuple[int, int], list[int]] = {}
        started: dict[int, list[int]] = {}
        for row, machine_id in enumerate(ids):
            checkpoint = self._checkpoints.get(machine_id)
            if checkpoint is None:
                cycle = position.history.first_cycle(first_machine + row)
                started.setdefault(cycle, []).append(row)
            else:
                restored.setdefault((checkpoint.segment, checkpoint.cycle), []).append(row)
                cycle = checkpoint.cycle
            position.progress.next_cycle[row] = cycle
        for (segment, _), rows in restored.items():
            states = stack_states([self._checkpoints[ids[r]] for r in rows])
            try:
                position.segments.place(np.array(rows, dtype=np.int64), segment, states)
            except ValueError as exc:
                raise ConfigError(
                    f"state topic checkpoints do not fit this engine ({exc}); use another "
                    "KAFKA_STATE_TOPIC"
                ) from None
        for cycle, rows in started.items():
            position.segments.start(np.array(rows, dtype=np.int64), cycle)
        self._checkpoints = {}
