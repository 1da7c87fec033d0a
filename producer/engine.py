"""The simulation engine: every machine of a shard, every sensor, one numpy step per cycle.

State per machine: the underlying value of each sensor (a mean-reverting random walk) and the
failure episode, if any (cycles left, cycles elapsed, type). A step draws all of the cycle's
random numbers for the shard at once (``randomness.CounterStream``), so a machine's readings
depend only on (seed, simulation name, machine index, cycle) and never on which shard runs it.

Order of a step, per machine (the documented behaviour of the original, vectorised):

1. walk: ``v += N(0, 0.1*std)``; ``v += 0.05*(mean - v)``; clip to the bounds;
2. a machine whose previous reading was healthy starts an episode with probability ``p``;
   the episode gets a type (uniform over the learned types) and a length in [min, max];
3. on the k-th failing reading ``progress = min(1, k/ramp)`` and the reading is
   ``v*(1-progress) + N(sig_mean, sig_std)*progress`` (the walk itself is untouched);
4. failing readings are clipped to the reading bounds (the bounds rule applied to all rows,
   labelled ones included, so signatures outside the normal range stay visible), and all
   readings are rounded to 6 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from domain.simulation_model import DECIMALS, DRIFT_FACTOR, MEAN_REVERSION, FailureModel
from producer.randomness import DOMAIN_INITIAL, CounterStream, normals, uniforms, words_per_machine
from producer.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_EXTRA_WORDS = 3  # start, type, duration
_SCALE = 10**DECIMALS


def _micros(values: FloatArray) -> IntArray:
    scaled = values * _SCALE
    np.rint(scaled, out=scaled)
    micros: IntArray = scaled.astype(np.int64)
    return micros


@dataclass(frozen=True, eq=False)
class CycleResult:
    """One cycle of one shard; row ``i`` is machine ``first_machine + i``."""

    cycle: int
    micros: IntArray
    """Readings in millionths (rounded), shape (machines, sensors)."""
    failing: BoolArray
    failure_type: IntArray
    """Index into ``ReferenceProfile.failure_types``; meaningful where ``failing``."""
    progress: FloatArray
    episode_cycle: IntArray
    """1-based cycle within the episode; 0 where healthy."""
    started: BoolArray
    """An episode started at this cycle."""

    @property
    def values(self) -> FloatArray:
        """Readings rounded to 6 decimals, shape (machines, sensors)."""
        values: FloatArray = self.micros / _SCALE
        return values


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
    ) -> None:
        if count < 1:
            raise ValueError("a shard simulates at least one machine")
        self.profile = profile
        self.failures = failures
        self.first_machine = first_machine
        self.count = count
        self.cycle = 0
        sensors = profile.num_sensors
        self._sensors = sensors
        self._stream = CounterStream(
            seed, simulation_name, words_per_machine(sensors, _EXTRA_WORDS)
        )
        self._mean = profile.mean
        self._step_std = DRIFT_FACTOR * profile.std
        self._lower = profile.lower
        self._upper = profile.upper
        self._types = len(profile.failure_types)
        self._enabled = self._types > 0 and failures.probability > 0

        initial = self._stream.words(0, first_machine, count, domain=DOMAIN_INITIAL)
        # Start each machine somewhere plausible: within about one std of the mean.
        walk = self._mean + profile.std * np.clip(normals(initial[:, :sensors]), -1.0, 1.0)
        self._walk: FloatArray = np.clip(walk, self._lower, self._upper)
        self._remaining = np.zeros(count, dtype=np.int64)
        self._episode_cycle = np.zeros(count, dtype=np.int64)
        self._type = np.zeros(count, dtype=np.int64)
        self._was_failing = np.zeros(count, dtype=np.bool_)

    @property
    def failures_enabled(self) -> bool:
        return self._enabled

    # -- continuity: the per-machine state, for checkpoints (producer/continuity.py) ----------
    _STATE: ClassVar[dict[str, str]] = {
        "walk": "_walk",
        "remaining": "_remaining",
        "episode_cycle": "_episode_cycle",
        "type": "_type",
        "was_failing": "_was_failing",
    }
    """State name -> attribute; each array's first axis is the machine (row of the shard)."""

    def export_state(self, rows: IntArray) -> dict[str, npt.NDArray[np.generic]]:
        """Copies of the state of shard rows ``rows``: name -> array, first axis the machine."""
        return {name: getattr(self, attr)[rows].copy() for name, attr in self._STATE.items()}

    def restore_state(self, rows: IntArray, state: dict[str, npt.NDArray[np.generic]]) -> None:
        """Overwrite the state of shard rows ``rows`` with ``state`` (as ``export_state``
        returned it). Copies first, so arrays a ``CycleResult`` shares stay as they were."""
        if set(state) != set(self._STATE):
            raise ValueError(f"state names {sorted(state)} are not {sorted(self._STATE)}")
        for name, attr in self._STATE.items():
            current = getattr(self, attr)
            value = state[name]
            if value.shape != (len(rows), *current.shape[1:]):
                raise ValueError(f"state {name!r} has shape {value.shape} for {len(rows)} rows")
            updated = current.copy()
            updated[rows] = value
            setattr(self, attr, updated)

    def step(self) -> CycleResult:
        """Advance every machine by one cycle and return the readings."""
        s = self._sensors
        words = self._stream.words(self.cycle, self.first_machine, self.count)
        walk = self._walk
        walk += normals(words[:, :s]) * self._step_std
        walk += MEAN_REVERSION * (self._mean - walk)
        np.clip(walk, self._lower, self._upper, out=walk)

        if not self._enabled:
            values = _micros(walk)
            none = np.zeros(self.count, dtype=np.bool_)
            zeros = np.zeros(self.count, dtype=np.int64)
            result = CycleResult(self.cycle, values, none, zeros, np.zeros(self.count), zeros, none)
            self.cycle += 1
            return result

        fm = self.failures
        extra = uniforms(words[:, 2 * s : 2 * s + _EXTRA_WORDS])
        started = ~self._was_failing & (extra[:, 0] < fm.probability)
        if started.any():
            new_type = np.minimum((extra[:, 1] * self._types).astype(np.int64), self._types - 1)
            span = fm.max_cycles - fm.min_cycles + 1
            new_length = fm.min_cycles + np.minimum((extra[:, 2] * span).astype(np.int64), span - 1)
            self._type = np.where(started, new_type, self._type)
            self._remaining = np.where(started, new_length, self._remaining)
            self._episode_cycle = np.where(started, 0, self._episode_cycle)
        failing = self._remaining > 0
        self._episode_cycle = np.where(failing, self._episode_cycle + 1, 0)
        if fm.ramp_cycles == 0:
            progress = failing.astype(np.float64)
        else:
            progress = np.minimum(1.0, self._episode_cycle / fm.ramp_cycles)

        if failing.any():
            profile = self.profile
            ftype = self._type
            pattern = profile.signature_mean[ftype]
            pattern += profile.signature_std[ftype] * normals(words[:, s : 2 * s])
            blended = walk + progress[:, None] * (pattern - walk)
            np.clip(blended, profile.reading_lower, profile.reading_upper, out=blended)
            values = _micros(blended)
        else:
            values = _micros(walk)

        result = CycleResult(
            cycle=self.cycle,
            micros=values,
            failing=failing,
            failure_type=self._type.copy(),
            progress=progress,
            episode_cycle=self._episode_cycle.copy(),
            started=started,
        )
        self._remaining = np.where(failing, self._remaining - 1, 0)
        self._was_failing = failing
        self.cycle += 1
        return result
