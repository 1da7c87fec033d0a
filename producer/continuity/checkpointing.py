"""Continuity: a machine's stream belongs to the simulation, not to the process (issue 9).

* The schedule: cycle ``c`` of the simulation is due at ``epoch + c * interval``; ``seq`` is
  ``c`` and the timestamp is the due time, whichever process emits it. The epoch (and, when
  SIMULATION_SEED is unset, the seed) is adopted from the state topic's first simulation record.
* Checkpoints: every CHECKPOINT_INTERVAL_MS, at a cycle boundary, the producer waits until
  every record sent so far is acknowledged and then writes each machine's state and the cycle
  it emits next. A restart therefore resumes at or before the last acknowledged cycle: no gap;
  what is emitted twice after a crash is byte-identical (same seq, timestamp, body, headers).
* Catch-up: restored machines may be behind the schedule (downtime) and behind one another
  (re-sharding from shards that stopped at different cycles). The lagging machines are stepped
  alone (the others' state is set back after each step) until every machine of the shard is on
  the same cycle; the cycles missed while no process ran are then emitted as fast as the sink
  takes them, with their scheduled timestamps. At most CATCH_UP_MAX_CYCLES are re-emitted; a
  machine further behind skips ahead, which is logged, counted and marked on its next record.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter

from domain.messages import format_timestamp
from producer.continuity.codec import (
    MachineCheckpoint,
    SimulationRecord,
    encode_machines,
    stack_states,
)
from producer.errors import ConfigError
from producer.settings import ProducerSettings
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.reference_data import ReferenceProfile
from producer.sinks.protocol import Sink

if TYPE_CHECKING:  # the Kafka client is imported only when continuity runs against Kafka
    from producer.continuity.state_topic import StateSnapshot, StateTopic

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
SendRows = Callable[[CycleResult, int, int, int], None]
"""``send(result, first_row, stop_row, skipped)``: emit rows ``first_row..stop_row-1``."""

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHECKPOINT_FLUSH_SECONDS = 10.0
"""How long a periodic checkpoint waits for the records before it (then it is skipped)."""


def simulation_config(
    settings: ProducerSettings, profile: ReferenceProfile, seed: int
) -> dict[str, Any]:
    """The settings that shape each machine's stream: a checkpoint written under other values
    cannot continue this simulation (NUM_MACHINES and the sharding are free to change)."""
    data = hashlib.sha256(settings.sensor_data_file.read_bytes()).hexdigest()
    return {
        "simulation": settings.simulation_name,
        "seed": str(seed),
        "model": settings.simulation_model.value,
        "persistence": settings.simulation_persistence,
        "sensors": list(profile.sensor_names),
        "data_sha256": data,
        "failures": [
            settings.failure_probability,
            settings.failure_min_cycles,
            settings.failure_max_cycles,
            settings.failure_ramp_cycles,
        ],
        "interval_ms": settings.simulation_interval_ms,
    }


class Stoppable(Protocol):
    """What catch-up needs of the stop flag (``producer.runtime.stopping.StopFlag``, an Event)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """When each cycle of the simulation is due (``interval_ms`` 0: as fast as possible).
    Kept in integer milliseconds, so every process stamps a cycle with the same millisecond."""

    epoch_ms: int
    """POSIX milliseconds at which cycle 0 was due."""
    interval_ms: int

    @classmethod
    def starting(cls, seconds: float, interval_ms: int) -> Schedule:
        return cls(round(seconds * 1000), interval_ms)

    @property
    def interval(self) -> float:
        return self.interval_ms / 1000

    def due(self, cycle: int) -> float:
        """POSIX seconds at which ``cycle`` is due."""
        return (self.epoch_ms + cycle * self.interval_ms) / 1000

    def timestamp(self, cycle: int) -> str:
        """The body timestamp of ``cycle``: its due time, to the millisecond."""
        return format_timestamp(
            _UNIX_EPOCH + timedelta(milliseconds=self.epoch_ms + cycle * self.interval_ms)
        )

    def current_cycle(self, now: float) -> int | None:
        """The latest cycle due at ``now`` (None without a schedule)."""
        if self.interval_ms <= 0:
            return None
        return math.floor((now * 1000 - self.epoch_ms) / self.interval_ms)


@dataclass
class Progress:
    """Per shard row: the cycle it emits next, cycles skipped before that record, and whether
    the engine's state of the row is the state before ``next_cycle`` (so checkpointable)."""

    next_cycle: IntArray
    skipped: IntArray
    clean: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.clean = np.ones(len(self.next_cycle), dtype=np.bool_)

    @property
    def aligned(self) -> bool:
        return bool((self.next_cycle == self.next_cycle[0]).all()) and not self.skipped.any()


def row_runs(rows: IntArray, skipped: IntArray) -> list[tuple[int, int, int]]:
    """(first, stop, skipped) of each maximal run of consecutive ``rows`` (sorted) with the
    same ``skipped`` value."""
    if rows.size == 0:
        return []
    values = skipped[rows]
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(values) != 0)) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [rows.size]))
    return [
        (int(rows[a]), int(rows[b - 1]) + 1, int(values[a]))
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True)
    ]


def plan_skips(next_cycle: IntArray, current: int | None, bound: int) -> IntArray:
    """Cycles each row skips so that at most ``bound`` missed cycles (due at or before
    ``current``) are re-emitted; moves ``next_cycle`` forward in place."""
    if current is None:
        return np.zeros_like(next_cycle)
    earliest = current + 1 - bound
    skipped = np.maximum(earliest - next_cycle, 0)
    next_cycle += skipped
    return skipped


class Continuity:
    """Restores a shard's machines from the state topic, catches them up, checkpoints them.

    Without a state topic (``store`` None: the stdout sink, or CHECKPOINT_INTERVAL_MS=0) it
    only provides the schedule of a process that starts the simulation now, as before."""

    def __init__(
        self,
        settings: ProducerSettings,
        profile: ReferenceProfile,
        machine_ids: list[str],
        store: StateTopic | None,
        registry: CollectorRegistry,
    ) -> None:
        self._settings = settings
        self._profile = profile
        self._ids = machine_ids
        self.store = store
        rows = len(machine_ids)
        self.progress = Progress(np.zeros(rows, np.int64), np.zeros(rows, np.int64))
        self.schedule = Schedule.starting(time.time(), settings.simulation_interval_ms)
        self._fingerprint = ""
        self._checkpoints: dict[str, MachineCheckpoint] = {}
        self._last_checkpoint = time.monotonic()
        self._interval = settings.checkpoint_interval_ms / 1000
        self._warned_unflushed = False
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

    @property
    def enabled(self) -> bool:
        return self.store is not None

    # -- start -------------------------------------------------------------------------------
    def open(self, seed: int | None, fallback_seed: int) -> int:
        """Read the state topic; adopt the simulation's epoch and seed (proposing them, with
        ``fallback_seed`` when SIMULATION_SEED (``seed``) is unset, if the simulation is new).
        Returns the seed to simulate with."""
        if self.store is None:
            return fallback_seed if seed is None else seed
        store = self.store
        store.ensure()
        wanted = set(self._ids)
        snapshot = store.read(wanted)
        if not snapshot.simulations:
            store.propose(self._proposal(fallback_seed if seed is None else seed), uuid.uuid4().hex)
            snapshot = store.read(wanted)  # another shard's proposal may have landed first
        record = snapshot.simulations[0]
        self._check(record, seed)
        self.schedule = Schedule(record.epoch_ms, self.schedule.interval_ms)
        self._fingerprint = record.fingerprint
        self._checkpoints = self._matching(snapshot, record)
        log.info(
            "simulation %r began at %s (seed %d); %d of %d machines have a checkpoint in %r",
            record.simulation,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.epoch_ms / 1000)),
            record.seed,
            len(self._checkpoints),
            len(self._ids),
            store.topic,
        )
        return record.seed

    def _proposal(self, seed: int) -> SimulationRecord:
        settings = self._settings
        if settings.simulation_epoch is not None:
            epoch = settings.simulation_epoch.timestamp()
        else:
            epoch = time.time()
        return SimulationRecord(
            simulation=settings.simulation_name,
            epoch_ms=round(epoch * 1000),
            seed=seed,
            config=simulation_config(settings, self._profile, seed),
        )

    def _check(self, record: SimulationRecord, seed: int | None) -> None:
        """Refuse to continue a simulation whose records were written under another config."""
        settings = self._settings
        topic = self.store.topic if self.store else ""
        remedy = (
            "revert the setting, or start a new simulation with another KAFKA_STATE_TOPIC (or "
            f"delete the topic {topic!r})"
        )
        mine = simulation_config(settings, self._profile, record.seed if seed is None else seed)
        if mine != record.config:
            differences = [
                f"{key}: {_short(record.config.get(key))} -> {_short(mine.get(key))}"
                for key in sorted(set(mine) | set(record.config))
                if mine.get(key) != record.config.get(key)
            ]
            raise ConfigError(
                f"state topic {topic!r} continues simulation {record.simulation!r} under another "
                f"configuration ({'; '.join(differences)}): {remedy}"
            )
        if settings.simulation_epoch is not None:
            wanted = round(settings.simulation_epoch.timestamp() * 1000)
            if wanted != record.epoch_ms:
                raise ConfigError(
                    f"SIMULATION_EPOCH={settings.simulation_epoch.isoformat()} but simulation "
                    f"{record.simulation!r} began at epoch {record.epoch_ms} ms (state topic "
                    f"{topic!r}): {remedy}"
                )

    def _matching(
        self, snapshot: StateSnapshot, record: SimulationRecord
    ) -> dict[str, MachineCheckpoint]:
        model = self._settings.simulation_model.value
        for machine_id, checkpoint in snapshot.machines.items():
            if checkpoint.fingerprint != record.fingerprint or checkpoint.model != model:
                raise ConfigError(
                    f"state topic {self.store.topic if self.store else ''!r}: the checkpoint of "
                    f"machine {machine_id} was written under configuration "
                    f"{checkpoint.fingerprint} (model {checkpoint.model}), not this simulation's "
                    f"{record.fingerprint} (model {model}); use another KAFKA_STATE_TOPIC"
                )
        return snapshot.machines

    def restore(self, engine: SimulationEngine) -> None:
        """Put each checkpointed machine's state into ``engine`` and plan the catch-up."""
        if self.store is None:  # no shared schedule: cycle 0 (or SIMULATION_EPOCH) is now
            epoch = self._settings.simulation_epoch
            self.schedule = Schedule.starting(
                time.time() if epoch is None else epoch.timestamp(), self.schedule.interval_ms
            )
        progress = self.progress
        by_cycle: dict[int, list[int]] = {}
        for row, machine_id in enumerate(self._ids):
            checkpoint = self._checkpoints.get(machine_id)
            if checkpoint is not None:
                by_cycle.setdefault(checkpoint.cycle, []).append(row)
                progress.next_cycle[row] = checkpoint.cycle
        for rows in by_cycle.values():
            index = np.array(rows, dtype=np.int64)
            states = stack_states([self._checkpoints[self._ids[r]] for r in rows])
            try:
                engine.restore_state(index, states)
            except ValueError as exc:
                raise ConfigError(
                    f"state topic checkpoints do not fit this engine ({exc}); use another "
                    "KAFKA_STATE_TOPIC"
                ) from None
        self._checkpoints = {}
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

    def catch_up(self, engine: SimulationEngine, send: SendRows, stop: Stoppable) -> None:
        """Step the machines that are behind (alone) until the shard is on one cycle and no
        skip is left to announce; then ``engine.cycle`` is the shard's next cycle."""
        progress = self.progress
        while not progress.aligned and not stop.is_set():
            cycle = int(progress.next_cycle.min())
            wait = self.schedule.due(cycle) - time.time()
            if self.schedule.interval > 0 and wait > 0 and stop.wait(wait):
                return
            due = np.flatnonzero(progress.next_cycle == cycle)
            ahead = np.flatnonzero(progress.next_cycle != cycle)
            saved = engine.export_state(ahead) if ahead.size else None
            engine.cycle = cycle
            result = engine.step()
            for first, stop_row, skipped in row_runs(due, progress.skipped):
                send(result, first, stop_row, skipped)
            if saved is not None:
                engine.restore_state(ahead, saved)
            progress.next_cycle[due] = cycle + 1
            progress.skipped[due] = 0
        engine.cycle = int(progress.next_cycle.min())

    # -- running -----------------------------------------------------------------------------
    def completed(self, cycle: int, emitted: int) -> None:
        """Rows ``0..emitted-1`` emitted ``cycle``; the rest were stepped but not emitted."""
        progress = self.progress
        progress.next_cycle[:emitted] = cycle + 1
        if emitted < len(progress.next_cycle):
            progress.clean[emitted:] = False

    def maybe_checkpoint(self, engine: SimulationEngine, sink: Sink) -> None:
        if self.store is None or time.monotonic() - self._last_checkpoint < self._interval:
            return
        self.checkpoint(engine, sink, CHECKPOINT_FLUSH_SECONDS)

    def checkpoint(self, engine: SimulationEngine, sink: Sink, flush_seconds: float) -> bool:
        """Write the state of every checkpointable row, once all records sent so far are
        acknowledged (else a crash could leave a checkpoint ahead of the data: a gap)."""
        store = self.store
        if store is None:
            return False
        self._last_checkpoint = time.monotonic()
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
        progress = self.progress
        rows = np.flatnonzero(progress.clean)
        if rows.size == 0:
            return False
        records = encode_machines(
            self._settings.simulation_name,
            [self._ids[r] for r in rows.tolist()],
            progress.next_cycle[rows].tolist(),
            model=self._settings.simulation_model.value,
            fingerprint=self._fingerprint,
            state=engine.export_state(rows),
        )
        store.write(records)
        self.checkpoints.inc()
        return True

    def finish(self, engine: SimulationEngine, sink: Sink, flushed: bool) -> None:
        """At shutdown: the final checkpoint (if everything was delivered), then close."""
        store = self.store
        if store is None:
            return
        try:
            if flushed and self.checkpoint(engine, sink, 1.0):
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


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
