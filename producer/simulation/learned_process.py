"""The learned model's sensor process on the hot path (without regimes; ``regime_process`` adds
them): a latent VAR(1) vector per machine (``dynamics``) read through each sensor's quantile
function (``learned_model``); failing machines blend toward their type's distribution.

Arrays are sensor-major, shape (sensors, machines), so every operation runs over contiguous rows
of machines. Work that differs by group of machines (a failure type's mix) runs once per group
on the machines sorted by group (``sorted_by_group``): one gather, the products on column slices
of one array, one read of the stacked tables of all types and one scatter back.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from domain.simulation_model import DECIMALS
from producer.simulation.dynamics import LatentDynamics
from producer.simulation.episodes import EpisodeStep
from producer.simulation.learned_model import (
    GRID_CELLS,
    GridPosition,
    LearnedModel,
    grouped_product,
    lower_triangular_product,
    sorted_by_group,
    stacked_table,
    transition_step,
)
from producer.simulation.randomness import normals

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.intp]
UInt64Array = npt.NDArray[np.uint64]


def sensor_major_normals(words: UInt64Array, sensors: int) -> FloatArray:
    """Normals from the first ``sensors`` words of each machine, shape (sensors, machines),
    C-contiguous (a transposed view would make every later row operation strided)."""
    return normals(np.ascontiguousarray(words[:, :sensors].T))


class LearnedProcess:
    """Latent VAR(1) Gaussian copula with learned marginals (see ``learned_model`` and
    ``dynamics``)."""

    def __init__(
        self, model: LearnedModel, dynamics: LatentDynamics | float, initial: UInt64Array
    ) -> None:
        """``dynamics``: the latent process's step, or a scalar persistence."""
        if not isinstance(dynamics, LatentDynamics):
            dynamics = LatentDynamics(dynamics, None, None, 1.0, None, "persistence")
        persistence = dynamics.persistence
        if persistence is not None and not 0.0 <= persistence < 1.0:
            raise ValueError(f"persistence must be in [0, 1), got {persistence}")
        sensors = model.num_sensors
        self.normal_words = sensors
        self._model = model
        self._sensors = sensors
        self.dynamics = dynamics
        self._persistence = persistence or 0.0
        self._innovation = math.sqrt(1.0 - self._persistence**2)
        self._on_grid = np.flatnonzero(model.decimals < DECIMALS)
        self._all_on_grid = self._on_grid.size == sensors
        self._grid_scale = model.grid_scale[self._on_grid][:, None]
        types = len(model.failures)
        self._mixes = np.stack([f.mix for f in model.failures]) if types else None
        self._failure_table = (
            stacked_table(tuple(f.table for f in model.failures)) if types else None
        )
        self._type_cells = np.arange(types, dtype=np.intp) * (sensors * GRID_CELLS)
        # Start in the stationary law N(0, R): no burn-in needed.
        self._latent: FloatArray = lower_triangular_product(
            model.cholesky, sensor_major_normals(initial, sensors)
        )

    def start(self, initial: UInt64Array) -> FloatArray:
        """The starting state of machines drawn from ``initial`` words (the stationary law),
        shape (machines, sensors) as ``export_state`` gives it."""
        latent = lower_triangular_product(
            self._model.cholesky, sensor_major_normals(initial, self._sensors)
        )
        return np.ascontiguousarray(latent.T)

    @property
    def max_abs_reading(self) -> float:
        tables = [self._model.normal, *(f.table for f in self._model.failures)]
        extreme = max(max(np.abs(t.minimum).max(), np.abs(t.maximum).max()) for t in tables)
        # rounding to a grid may move a reading half a grid step beyond the tables' range
        half_step = 0.5 / float(self._grid_scale.min()) if self._on_grid.size else 0.0
        return float(extreme) + half_step

    @property
    def latent_lag1(self) -> FloatArray:
        """Per sensor, the latent lag-1 autocorrelation of one cycle."""
        return self.dynamics.lag1(self._model.correlation)

    def export_state(self, rows: IntArray) -> FloatArray:
        return np.ascontiguousarray(self._latent[:, rows].T)

    def restore_state(self, rows: IntArray, state: FloatArray) -> None:
        self._latent[:, rows] = state.T

    def readings(self, words: UInt64Array, episodes: EpisodeStep) -> FloatArray:
        model = self._model
        dynamics = self.dynamics
        noise = sensor_major_normals(words, self._sensors)
        if dynamics.transition is not None and dynamics.innovation is not None:
            latent = transition_step(dynamics.transition, self._latent, dynamics.innovation, noise)
            self._latent = latent
        else:
            latent = self._latent
            innovation = lower_triangular_product(model.cholesky, noise)
            latent *= self._persistence
            innovation *= self._innovation
            latent += innovation
        out = GridPosition.of(latent).read(model.normal)
        return self._finish(out, episodes)

    def _finish(self, out: FloatArray, episodes: EpisodeStep) -> FloatArray:
        """Failing machines blended toward their type, sensors on a grid rounded to it."""
        if episodes.failing.any():
            self._blend_failures(out, episodes)
        if self._all_on_grid:
            out *= self._grid_scale
            np.rint(out, out=out)
            out /= self._grid_scale
        elif self._on_grid.size:
            on_grid = out[self._on_grid]
            on_grid *= self._grid_scale
            np.rint(on_grid, out=on_grid)
            on_grid /= self._grid_scale
            out[self._on_grid] = on_grid
        return np.ascontiguousarray(out.T)

    def _failure_scores(self, machines: IndexArray) -> FloatArray:
        """What a failure type's mix applies to for ``machines``: their latent state."""
        return np.take(self._latent, machines, axis=1)

    def _blend_failures(self, out: FloatArray, episodes: EpisodeStep) -> None:
        """Blend the readings of failing machines (columns of ``out``) toward their type: each
        type's mix of the machines' scores, read through the type's table."""
        assert self._mixes is not None
        assert self._failure_table is not None
        types = len(self._mixes)
        machines, bounds = sorted_by_group(
            episodes.failure_type, types, np.flatnonzero(episodes.failing)
        )
        mixed = grouped_product(self._mixes, self._failure_scores(machines), bounds, lower=True)
        machine_types = np.repeat(np.arange(types, dtype=np.intp), np.diff(bounds))
        position = GridPosition.of(mixed, self._type_cells[machine_types])
        failing = position.read(self._failure_table)
        healthy = np.take(out, machines, axis=1)
        # healthy + w (failing - healthy) = (1 - w) healthy + w failing
        failing -= healthy
        failing *= episodes.progress[machines]
        healthy += failing
        out[:, machines] = healthy
