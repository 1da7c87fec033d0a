"""Scenarios applied to a shard's machines, cycle by cycle (``domain.scenarios`` defines them).

Every effect is a function of (seed, simulation name, machine index, cycle, scenario list) and
of nothing a process keeps on its own, so a machine's records are the same in any shard layout
and through restarts:

* which machines a ``fraction`` selects, which sensor a fault touches when none is named, the
  value a stuck sensor repeats and a degrading machine's path are drawn from counter-based
  words addressed by (scenario key, machine), not by position in any list;
* a failure or no-failure window rewrites the failure episodes' state at every cycle of the
  window (not only at its start), so a machine restored or started in the middle of a window
  is in the same state as one that ran through it, and a window whose start lies before the
  machine's first cycle under this list applies from that cycle on;
* degradation and quality faults change only what a cycle emits, never the checkpointed state.

Between windows nothing here runs: ``ShardScenarios.active`` is one comparison per scenario.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from domain.scenarios import (
    Degradation,
    Failure,
    Quality,
    QualityFault,
    Scenario,
    degradation_health,
)
from producer.simulation.episodes import EpisodeStep, FailureEpisodes
from producer.simulation.randomness import uniforms
from producer.simulation.reference_data import ReferenceProfile
from producer.simulation.scenario_plans import (
    DOMAIN_SCENARIO_CYCLE,
    PlannedScenario,
    machine_words,
    plan_scenarios,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

PRECURSOR_REACH: Final = 0.6
"""How far toward the failure type's distribution a degrading machine's readings have moved
when its health reaches 0 (the failure that follows starts from there)."""


@dataclass(frozen=True, slots=True)
class ScenarioLabels:
    """What a cycle's records say about scenarios, by shard row."""

    health: FloatArray
    """Health index, NaN where no degradation concerns the machine."""
    rul_cycles: IntArray
    """Cycles to the failure, -1 where unknown."""
    quality: IntArray
    """Index into ``quality_labels``, -1 where no fault."""
    nulls: BoolArray | None
    """Readings replaced by null (dropout), shape (machines, sensors)."""
    quality_labels: tuple[str, ...]
    """What ``quality`` indexes."""


class ShardScenarios:
    """A scenario list applied to shard rows ``0..count-1`` (machines ``first..``), planned
    by ``scenario_plans``; ``ScenarioConfigError`` if a scenario does not fit ``profile``."""

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        profile: ReferenceProfile,
        *,
        seed: int,
        simulation_name: str,
        first_machine: int,
        count: int,
    ) -> None:
        self.scenarios = tuple(scenarios)
        self.count = count
        self._profile = profile
        self._planned, self.quality_labels = plan_scenarios(
            self.scenarios,
            profile,
            seed=seed,
            simulation_name=simulation_name,
            first_machine=first_machine,
            count=count,
        )
        self._seed = seed
        self._name = simulation_name
        self._first = first_machine

    def resolve_times(self, cycle_at: Callable[[datetime], int]) -> None:
        """Turn each ``startTime`` into a cycle with the simulation's schedule (the first cycle
        due at or after it)."""
        for i, planned in enumerate(self._planned):
            moment = planned.scenario.start_time
            if moment is not None:
                start = cycle_at(moment)
                self._planned[i] = replace(
                    planned, start=start, end=start + planned.scenario.cycles
                )

    @property
    def widens_readings(self) -> float:
        """How far beyond the process's readings a fault may move a reading (magnitude)."""
        widest = 0.0
        spread = float(np.max(self._profile.std)) if self._profile.num_sensors else 0.0
        for scenario in self.scenarios:
            action = scenario.action
            if isinstance(action, Quality) and action.fault in (QualityFault.SPIKE,
                                                                QualityFault.DRIFT):  # fmt: skip
                widest = max(widest, action.magnitude * spread)
        return widest

    @property
    def affects_episodes(self) -> bool:
        return any(not isinstance(s.action, Quality) for s in self.scenarios)

    def active(self, cycle: int) -> list[PlannedScenario]:
        """The scenarios whose window holds ``cycle`` and that target machines of this shard."""
        return [
            p
            for p in self._planned
            if p.start is not None and p.start <= cycle < p.end and p.rows.size
        ]

    # -- before the episodes advance ---------------------------------------------------------
    @staticmethod
    def steer_episodes(
        active: Sequence[PlannedScenario], cycle: int, episodes: FailureEpisodes
    ) -> BoolArray | None:
        """Rewrite the episode state of machines in a failure or no-failure window so that
        ``advance`` gives this cycle's reading of the window; returns the rows whose forced
        episode starts at this cycle (None: no window)."""
        steering = [p for p in active if p.steers]
        if not steering:
            return None
        # copies: a CycleResult may share the arrays (``was_failing`` is a step's ``failing``)
        for name in FailureEpisodes.STATE:
            setattr(episodes, name, getattr(episodes, name).copy())
        started = np.zeros(episodes.remaining.size, dtype=np.bool_)
        for planned in steering:
            action = planned.scenario.action
            assert planned.start is not None
            elapsed = cycle - planned.start
            rows = planned.rows
            if isinstance(action, Degradation):
                if elapsed < action.cycles:
                    continue  # degrading: the failure comes at the end
                elapsed -= action.cycles
                length = action.failure_cycles
            elif isinstance(action, Failure):
                length = action.cycles
            else:
                episodes.remaining[rows] = 0
                episodes.was_failing[rows] = True  # no start this cycle
                started[rows] = False
                continue
            episodes.remaining[rows] = length - elapsed
            episodes.episode_cycle[rows] = elapsed
            episodes.failure_type[rows] = planned.failure_type
            episodes.was_failing[rows] = True  # the random process starts nothing over it
            started[rows] = elapsed == 0
        return started

    # -- what the sensor process is driven with ----------------------------------------------
    @staticmethod
    def drive(active: Sequence[PlannedScenario], cycle: int, step: EpisodeStep) -> EpisodeStep:
        """The episode step the readings follow: degrading machines move toward their type's
        distribution (without being labelled failing), and the failure ending a degradation
        starts from where the degradation left them."""
        degrading = [p for p in active if isinstance(p.scenario.action, Degradation)]
        if not degrading:
            return step
        failing = step.failing.copy()
        failure_type = step.failure_type.copy()
        progress = step.progress.copy()
        for planned in degrading:
            action = planned.scenario.action
            assert isinstance(action, Degradation)
            assert planned.start is not None
            elapsed = cycle - planned.start
            rows = planned.rows
            if elapsed < action.cycles:
                health = _health(action, planned.warp, elapsed)
                failing[rows] = True
                failure_type[rows] = planned.failure_type
                progress[rows] = PRECURSOR_REACH * (1.0 - health)
            else:
                progress[rows] = np.maximum(progress[rows], PRECURSOR_REACH)
        return replace(step, failing=failing, failure_type=failure_type, progress=progress)

    # -- after the readings ------------------------------------------------------------------
    def labels(
        self, active: Sequence[PlannedScenario], cycle: int, readings: FloatArray
    ) -> tuple[FloatArray, ScenarioLabels]:
        """Apply this cycle's quality faults to ``readings`` (a copy when any applies) and say
        what the records carry."""
        count = self.count
        health = np.full(count, np.nan)
        rul = np.full(count, -1, dtype=np.int64)
        quality = np.full(count, -1, dtype=np.int64)
        nulls: BoolArray | None = None
        copied = False
        for planned in active:
            action = planned.scenario.action
            assert planned.start is not None
            elapsed = cycle - planned.start
            rows = planned.rows
            if isinstance(action, Degradation):
                if elapsed < action.cycles:
                    health[rows] = _health(action, planned.warp, elapsed)
                    rul[rows] = action.cycles - elapsed
                else:
                    health[rows] = 0.0
                    rul[rows] = 0
            elif isinstance(action, Quality):
                if not copied:
                    readings = readings.copy()
                    copied = True
                if action.fault is QualityFault.DROPOUT and nulls is None:
                    nulls = np.zeros(readings.shape, dtype=np.bool_)
                self._fault(planned, action, cycle, readings, nulls)
                quality[rows] = planned.label_rows
        return readings, ScenarioLabels(health, rul, quality, nulls, self.quality_labels)

    def _fault(
        self,
        planned: PlannedScenario,
        action: Quality,
        cycle: int,
        readings: FloatArray,
        nulls: BoolArray | None,
    ) -> None:
        assert planned.start is not None
        elapsed = cycle - planned.start
        rows, sensors = planned.rows, planned.sensors
        block = readings[rows]
        std = np.broadcast_to(self._profile.std, block.shape)
        if action.fault is QualityFault.STUCK:
            reference = self._profile.normal_values
            picked = np.minimum(
                (planned.draws[:, 2] * reference.shape[0]).astype(np.int64), reference.shape[0] - 1
            )
            block = np.where(sensors, reference[picked], block)
        elif action.fault is QualityFault.DROPOUT:
            assert nulls is not None
            block = np.where(sensors, 0.0, block)
            held = nulls[rows]
            held |= sensors
            nulls[rows] = held
        elif action.fault is QualityFault.SPIKE:
            words = machine_words(
                self._seed,
                self._name,
                planned.scenario.key(),
                (self._first, self.count),
                cycle=cycle,
                domain=DOMAIN_SCENARIO_CYCLE,
            )
            sign = np.where(uniforms(words[rows, :1]) < 0.5, -1.0, 1.0)
            block = block + np.where(sensors, sign * action.magnitude * std, 0.0)
        else:
            offset = action.magnitude * (elapsed + 1) / action.cycles
            block = block + np.where(sensors, offset * std, 0.0)
        readings[rows] = block


def _health(action: Degradation, warp: FloatArray, elapsed: int) -> FloatArray:
    """The health of a degradation's machines after ``elapsed`` of its ``cycles``."""
    progress = (elapsed / action.cycles) ** warp
    health: FloatArray = degradation_health(action.shape, action.knee, progress)
    return health


def record_headers(
    labels: ScenarioLabels, start: int, stop: int
) -> list[list[tuple[str, bytes]]] | None:
    """The scenario headers of rows ``start..stop-1`` (None when none has any): ``health``
    and ``rul_cycles`` as the extended body writes them, ``quality`` its label."""
    rows = np.flatnonzero(~np.isnan(labels.health[start:stop]) | (labels.quality[start:stop] >= 0))
    if rows.size == 0:
        return None
    headers: list[list[tuple[str, bytes]]] = [[] for _ in range(stop - start)]
    for row in rows.tolist():
        health = float(labels.health[start + row])
        extra = headers[row]
        if not np.isnan(health):
            text = f"{health:.6f}".rstrip("0")
            extra.append(("health", (text + "0" if text.endswith(".") else text).encode()))
            extra.append(("rul_cycles", str(int(labels.rul_cycles[start + row])).encode()))
        quality = int(labels.quality[start + row])
        if quality >= 0:
            extra.append(("quality", labels.quality_labels[quality].encode()))
    return headers
