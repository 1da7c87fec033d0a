"""Catch-up: bring a shard's restored machines onto one cycle (see docs/continuity.md,
"Restore and catch-up").

Restored machines may be behind the schedule (downtime) and behind one another (re-sharding
from shards that stopped at different cycles). The lagging machines are stepped alone (the
others' state is set back after each step) until every machine of the shard is on the same
cycle; the cycles missed while no process ran are emitted as fast as the sink takes them, with
their scheduled timestamps. At most CATCH_UP_MAX_CYCLES are re-emitted; a machine further
behind skips ahead, which is marked on its next record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from producer.continuity.schedule import Schedule
from producer.simulation.engine import CycleResult, SimulationEngine

IntArray = npt.NDArray[np.int64]
SendRows = Callable[[CycleResult, int, int, int], None]
"""``send(result, first_row, stop_row, skipped)``: emit rows ``first_row..stop_row-1``."""


class Stoppable(Protocol):
    """What catch-up needs of the stop flag (``producer.runtime.stopping.StopFlag``, an Event)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class Progress:
    """Per shard row: the cycle it emits next, cycles skipped before that record, and whether
    the engine's state of the row is the state before ``next_cycle`` (so checkpointable)."""

    next_cycle: IntArray
    skipped: IntArray
    clean: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.clean = np.ones(len(self.next_cycle), dtype=np.bool_)

    @classmethod
    def fresh(cls, rows: int) -> Progress:
        """Every row at cycle 0, nothing skipped."""
        return cls(np.zeros(rows, np.int64), np.zeros(rows, np.int64))

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


def catch_up(
    progress: Progress,
    schedule: Schedule,
    engine: SimulationEngine,
    send: SendRows,
    stop: Stoppable,
) -> None:
    """Step the machines that are behind (alone) until the shard is on one cycle and no skip
    is left to announce; then ``engine.cycle`` is the shard's next cycle."""
    while not progress.aligned and not stop.is_set():
        cycle = int(progress.next_cycle.min())
        wait = schedule.due(cycle) - time.time()
        if schedule.interval > 0 and wait > 0 and stop.wait(wait):
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
