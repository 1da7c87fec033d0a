"""Isolated extremes: readings far out in a sensor's tail that do not persist in time.

Vibration and impact sensors (accelerometers, strain gauges) spike: a reading far out in the
tail, its neighbours in time back in the body of the distribution. A Gaussian copula with a
lag-1 fitted to the body makes every excursion last as long as the body's movements do, so the
stream's autocorrelation of raw readings (dominated by the spikes' squares) comes out far above
the reference's (kurtosis 50: 0.49 against 0.20).

The regimes' whitened state ``y ~ N(0, I)`` (``regimes``) keeps its dynamics; what a cycle
*emits* differs: where ``|y_j|`` is beyond ``c_j`` it is replaced by a fresh draw from the same
tail, ``N(0, 1)`` conditioned on ``|y| > c_j`` with a random sign. Each component's law stays
``N(0, 1)`` and the components stay independent, so every cycle's fleet has the same joint law
(marginals, dependence between sensors, regimes) as without; only the time order changes: an
excursion beyond ``c_j`` is a new draw every cycle. ``c_j`` is fitted (``calibrated_shares``) so
that the stream's lag-1 of raw readings is the reference's, and only for sensors whose lag-1
would otherwise exceed it by more than ``LAG1_TOLERANCE``.

Random numbers: one 64-bit word per such sensor, machine and cycle from the ``DOMAIN_EXTREMES``
stream (bit 0 the sign, the top 53 bits the depth into the tail), read only where a component is
beyond its limit. Only IEEE arithmetic and table reads on the hot path, as elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from producer.simulation.randomness import uniforms

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

LAG1_TOLERANCE = 0.05
"""How far the stream's lag-1 of a sensor's readings may exceed the reference's before its
extremes are made isolated (half the fidelity bound: sampling noise of a heavy-tailed lag-1)."""
MAX_SHARE = 0.25
"""The largest share of a component's cycles that are fresh tail draws."""
_CELLS = 256
"""Cells of the piecewise-linear table of tail depths."""
_GRID = np.arange(_CELLS + 1) / _CELLS
"""The table's points in ``u`` (the depth into the tail, 0 at its far end)."""
_BISECTIONS = 9
_ONE = np.uint64(1)


def _tail_depths(share: float) -> FloatArray:
    """``|y|`` at tail probabilities ``u * share / 2`` for ``u`` on the table's grid (its first
    point at an eighth of a cell: the tail's far end, finite)."""
    normal = NormalDist()
    grid = _GRID.copy()
    grid[0] = 1.0 / (8 * _CELLS)
    return np.array([normal.inv_cdf(1.0 - float(u) * share / 2.0) for u in grid])


@dataclass(frozen=True, eq=False)
class IsolatedExtremes:
    """Which whitened components have isolated extremes and where their tails start."""

    components: IntArray
    """Indices into the whitened state, ascending."""
    shares: FloatArray
    """Per component, the share of cycles beyond its limit (both tails)."""
    limits: FloatArray = field(init=False)
    """Per component, ``c`` with ``2 Phi(-c)`` its share."""
    depths: list[FloatArray] = field(init=False)
    """Per component, ``|y|`` on ``_GRID`` (``_tail_depths``)."""

    def __post_init__(self) -> None:
        limits = [NormalDist().inv_cdf(1.0 - float(q) / 2.0) for q in self.shares]
        object.__setattr__(self, "limits", np.array(limits))
        object.__setattr__(self, "depths", [_tail_depths(float(q)) for q in self.shares])

    @property
    def words(self) -> int:
        """Random words per machine and cycle."""
        return len(self.components)

    def emit(self, state: FloatArray, words: UInt64Array) -> FloatArray:
        """What sensor-major ``state`` (shape (components, machines)) emits this cycle, drawing
        from ``words`` (shape (machines, >= ``words``)); ``state`` itself is left alone."""
        emitted = state.copy()
        for index, component in enumerate(self.components):
            beyond = np.flatnonzero(np.abs(state[component]) > self.limits[index])
            if beyond.size == 0:
                continue
            drawn = words[beyond, index]
            depth = np.interp(uniforms(drawn), _GRID, self.depths[index])
            emitted[component, beyond] = np.where(drawn & _ONE, -depth, depth)
        return emitted


Simulated = Callable[[IsolatedExtremes | None], FloatArray]
"""Per sensor, the lag-1 of a simulated stream's readings with the given isolated extremes."""


def calibrated(reference_lag1: FloatArray, simulate: Simulated) -> IsolatedExtremes | None:
    """The isolated extremes that bring the stream's lag-1 of raw readings down to
    ``reference_lag1`` (per sensor; NaN: unknown), None where no sensor needs them.

    Component ``j`` of the whitened state is the part of sensor ``j`` that the earlier sensors
    do not explain (a Cholesky factor), so its share is fitted against sensor ``j``'s lag-1: a
    bisection on every such sensor at once, each simulation with the same random numbers."""
    without = simulate(None)
    excess = without - reference_lag1
    components = np.flatnonzero(np.nan_to_num(excess, nan=0.0) > LAG1_TOLERANCE)
    if components.size == 0:
        return None
    low = np.zeros(components.size)
    high = np.full(components.size, MAX_SHARE)
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2.0
        lag1 = simulate(IsolatedExtremes(components, middle))[components]
        above = lag1 > reference_lag1[components]
        low = np.where(above, middle, low)
        high = np.where(above, high, middle)
    shares = np.round((low + high) / 2.0, 6)
    return IsolatedExtremes(components, shares)
