"""The learned model's dynamics in time: how the latent vector moves from one cycle to the next.

The latent vector ``z`` (see ``learned_model``) has the stationary law ``N(0, R)``. One cycle is

    z' = A z + C eps,    eps ~ N(0, I),    C C^T = Q = R - A R A^T,

so the law stays exactly ``N(0, R)`` whatever ``A`` is, as long as ``Q`` is positive definite.
``A`` comes from one of three places:

* ``SIMULATION_PERSISTENCE`` set: ``A = rho I`` (every sensor the same persistence);
* the reference is a time series (a time column with a median step): a VAR(1) fitted in the
  copula's latent space. Consecutive normal rows of a group (one step apart, within 1.5 median
  steps) give the lag-1 rank correlations between every sensor now and every sensor one step
  before, turned into latent correlations ``G = 2 sin(pi/6 S)`` as ``R`` is; the Yule-Walker
  solution ``A = G R^-1`` then reproduces each sensor's own lag-1 and the cross-sensor lead and
  lag. Pairs of every group are pooled. When sampling noise makes ``Q`` indefinite, ``A`` is
  moved toward its diagonal (each sensor's own persistence) and, if that is not enough, scaled
  down until it is not;
* otherwise ``A = 0.95 I`` (``DEFAULT_PERSISTENCE``).

Dynamics are per unit of time. The reference's median step is one reference step; a cycle of
``SIMULATION_INTERVAL_MS`` is ``k = interval / step`` reference steps (a time column of plain
numbers is read as seconds), and one cycle applies ``A^k``: a stream at the reference's own
interval has the reference's lag-1, a stream at twice the interval its lag-2. ``A^k`` is
computed in whitened coordinates ``B = L^-1 A L`` (``L L^T = R``), where ``Q`` is positive
definite exactly when ``B``'s largest singular value is below 1: integer ``k`` by repeated
products, other ``k`` through ``B``'s eigendecomposition (principal branch, real part; a
negative eigenvalue has no real fractional power). numpy's ``eig`` suffices for the sizes here
(a few hundred sensors at most, computed once per engine), so scipy is not needed.

Both matrices are rounded to 12 decimals (``learned_model``): LAPACK may differ in the last bits
between CPUs, the stream should not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.simulation_model import DEFAULT_PERSISTENCE
from producer.simulation.learned_model import LearnedModel, rounded, spearman
from producer.simulation.reference_table import TimeSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_GAIN = 1.0 - 1e-4
"""Largest singular value of the whitened transition: keeps ``Q`` safely positive definite
(for one sensor, a lag-1 of at most 0.9999)."""
MAX_STEP_RATIO = 1.5
"""Consecutive rows further apart than this many median steps are a gap, not a step."""
_SHRINK_STEPS = 10


@dataclass(frozen=True, eq=False)
class Transition:
    """The VAR(1) fitted to the reference, per reference step."""

    matrix: FloatArray
    """``A``, shape (sensors, sensors)."""
    reference_lag1: FloatArray
    """Per sensor, the reference's latent lag-1 correlation (the diagonal of ``G``)."""
    pairs: int
    """Consecutive pairs of normal rows it was fitted to."""
    toward_diagonal: float
    """How far ``A`` was moved toward its diagonal to keep ``Q`` positive definite (0..1)."""
    scaled: float
    """The factor ``A`` was scaled by after that (1: not scaled)."""
    median_step: float
    timestamps: bool


@dataclass(frozen=True, eq=False)
class LatentDynamics:
    """One cycle of the latent process: ``z' = A z + C eps``."""

    persistence: float | None
    """Set: ``A = persistence * I`` (the scalar AR(1)); None: ``transition``."""
    transition: FloatArray | None
    """``A^k`` for one cycle, shape (sensors, sensors); None with a scalar persistence."""
    innovation: FloatArray | None
    """``C``, lower triangular; None with a scalar persistence (``sqrt(1-rho^2) L``)."""
    steps: float
    """Reference steps per cycle (``k``); 1 with a scalar persistence."""
    fitted: Transition | None
    source: str
    """Where ``A`` came from, for the ``profile`` command."""

    def lag1(self, correlation: FloatArray) -> FloatArray:
        """Per sensor, the latent lag-1 correlation of one cycle."""
        if self.transition is None:
            return np.full(correlation.shape[0], self.persistence or 0.0)
        return np.diag(self.transition @ correlation).copy()


def consecutive_pairs(series: TimeSeries, normal: BoolArray) -> tuple[IntArray, IntArray]:
    """Indices into the normal rows of (previous, next) pairs: rows of one group, both normal,
    next in time and one step apart (a positive step of at most ``MAX_STEP_RATIO`` median
    steps)."""
    if series.median_step is None:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    position = np.cumsum(normal) - 1  # row -> index among the normal rows
    step = np.diff(series.times)
    keep = (
        (series.groups[1:] == series.groups[:-1])
        & normal[1:]
        & normal[:-1]
        & (step > 0)
        & (step <= MAX_STEP_RATIO * series.median_step)
    )
    rows = np.flatnonzero(keep)
    return position[rows].astype(np.int64), position[rows + 1].astype(np.int64)


def lagged_latent_correlation(
    values: FloatArray, previous: IntArray, after: IntArray
) -> FloatArray:
    """``G[j, k]``: latent correlation of sensor ``j`` one step after sensor ``k``."""
    sensors = values.shape[1]
    both = spearman(np.concatenate([values[after], values[previous]], axis=1))
    lagged = both[:sensors, sensors:]
    return np.asarray(2.0 * np.sin(math.pi / 6.0 * lagged), dtype=np.float64)


def _inverse(matrix: FloatArray) -> FloatArray:
    return np.asarray(np.linalg.inv(matrix), dtype=np.float64)


def _whitened(matrix: FloatArray, cholesky: FloatArray, inverse: FloatArray) -> FloatArray:
    whitened: FloatArray = inverse @ matrix @ cholesky
    return whitened


def _gain(whitened: FloatArray) -> float:
    return float(np.linalg.norm(whitened, 2))


def fit_transition(
    values: FloatArray, series: TimeSeries, normal: BoolArray, model: LearnedModel
) -> Transition | None:
    """The VAR(1) of the normal rows ``values`` (module docstring); None when there are fewer
    consecutive pairs than the dependence needs (2 per sensor, at least 10)."""
    previous, after = consecutive_pairs(series, normal)
    sensors = values.shape[1]
    if len(previous) < max(2 * sensors, 10) or series.median_step is None:
        return None
    lagged = lagged_latent_correlation(values, previous, after)
    correlation, cholesky = model.correlation, model.cholesky
    inverse = _inverse(cholesky)
    full = np.asarray(np.linalg.solve(correlation, lagged.T).T, dtype=np.float64)  # G R^-1
    diagonal = np.diag(np.clip(np.diag(lagged), -MAX_GAIN, MAX_GAIN))
    toward, scaled = 0.0, 1.0
    matrix = full
    for toward in np.linspace(0.0, 1.0, _SHRINK_STEPS + 1):
        matrix = np.asarray((1.0 - toward) * full + toward * diagonal, dtype=np.float64)
        if _gain(_whitened(matrix, cholesky, inverse)) <= MAX_GAIN:
            break
    gain = _gain(_whitened(matrix, cholesky, inverse))
    if gain > MAX_GAIN:
        scaled = MAX_GAIN / gain
        matrix = matrix * scaled
    return Transition(
        matrix=matrix,
        reference_lag1=np.diag(lagged).copy(),
        pairs=len(previous),
        toward_diagonal=float(toward),
        scaled=scaled,
        median_step=series.median_step,
        timestamps=series.timestamps,
    )


def matrix_power(whitened: FloatArray, steps: float) -> FloatArray:
    """``whitened ** steps`` (real; see the module docstring for non-integer ``steps``)."""
    if float(steps).is_integer():
        power: FloatArray = np.linalg.matrix_power(whitened, int(steps))
        return power
    eigenvalues, vectors = np.linalg.eig(whitened)
    powered = np.power(eigenvalues.astype(np.complex128), steps)
    result = (vectors * powered) @ np.linalg.inv(vectors)
    return np.asarray(result.real, dtype=np.float64)


def step_matrices(
    transition: FloatArray, model: LearnedModel, steps: float
) -> tuple[FloatArray, FloatArray]:
    """``A^steps`` and the lower-triangular ``C`` with ``C C^T = R - A^k R (A^k)^T``."""
    cholesky = model.cholesky
    inverse = _inverse(cholesky)
    whitened = matrix_power(_whitened(transition, cholesky, inverse), steps)
    gain = _gain(whitened)
    if gain > MAX_GAIN:  # a fractional power of a non-normal matrix may gain
        whitened = whitened * (MAX_GAIN / gain)
    # Q = L (I - B B^T) L^T, and chol(I - B B^T) is well conditioned (B's gain is below 1)
    inner = np.eye(len(whitened)) - whitened @ whitened.T
    inner = (inner + inner.T) / 2.0
    innovation = np.tril(cholesky @ np.linalg.cholesky(inner))
    # C = L chol(I - B B^T) is lower triangular as a product of two lower-triangular matrices
    power = cholesky @ whitened @ inverse
    return rounded(power), rounded(innovation)


def steps_per_cycle(median_step: float, interval_ms: int | None) -> float:
    """Reference steps in one cycle of ``interval_ms`` (None, or 0 = as fast as possible: a
    cycle has no length in time, and runs at the reference's own step)."""
    if not interval_ms:
        return 1.0
    return interval_ms / 1000.0 / median_step


def latent_dynamics(
    model: LearnedModel,
    *,
    persistence: float | None,
    interval_ms: int | None,
    values: FloatArray | None = None,
    series: TimeSeries | None = None,
    normal: BoolArray | None = None,
) -> LatentDynamics:
    """The dynamics a learned engine runs: ``persistence`` when set, else the VAR(1) of the
    reference's time series (``values``: its normal rows, ``normal``: which of the series' rows
    they are), else ``DEFAULT_PERSISTENCE``."""
    if persistence is not None:
        return LatentDynamics(persistence, None, None, 1.0, None, "SIMULATION_PERSISTENCE")
    fitted = None
    if series is not None and values is not None and normal is not None:
        fitted = fit_transition(values, series, normal, model)
    if fitted is None:
        why = (
            "too few consecutive normal rows in the time series"
            if series is not None
            else "no TIME_COLUMN"
        )
        return LatentDynamics(DEFAULT_PERSISTENCE, None, None, 1.0, None, f"default ({why})")
    steps = steps_per_cycle(fitted.median_step, interval_ms)
    power, innovation = step_matrices(fitted.matrix, model, steps)
    return LatentDynamics(None, power, innovation, steps, fitted, "learned from the time series")
