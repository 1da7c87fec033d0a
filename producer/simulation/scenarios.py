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

from domain.machine_ids import machine_id_values
from domain.scenarios import (
    Degradation,
    Failure,
    Quality,
    QualityFault,
    Scenario,
    degradation_health,
)
from producer.simulation.episodes import EpisodeStep, FailureEpisodes
from producer.simulation.quality_faults import RecordFaults, ShardQualityFaults, machine_words
from producer.simulation.randomness import normals, uniforms
from producer.simulation.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

PRECURSOR_REACH: Final = 0.6
"""How far toward the failure type's distribution a degrading machine's readings have moved
when its health reaches 0 (the failure that follows starts from there)."""
PATH_SPREAD: Final = 0.25
"""Machines of one degradation differ: machine ``m`` follows the shape at ``u ** g_m`` with
``log g_m ~ N(0, PATH_SPREAD)`` (still 1 at the start, 0 at the end, monotone)."""


class ScenarioConfigError(ValueError):
    """A scenario that does not fit the simulation (an unknown failure type or sensor)."""


@dataclass(frozen=True, slots=True)
class _Planned:
    """One scenario resolved for this shard."""

    scenario: Scenario
    rows: IntArray
    """The shard rows it targets."""
    start: int | None
    """Its first cycle (None: a start time not yet turned into a cycle)."""
    end: int
    failure_type: int
    """Index of the failure type (failure, degradation), else -1."""
    sensors: BoolArray
    """Quality: which sensors of each targeted row, shape (rows, sensors)."""
    label_base: int
    """Quality: its first label in ``ShardScenarios.quality_labels``."""
    label_rows: IntArray
    """Quality: each targeted row's label."""
    draws: FloatArray
    """Per-row uniforms: [selection, sensor, stuck value, unused]."""
    warp: FloatArray
    """Per-row exponent of the degradation path (``PATH_SPREAD``)."""

    @property
    def steers(self) -> bool:
        """Whether it rewrites the failure episodes (every action but a quality fault)."""
        return not isinstance(self.scenario.action, Quality)


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
    records: RecordFaults | None = None
    """Faults of whole records (late, out of order, duplicate), carried out where they are
    sent; None: none this cycle."""


class ShardScenarios:
    """A scenario list applied to shard rows ``0..count-1`` (machines ``first..``)."""

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
        self.quality_labels: tuple[str, ...] = ()
        labels: list[str] = []
        ids = machine_id_values(simulation_name, range(first_machine, first_machine + count))
        planned = []
        for scenario in self.scenarios:
            key = scenario.key()
            words = machine_words(seed, simulation_name, key, (first_machine, count))
            draws = uniforms(words)
            rows = _target_rows(scenario, first_machine, count, ids, draws[:, 0])
            warp = np.exp(PATH_SPREAD * normals(words[rows, 3]))
            planned.append(self._plan(scenario, rows, draws[rows], warp, labels))
        self.quality_labels = tuple(labels)
        self._planned = planned
        self._quality = ShardQualityFaults(
            profile, seed=seed, name=simulation_name, first=first_machine, count=count
        )

    def _plan(
        self,
        scenario: Scenario,
        rows: IntArray,
        draws: FloatArray,
        warp: FloatArray,
        labels: list[str],
    ) -> _Planned:
        profile = self._profile
        action = scenario.action
        failure_type = -1
        sensors = np.zeros((rows.size, profile.num_sensors), dtype=np.bool_)
        label_rows = np.full(rows.size, -1, dtype=np.int64)
        base = len(labels)
        if isinstance(action, Failure | Degradation):
            if action.type not in profile.failure_types:
                raise ScenarioConfigError(
                    f"scenario {scenario.label()!r}: failure type {action.type!r} is not one of "
                    f"the reference data's types {list(profile.failure_types)}"
                )
            failure_type = profile.failure_types.index(action.type)
        if isinstance(action, Quality):
            names = profile.sensor_names
            if action.of_records:
                labels.append(action.label(()))
                label_rows[:] = base
            elif action.sensors is not None:
                unknown = [s for s in action.sensors if s not in names]
                if unknown:
                    raise ScenarioConfigError(
                        f"scenario {scenario.label()!r}: sensors {unknown} are not among "
                        f"{list(names)}"
                    )
                sensors[:, [names.index(s) for s in action.sensors]] = True
                labels.append(action.label(action.sensors))
                label_rows[:] = base
            else:
                chosen = np.minimum((draws[:, 1] * len(names)).astype(np.int64), len(names) - 1)
                sensors[np.arange(rows.size), chosen] = True
                labels.extend(action.label((name,)) for name in names)
                label_rows = base + chosen
        start = scenario.start_cycle
        end = (start if start is not None else 0) + scenario.cycles
        return _Planned(
            scenario, rows, start, end, failure_type, sensors, base, label_rows, draws, warp
        )

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

    def active(self, cycle: int) -> list[_Planned]:
        """The scenarios whose window holds ``cycle`` and that target machines of this shard."""
        return [
            p
            for p in self._planned
            if p.start is not None and p.start <= cycle < p.end and p.rows.size
        ]

    # -- before the episodes advance ---------------------------------------------------------
    @staticmethod
    def steer_episodes(
        active: Sequence[_Planned], cycle: int, episodes: FailureEpisodes
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
    def drive(active: Sequence[_Planned], cycle: int, step: EpisodeStep) -> EpisodeStep:
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
        self, active: Sequence[_Planned], cycle: int, readings: FloatArray
    ) -> tuple[FloatArray, ScenarioLabels]:
        """Apply this cycle's quality faults to ``readings`` (a copy when any applies) and say
        what the records carry."""
        count = self.count
        health = np.full(count, np.nan)
        rul = np.full(count, -1, dtype=np.int64)
        for planned in active:
            action = planned.scenario.action
            if not isinstance(action, Degradation):
                continue
            assert planned.start is not None
            elapsed = cycle - planned.start
            if elapsed < action.cycles:
                health[planned.rows] = _health(action, planned.warp, elapsed)
                rul[planned.rows] = action.cycles - elapsed
            else:
                health[planned.rows] = 0.0
                rul[planned.rows] = 0
        faults = [p for p in active if isinstance(p.scenario.action, Quality)]
        if not faults:
            quality = np.full(count, -1, dtype=np.int64)
            return readings, ScenarioLabels(health, rul, quality, None, self.quality_labels)
        outcome = self._quality.apply(faults, cycle, readings, self._quality_active)
        labels = ScenarioLabels(
            health, rul, outcome.quality, outcome.nulls, self.quality_labels, outcome.records
        )
        return outcome.readings, labels

    def _quality_active(self, cycle: int) -> list[_Planned]:
        return [p for p in self.active(cycle) if isinstance(p.scenario.action, Quality)]


def _health(action: Degradation, warp: FloatArray, elapsed: int) -> FloatArray:
    """The health of a degradation's machines after ``elapsed`` of its ``cycles``."""
    progress = (elapsed / action.cycles) ** warp
    health: FloatArray = degradation_health(action.shape, action.knee, progress)
    return health


def _target_rows(
    scenario: Scenario,
    first: int,
    count: int,
    ids: npt.NDArray[np.uint64],
    selection: FloatArray,
) -> IntArray:
    target = scenario.target
    if target.all:
        return np.arange(count, dtype=np.int64)
    if target.fraction is not None:
        return np.flatnonzero(selection < target.fraction).astype(np.int64)
    if target.machines is not None:
        wanted = np.array(target.machines, dtype=np.int64)
        return np.unique(wanted[(wanted >= first) & (wanted < first + count)] - first)
    assert target.machine_ids is not None
    values = np.array([int(m, 16) for m in target.machine_ids], dtype=np.uint64)
    return np.flatnonzero(np.isin(ids, values)).astype(np.int64)


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
