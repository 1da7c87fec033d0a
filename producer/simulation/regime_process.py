"""The learned model with operating regimes and machine offsets, on the hot path.

Per machine: a regime ``r`` (a Markov chain), a persistent latent offset ``o`` and a whitened
state ``y ~ N(0, I)``; the latent value is ``z = mu_r + o + W_r y`` and a sensor reads its
calibrated quantile table at ``z_j`` (``regimes``). Sensor-major arrays, as ``LearnedProcess``.

Random numbers, each from (seed, simulation name, machine, cycle) only: ``y``'s noise from the
cycle's words as without regimes; the regime's move from word 0 of the machine's block in the
``DOMAIN_REGIME`` stream at the cycle (word 1 draws a machine's regime when it starts at that
cycle); the offset from the ``DOMAIN_MACHINE`` stream at cycle 0, so it is not state: a machine's
offset is re-derived from the seed wherever it runs.

Isolated extremes (``isolated_extremes``), where the reference has them, change what ``y``
emits, not ``y``: their draws come from the ``DOMAIN_EXTREMES`` stream at the cycle.

A failing machine is read through its type as without regimes, from its normal scores
``Phi^-1(F_j(z_j))`` (persistent as its readings are), with the type's dependence.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from producer.simulation.dynamics import LatentDynamics
from producer.simulation.episodes import EpisodeStep
from producer.simulation.learned_model import (
    GridPosition,
    LearnedModel,
    grouped_product,
    lower_triangular_product,
    sorted_by_group,
    transition_step,
)
from producer.simulation.learned_process import LearnedProcess, sensor_major_normals
from producer.simulation.randomness import (
    DOMAIN_EXTREMES,
    DOMAIN_MACHINE,
    DOMAIN_REGIME,
    CounterStream,
    normals,
    uniforms,
    words_per_machine,
)
from producer.simulation.reference_data import ReferenceProfile
from producer.simulation.regimes import Regimes, regimes_for

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]
StateArrays = dict[str, npt.NDArray[np.generic]]

REGIME_WORDS = 4
"""Words per machine and cycle of the regime stream (one Philox block): move, start."""
REGIME_STATE = "regime"
"""The state name of each machine's regime (checkpoints)."""


def learned_process(
    profile: ReferenceProfile,
    model: LearnedModel,
    dynamics: LatentDynamics,
    initial: UInt64Array,
    *,
    stream: CounterStream,
    first_machine: int,
    regimes: int | None,
    persistence: float | None,
    interval_ms: int | None,
) -> LearnedProcess:
    """The learned model's process for machines ``first_machine ..`` (``initial``: their
    starting words): with regimes when ``regimes`` asks for them or, None, the reference shows
    more than one, or the reference's extremes are isolated in time; ``stream`` gives the key
    (seed and simulation name)."""
    found = regimes_for(
        profile, components=regimes, persistence=persistence, interval_ms=interval_ms
    )
    if found.components == 1 and found.extremes is None:
        return LearnedProcess(model, dynamics, initial)
    return RegimeProcess(model, found, initial, stream.with_words(REGIME_WORDS), first_machine)


def _draw(cumulative: FloatArray, draws: FloatArray) -> IntArray:
    """The category of each draw, ``cumulative`` the rows' cumulative probabilities (one row per
    draw, or one for all)."""
    chosen = (draws[:, None] >= cumulative).sum(axis=1)
    drawn: IntArray = np.minimum(chosen, cumulative.shape[-1] - 1).astype(np.int64)
    return drawn


class RegimeProcess(LearnedProcess):
    """``LearnedProcess`` with regimes and machine offsets (module docstring)."""

    extra_state = (REGIME_STATE,)

    def __init__(
        self,
        model: LearnedModel,
        regimes: Regimes,
        initial: UInt64Array,
        stream: CounterStream,
        first_machine: int,
    ) -> None:
        """``initial``: the machines' starting words (``DOMAIN_INITIAL``); ``stream``: the
        regime draws (``REGIME_WORDS`` per machine)."""
        dynamics = LatentDynamics(
            regimes.persistence, regimes.step, regimes.innovation, 1.0, None, "regimes"
        )
        super().__init__(model, dynamics, initial)
        sensors = model.num_sensors
        self.regimes = regimes
        self._means = np.ascontiguousarray(regimes.means.T)
        cumulative = np.cumsum(regimes.transition, axis=1)
        self._cumulative_columns = [column.copy() for column in cumulative.T]
        self._start_cumulative = np.cumsum(regimes.weights)
        self._within_noise = math.sqrt(1.0 - (regimes.persistence or 0.0) ** 2)
        self._stream = stream
        self._first = first_machine
        self._count = len(initial)
        self._latent = self.start(initial).T.copy()
        self.regime = self.start_regimes(self._words(0))
        self._start_regime = self.regime.copy()
        self._offsets: FloatArray | None = None
        if regimes.offset is not None:
            machines = stream.with_words(words_per_machine(sensors))
            words = machines.words(0, first_machine, self._count, domain=DOMAIN_MACHINE)
            noise = normals(np.ascontiguousarray(words[:, :sensors].T))
            self._offsets = lower_triangular_product(regimes.offset, noise)
        self._position: GridPosition | None = None
        self._extremes = regimes.extremes
        self._extreme_stream = None
        if self._extremes is not None:
            self._extreme_stream = stream.with_words(words_per_machine(self._extremes.words))
        self._cycle = 0

    def _words(self, cycle: int) -> UInt64Array:
        return self._stream.words(cycle, self._first, self._count, domain=DOMAIN_REGIME)

    def start(self, initial: UInt64Array) -> FloatArray:
        """A starting whitened state: standard normal, shape (machines, sensors)."""
        return normals(np.ascontiguousarray(initial[:, : self._sensors]))

    def start_regimes(self, regime_words: UInt64Array) -> IntArray:
        """Starting regimes, in their stationary weights, from word 1 of ``regime_words``."""
        return _draw(self._start_cumulative, uniforms(regime_words[:, 1]))

    @property
    def latent_lag1(self) -> FloatArray:
        """Per sensor, the lag-1 within a regime (``Regimes.within_lag1``)."""
        return self.regimes.within_lag1()

    def move_regimes(self, cycle: int) -> None:
        """Every machine's regime chain moves on to ``cycle`` (the cycle whose readings come
        next)."""
        self._cycle = cycle
        draws = uniforms(self._words(cycle)[:, 0])
        # the count of each machine's cumulative probabilities at or below its draw, one
        # regime's column at a time (gathered per machine)
        chosen = np.zeros(len(draws), dtype=np.int64)
        for column in self._cumulative_columns:
            chosen += draws >= column[self.regime]
        self.regime = np.minimum(chosen, self.regimes.components - 1)

    def export_extra(self, rows: IntArray) -> StateArrays:
        return {REGIME_STATE: self.regime[rows].copy()}

    def fresh_extra(self, rows: IntArray, cycle: int) -> StateArrays:
        """The regimes machines ``rows`` start in at ``cycle``."""
        return {REGIME_STATE: self.start_regimes(np.ascontiguousarray(self._words(cycle)[rows]))}

    def restore_extra(self, rows: IntArray, state: StateArrays) -> None:
        regimes = state.get(REGIME_STATE)
        if regimes is not None and regimes.shape != (len(rows),):
            raise ValueError(f"regimes have shape {regimes.shape} for {len(rows)} rows")
        self.restore_regimes(rows, None if regimes is None else regimes.astype(np.int64))

    def restore_regimes(self, rows: IntArray, regimes: IntArray | None) -> None:
        """Overwrite the regimes of ``rows``; None (a checkpoint without regimes, whose latent
        state was ``N(0, R)``): the state is whitened and the machines take their starting
        regimes."""
        updated = self.regime.copy()
        if regimes is None:
            latent = self._latent[:, rows]
            self._latent[:, rows] = np.linalg.solve(self._model.cholesky, latent)
            updated[rows] = self._start_regime[rows]
        else:
            if np.any((regimes < 0) | (regimes >= self.regimes.components)):
                raise ValueError(f"regimes outside 0..{self.regimes.components - 1}")
            updated[rows] = regimes
        self.regime = updated

    def readings(self, words: UInt64Array, episodes: EpisodeStep) -> FloatArray:
        dynamics = self.dynamics
        noise = sensor_major_normals(words, self._sensors)
        if dynamics.transition is not None and dynamics.innovation is not None:
            self._latent = transition_step(
                dynamics.transition, self._latent, dynamics.innovation, noise
            )
        else:
            self._latent *= self._persistence
            noise *= self._within_noise
            self._latent += noise
        self._position = GridPosition.of(self._regime_latent(self._emitted()))
        out = self._position.read(self.regimes.table)
        return self._finish(out, episodes)

    def _emitted(self) -> FloatArray:
        """What the whitened state emits this cycle: itself, or with its isolated extremes."""
        if self._extremes is None or self._extreme_stream is None:
            return self._latent
        words = self._extreme_stream.words(
            self._cycle, self._first, self._count, domain=DOMAIN_EXTREMES
        )
        return self._extremes.emit(self._latent, words)

    def _regime_latent(self, emitted: FloatArray) -> FloatArray:
        """``z = mu_r + o + W_r y`` of every machine, worked out on the machines sorted by
        regime (one product per regime on a column slice, a regime's mean added to its slice),
        then put back in machine order."""
        order, bounds = sorted_by_group(self.regime, self.regimes.components)
        within = grouped_product(
            self.regimes.within, np.take(emitted, order, axis=1), bounds, lower=True
        )
        # mu + o first, then + W y (additions commute: mu + W y is W y + mu, bit for bit)
        latent = within if self._offsets is None else np.take(self._offsets, order, axis=1)
        for regime in range(self.regimes.components):
            start, stop = bounds[regime], bounds[regime + 1]
            latent[:, start:stop] += self._means[:, regime : regime + 1]
        if self._offsets is not None:
            latent += within
        back = np.empty_like(order)
        back[order] = np.arange(len(order), dtype=order.dtype)
        result: FloatArray = np.take(latent, back, axis=1)
        return result

    def _failure_scores(self, machines: npt.NDArray[np.intp]) -> FloatArray:
        """The machines' normal scores (persistent, as their readings), which a failure type's
        mix applies to."""
        assert self._position is not None
        return self._position.columns(machines).read(self.regimes.scores)
