"""Failure episodes of a shard's machines: when they start, which type, how long, how far.

The same process for both simulation models: a machine whose previous reading was healthy
starts an episode with probability ``p``; the episode gets a type (uniform over the learned
types) and a length in ``[min_cycles, max_cycles]``. The models differ only in the progress
curve: ``original`` ramps in over ``ramp_cycles`` and ends at full strength, ``learned`` also
ramps out over the last ``ramp_cycles`` of the episode, so readings return to normal smoothly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.simulation_model import FailureModel

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

EXTRA_WORDS = 3
"""Uniform draws per machine and cycle: start, type, length."""


@dataclass(frozen=True, slots=True)
class EpisodeStep:
    """The episodes' state for one cycle; arrays are indexed by machine."""

    failing: BoolArray
    started: BoolArray
    failure_type: IntArray
    episode_cycle: IntArray
    """1-based cycle within the episode; 0 where healthy."""
    progress: FloatArray
    """Weight of the failure in the reading, 0..1."""


class FailureEpisodes:
    """Vectorised episode state of ``count`` machines."""

    STATE = ("remaining", "episode_cycle", "failure_type", "was_failing")
    """The per-machine arrays that are the state (for checkpoints)."""

    def __init__(
        self, model: FailureModel, types: int, count: int, *, ramp_out: bool = False
    ) -> None:
        self.model = model
        self.types = types
        self.ramp_out = ramp_out
        self.enabled = types > 0 and model.probability > 0
        self.remaining = np.zeros(count, dtype=np.int64)
        """Failing cycles left, this one included."""
        self.episode_cycle = np.zeros(count, dtype=np.int64)
        self.failure_type = np.zeros(count, dtype=np.int64)
        self.was_failing = np.zeros(count, dtype=np.bool_)

    def advance(self, uniforms: FloatArray) -> EpisodeStep:
        """One cycle; ``uniforms`` has shape (machines, EXTRA_WORDS)."""
        fm = self.model
        started = ~self.was_failing & (uniforms[:, 0] < fm.probability)
        if started.any():
            new_type = np.minimum((uniforms[:, 1] * self.types).astype(np.int64), self.types - 1)
            span = fm.max_cycles - fm.min_cycles + 1
            new_length = fm.min_cycles + np.minimum(
                (uniforms[:, 2] * span).astype(np.int64), span - 1
            )
            self.failure_type = np.where(started, new_type, self.failure_type)
            self.remaining = np.where(started, new_length, self.remaining)
            self.episode_cycle = np.where(started, 0, self.episode_cycle)
        failing = self.remaining > 0
        self.episode_cycle = np.where(failing, self.episode_cycle + 1, 0)
        if fm.ramp_cycles == 0:
            progress = failing.astype(np.float64)
        else:
            steps = self.episode_cycle
            if self.ramp_out:
                steps = np.minimum(steps, self.remaining)
            progress = np.minimum(1.0, steps / fm.ramp_cycles)
        step = EpisodeStep(
            failing=failing,
            started=started,
            failure_type=self.failure_type.copy(),
            episode_cycle=self.episode_cycle.copy(),
            progress=progress,
        )
        self.remaining = np.where(failing, self.remaining - 1, 0)
        self.was_failing = failing
        return step

    def export_state(self, rows: IntArray) -> dict[str, npt.NDArray[np.generic]]:
        return {name: getattr(self, name)[rows].copy() for name in self.STATE}

    def restore_state(self, rows: IntArray, state: dict[str, npt.NDArray[np.generic]]) -> None:
        for name in self.STATE:
            current = getattr(self, name)
            value = state[name]
            if value.shape != (len(rows),):
                raise ValueError(f"state {name!r} has shape {value.shape} for {len(rows)} rows")
            updated = current.copy()  # a CycleResult may share the old array
            updated[rows] = value.astype(current.dtype)
            setattr(self, name, updated)

    @staticmethod
    def healthy(count: int) -> EpisodeStep:
        none = np.zeros(count, dtype=np.bool_)
        zeros = np.zeros(count, dtype=np.int64)
        return EpisodeStep(none, none, zeros, zeros, np.zeros(count))
