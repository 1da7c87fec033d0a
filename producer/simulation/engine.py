"""The simulation engine: every machine of a shard, every sensor, one numpy step per cycle.

A step draws all of the cycle's random numbers for the shard at once
(``randomness.CounterStream``), so a machine's readings depend only on (seed, simulation name,
machine index, cycle) and never on which shard runs it. Failure episodes follow
``episodes`` for both models; the readings come from one of two sensor processes:

``learned`` (``learned_process``, ``learned_model``): a latent VAR(1) vector per machine
(``dynamics``), read through each sensor's quantile function, with operating regimes and machine
offsets when the reference shows them (``regime_process``); failing machines blend toward their
type's distribution.

``original`` (the documented behaviour of the seed system, vectorised):

1. walk: ``v += N(0, 0.1*std)``; ``v += 0.05*(mean - v)``; clip to the bounds;
2. on the k-th failing reading ``progress = min(1, k/ramp)`` and the reading is
   ``v*(1-progress) + N(sig_mean, sig_std)*progress`` (the walk itself is untouched);
3. failing readings are clipped to the reading bounds (the bounds rule applied to all rows,
   labelled ones included, so signatures outside the normal range stay visible).

All readings are rounded to 6 decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.scenarios import Scenario
from domain.simulation_model import (
    DRIFT_FACTOR,
    MEAN_REVERSION,
    MICROS,
    FailureModel,
    SimulationModel,
)
from producer.simulation.cycle_result import CycleResult
from producer.simulation.dynamics import latent_dynamics
from producer.simulation.episodes import EXTRA_WORDS, EpisodeStep, FailureEpisodes
from producer.simulation.learned_model import LearnedModel, fit_learned_model
from producer.simulation.learned_process import LearnedProcess
from producer.simulation.randomness import (
    DOMAIN_INITIAL,
    CounterStream,
    normals,
    uniforms,
    words_per_machine,
)
from producer.simulation.reference_data import ReferenceProfile
from producer.simulation.regime_process import RegimeProcess, learned_process
from producer.simulation.scenarios import ShardScenarios

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

__all__ = ["CycleResult", "LearnedProcess", "OriginalWalk", "SimulationEngine", "to_micros"]


def to_micros(values: FloatArray) -> IntArray:
    scaled = values * MICROS
    np.rint(scaled, out=scaled)
    micros: IntArray = scaled.astype(np.int64)
    return micros


class SensorProcess(Protocol):
    """The readings of a shard's machines, one cycle at a time."""

    normal_words: int
    """Words per machine and cycle consumed before the episodes' uniforms."""

    def readings(self, words: UInt64Array, episodes: EpisodeStep) -> FloatArray:
        """Advance the state with this cycle's ``words`` and return the readings, shape
        (machines, sensors), before rounding."""
        ...

    def start(self, initial: UInt64Array) -> FloatArray:
        """The starting state of machines drawn from ``initial`` words, shape (machines,
        sensors) as ``export_state`` gives it."""
        ...

    @property
    def max_abs_reading(self) -> float:
        """No reading is ever larger in magnitude."""
        ...

    def export_state(self, rows: IntArray) -> FloatArray:
        """A copy of the state of shard rows ``rows``, shape (len(rows), sensors)."""
        ...

    def restore_state(self, rows: IntArray, state: FloatArray) -> None:
        """Overwrite the state of shard rows ``rows`` (as ``export_state`` returned it)."""
        ...


class OriginalWalk:
    """The seed system's mean-reverting walk and independent failure draws."""

    def __init__(self, profile: ReferenceProfile, initial: UInt64Array) -> None:
        sensors = profile.num_sensors
        self.normal_words = 2 * sensors
        self._profile = profile
        self._sensors = sensors
        self._mean = profile.mean
        self._step_std = DRIFT_FACTOR * profile.std
        self._walk: FloatArray = self.start(initial)

    def start(self, initial: UInt64Array) -> FloatArray:
        """The starting state of machines drawn from ``initial`` words: somewhere plausible,
        within about one std of the mean. Shape (machines, sensors)."""
        profile = self._profile
        walk = self._mean + profile.std * np.clip(normals(initial[:, : self._sensors]), -1.0, 1.0)
        started: FloatArray = np.clip(walk, profile.lower, profile.upper)
        return started

    @property
    def max_abs_reading(self) -> float:
        p = self._profile
        return float(np.max(np.abs(np.concatenate([p.reading_lower, p.reading_upper]))))

    def export_state(self, rows: IntArray) -> FloatArray:
        return self._walk[rows].copy()

    def restore_state(self, rows: IntArray, state: FloatArray) -> None:
        # a copy: a CycleResult may share the array (readings of a cycle without failures)
        walk = self._walk.copy()
        walk[rows] = state
        self._walk = walk

    def readings(self, words: UInt64Array, episodes: EpisodeStep) -> FloatArray:
        s = self._sensors
        profile = self._profile
        walk = self._walk
        walk += normals(words[:, :s]) * self._step_std
        walk += MEAN_REVERSION * (self._mean - walk)
        np.clip(walk, profile.lower, profile.upper, out=walk)
        if not episodes.failing.any():
            return walk
        ftype = episodes.failure_type
        pattern = profile.signature_mean[ftype]
        pattern += profile.signature_std[ftype] * normals(words[:, s : 2 * s])
        blended: FloatArray = walk + episodes.progress[:, None] * (pattern - walk)
        np.clip(blended, profile.reading_lower, profile.reading_upper, out=blended)
        return blended


class SimulationEngine:
    """Simulates machines ``first_machine .. first_machine + count - 1``."""

    def __init__(
        self,
        profile: ReferenceProfile,
        failures: FailureModel,
        *,
        first_machine: int,
        count: int,
        seed: int,
        simulation_name: str,
        model: SimulationModel,
        persistence: float | None = None,
        learned: LearnedModel | None = None,
        interval_ms: int | None = None,
        scenarios: Sequence[Scenario] = (),
        regimes: int | None = None,
    ) -> None:
        """``learned``: a model already fitted to ``profile`` (fitted here when omitted);
        ``persistence``: the learned model's scalar persistence, None to learn the dynamics
        from the reference's time series (``DEFAULT_PERSISTENCE`` without one);
        ``interval_ms``: the cycle's length, which learned dynamics scale to (None: the
        reference's own step); ``scenarios``: timed actions applied on top of the random
        process; ``regimes``: operating regimes (``regime_process``; None: as many as the
        reference shows, 1: none)."""
        if count < 1:
            raise ValueError("a shard simulates at least one machine")
        self.profile = profile
        self.failures = failures
        self.model = SimulationModel(model)
        self.first_machine = first_machine
        self.count = count
        self.cycle = 0
        sensors = profile.num_sensors
        learned_model = self.model is SimulationModel.LEARNED
        normal_words = sensors if learned_model else 2 * sensors
        self._stream = CounterStream(
            seed, simulation_name, words_per_machine(normal_words + EXTRA_WORDS)
        )
        initial = self._stream.words(0, first_machine, count, domain=DOMAIN_INITIAL)
        self.process: SensorProcess
        self.regimes: RegimeProcess | None = None
        """The process again when it has operating regimes (their state and draws)."""
        self.learned_model: LearnedModel | None = None
        """The fitted learned model (None for the original one), for engines of the same
        reference data to share."""
        if learned_model:
            fitted = learned or fit_learned_model(profile.normal_values, profile.failure_values)
            dynamics = latent_dynamics(
                fitted,
                persistence=persistence,
                interval_ms=interval_ms,
                values=profile.normal_values,
                series=profile.series,
                normal=profile.normal_mask,
            )
            self.process = learned_process(
                profile,
                fitted,
                dynamics,
                initial,
                stream=self._stream,
                first_machine=first_machine,
                regimes=regimes,
                persistence=persistence,
                interval_ms=interval_ms,
            )
            if hasattr(self.process, "extra_state"):
                self.regimes = self.process  # type: ignore[assignment]
            self.learned_model = fitted
        else:
            self.process = OriginalWalk(profile, initial)
        self.episodes = FailureEpisodes(
            failures, len(profile.failure_types), count, ramp_out=learned_model
        )
        self.scenarios: ShardScenarios | None = None
        if scenarios:
            self.scenarios = ShardScenarios(
                scenarios,
                profile,
                seed=seed,
                simulation_name=simulation_name,
                first_machine=first_machine,
                count=count,
            )

    @property
    def failures_enabled(self) -> bool:
        return self.episodes.enabled

    @property
    def max_abs_reading(self) -> float:
        widened = self.scenarios.widens_readings if self.scenarios is not None else 0.0
        return self.process.max_abs_reading + widened

    # -- continuity: the per-machine state, for checkpoints (producer.continuity) --
    @property
    def state_names(self) -> tuple[str, ...]:
        """The names ``export_state`` returns: the sensor process's state, then the episodes'."""
        process = "latent" if self.model is SimulationModel.LEARNED else "walk"
        extra = self.regimes.extra_state if self.regimes is not None else ()
        return (process, *extra, *FailureEpisodes.STATE)

    def export_state(self, rows: IntArray) -> dict[str, npt.NDArray[np.generic]]:
        """Copies of the state of shard rows ``rows``: name -> array, first axis the machine."""
        state: dict[str, npt.NDArray[np.generic]] = {
            self.state_names[0]: self.process.export_state(rows)
        }
        if self.regimes is not None:
            state.update(self.regimes.export_extra(rows))
        state.update(self.episodes.export_state(rows))
        return state

    def fresh_state(self, rows: IntArray, cycle: int) -> npt.NDArray[np.float64]:
        """A starting sensor state for shard rows ``rows`` drawn for ``cycle`` (cycle 0: the
        state the engine starts with): a machine whose state no longer means anything (another
        model or reference data) starts again from it."""
        initial = self._stream.words(cycle, self.first_machine, self.count, domain=DOMAIN_INITIAL)
        return self.process.start(np.ascontiguousarray(initial[rows]))

    def restore_state(self, rows: IntArray, state: dict[str, npt.NDArray[np.generic]]) -> None:
        """Overwrite the state of shard rows ``rows`` with ``state`` (as ``export_state``
        returned it)."""
        # a checkpoint of a release without regimes has no regime state
        optional = set(self.regimes.extra_state if self.regimes is not None else ())
        if set(state) | optional != set(self.state_names):
            raise ValueError(f"state names {sorted(state)} are not {sorted(self.state_names)}")
        process = state[self.state_names[0]]
        if process.shape != (len(rows), self.profile.num_sensors):
            raise ValueError(f"state has shape {process.shape} for {len(rows)} rows")
        self.process.restore_state(rows, process.astype(np.float64))
        if self.regimes is not None:
            self.regimes.restore_extra(rows, state)
        self.episodes.restore_state(rows, state)

    def step(self) -> CycleResult:
        """Advance every machine by one cycle and return the readings."""
        words = self._stream.words(self.cycle, self.first_machine, self.count)
        active = self.scenarios.active(self.cycle) if self.scenarios is not None else []
        steered = None
        steering = self.episodes.types > 0 and any(p.steers for p in active)
        if self.episodes.enabled or steering:
            first = self.process.normal_words
            draws = uniforms(words[:, first : first + EXTRA_WORDS])
            if steering:
                steered = ShardScenarios.steer_episodes(active, self.cycle, self.episodes)
            episodes = self.episodes.advance(draws)
        else:
            episodes = FailureEpisodes.healthy(self.count)
        drive = ShardScenarios.drive(active, self.cycle, episodes) if active else episodes
        if self.regimes is not None:
            self.regimes.move_regimes(self.cycle)
        readings = self.process.readings(words, drive)
        labels = None
        if active:
            assert self.scenarios is not None
            readings, labels = self.scenarios.labels(active, self.cycle, readings)
        result = CycleResult(
            cycle=self.cycle,
            micros=to_micros(readings),
            failing=episodes.failing,
            failure_type=episodes.failure_type,
            progress=episodes.progress,
            episode_cycle=episodes.episode_cycle,
            started=episodes.started if steered is None else episodes.started | steered,
            labels=labels,
        )
        self.cycle += 1
        return result
