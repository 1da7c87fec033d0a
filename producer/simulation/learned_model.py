"""Fit the ``learned`` simulation model from reference rows (pure numpy, no I/O).

The model is a Gaussian copula in time:

* every sensor's marginal is its reference rows' distribution, read through a monotone
  quantile function (linear between order statistics, short linear tails), so bounded sensors
  stay bounded, skewed ones stay skewed and two-mode ones keep both modes;
* the dependence between sensors is a latent normal vector with correlation ``R``, chosen so
  that the sensors' rank (Spearman) correlations are the reference's: for a Gaussian copula
  ``spearman = 6/pi * asin(r/2)``, so ``r = 2 sin(pi/6 * spearman)``, projected onto the
  nearest valid correlation matrix;
* in time, the latent vector is a VAR(1) process ``z' = A z + C eps`` whose stationary law is
  exactly ``N(0, R)`` (``dynamics``): ``A`` learned from the reference's time series, or a
  scalar persistence ``rho`` with ``C = sqrt(1-rho^2) L``, ``L L^T = R``; the readings are
  persistent and their joint distribution at any cycle is the reference's.

A failure type has its own marginals and latent correlation ``R_t`` (shrunk toward the normal
``R`` when the type has few rows: weight ``n / (n + sensors)`` on its own estimate). The latent
state of a failing machine is mapped through ``A_t = L_t L^-1`` (lower triangular, the identity
when ``R_t = R``), so ``A_t z ~ N(0, R_t)``: the same persistent process, seen through the
type's dependence and marginals. With the episode's progress ``w`` the reading is
``(1-w) Q(z) + w Q_t(A_t z)``: both terms are persistent and ``w`` moves by ``1/ramp`` per
cycle, so readings move continuously into a failure and back out of it.

A sensor whose reference readings all lie on a grid of ``10**-k`` (integers, tenths, ...) is
emitted on the same grid: the reading is rounded to it last (``grid_decimals``).

Quantile functions are stored as tables over a fixed grid of the latent value, so mapping a
latent value to a reading is two gathers, a multiply and an add (bit-identical on every CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.simulation_model import DECIMALS

FloatArray = npt.NDArray[np.float64]

GRID_LIMIT = 5.0
"""The latent grid covers [-5, 5]; latent values beyond are read at the edge."""
GRID_CELLS = 2048
MIN_TYPE_ROWS = 3
"""A failure type with fewer rows keeps the normal shape, shifted to the rows' mean."""
_TAIL_POINTS = 5
"""The tails extend the outermost order statistic by the mean spacing of this many."""
_MIN_EIGENVALUE = 1e-6
_DIGITS = 12
"""Fitted matrices are rounded to this many decimals: LAPACK and BLAS may differ in the last
bits between CPUs, and the stream should not."""
_GRID_TOLERANCE = 1e-12
"""Relative distance from a grid point that still counts as on it (float64 parsing noise)."""
_NORMAL = NormalDist()

LATENT_GRID = np.linspace(-GRID_LIMIT, GRID_LIMIT, GRID_CELLS + 1)
"""The latent values the quantile tables are tabulated at."""
_GRID = LATENT_GRID
_GRID_P = np.array([_NORMAL.cdf(float(z)) for z in _GRID])


def paired(real: FloatArray, imaginary: FloatArray) -> npt.NDArray[np.complex128]:
    """``real + i imaginary``, exactly (each part a copy of its array)."""
    pairs = np.empty(real.shape, dtype=np.complex128)
    pairs.real = real
    pairs.imag = imaginary
    return pairs


@dataclass(frozen=True, eq=False)
class QuantileTable:
    """Per-sensor readings on the latent grid: ``base[j, g]`` at grid point ``g`` and the slope
    ``step[j, g]`` to the next point, flattened for gathers."""

    base: FloatArray
    """Shape (sensors * GRID_CELLS,)."""
    step: FloatArray
    minimum: FloatArray
    maximum: FloatArray
    pairs: npt.NDArray[np.complex128] = field(init=False, repr=False)
    """``base + i step``: both values of a cell in one gather (``GridPosition.read``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", paired(self.base, self.step))

    @classmethod
    def from_grid(cls, values: FloatArray) -> QuantileTable:
        """``values``: shape (sensors, GRID_CELLS + 1), non-decreasing along the grid."""
        return cls(
            base=np.ascontiguousarray(values[:, :-1]).ravel(),
            step=np.ascontiguousarray(np.diff(values, axis=1)).ravel(),
            minimum=values[:, 0].copy(),
            maximum=values[:, -1].copy(),
        )


@dataclass(frozen=True, eq=False)
class FailureShape:
    """One failure type's marginals and how the latent state is seen through it."""

    table: QuantileTable
    mix: FloatArray
    """``A_t``: lower triangular, shape (sensors, sensors)."""
    own_weight: float
    """Weight of the type's own dependence estimate against the normal one (0..1)."""
    rows: int


@dataclass(frozen=True, eq=False)
class LearnedModel:
    """Everything the engine needs to run the ``learned`` model."""

    normal: QuantileTable
    correlation: FloatArray
    """Latent correlation ``R`` of the normal rows."""
    cholesky: FloatArray
    """``L`` with ``L L^T = R``."""
    failures: tuple[FailureShape, ...]
    constant: npt.NDArray[np.bool_]
    """Sensors whose normal rows all have one value (they stay at it)."""
    decimals: npt.NDArray[np.int64]
    """Per sensor, the decimals of the reference's grid (``grid_decimals``): readings are
    rounded to it, so an integer sensor stays integer (``DECIMALS``: no grid)."""

    @property
    def grid_scale(self) -> FloatArray:
        """``10 ** decimals`` per sensor."""
        scale: FloatArray = 10.0 ** self.decimals.astype(np.float64)
        return scale

    @property
    def num_sensors(self) -> int:
        return int(self.correlation.shape[0])


def grid_decimals(values: FloatArray) -> npt.NDArray[np.int64]:
    """Per column, the fewest decimals ``k`` (0 .. DECIMALS-1) such that every value is a whole
    number of ``10**-k``; ``DECIMALS`` when there is none (readings keep 6 decimals).

    >>> grid_decimals(np.array([[1.0, 0.25, 0.1234567], [3.0, 1.5, 2.0]])).tolist()
    [0, 2, 6]
    """
    found = np.full(values.shape[1], DECIMALS, dtype=np.int64)
    for j in range(values.shape[1]):
        column = values[:, j]
        for k in range(DECIMALS):
            scaled = column * 10.0**k
            off = np.abs(scaled - np.rint(scaled))
            if np.all(off <= _GRID_TOLERANCE * np.maximum(1.0, np.abs(scaled))):
                found[j] = k
                break
    return found


def quantile_grid(column: FloatArray, at: FloatArray | None = None) -> FloatArray:
    """Readings of one sensor at the latent grid points (non-decreasing).

    Order statistics sit at probabilities ``(i - 0.5)/n``; below the first and above the last
    the function goes on linearly to the extreme probabilities 0 and 1, extending the range by
    the mean spacing of the outermost order statistics.

    >>> grid = quantile_grid(np.array([0.0, 1.0, 2.0, 3.0]))
    >>> float(grid[0]), float(grid[GRID_CELLS // 2]), float(grid[-1])
    (-1.0, 1.5, 4.0)

    ``at``: other probabilities to read the function at (default: the latent grid's).
    """
    values = np.sort(column)
    n = len(values)
    k = min(n, _TAIL_POINTS)
    low_spacing = (values[k - 1] - values[0]) / max(k - 1, 1)
    high_spacing = (values[-1] - values[n - k]) / max(k - 1, 1)
    probabilities = np.concatenate([[0.0], (np.arange(n) + 0.5) / n, [1.0]])
    points = np.concatenate([[values[0] - low_spacing], values, [values[-1] + high_spacing]])
    grid: FloatArray = np.interp(_GRID_P if at is None else at, probabilities, points)
    return grid


def _average_ranks(column: FloatArray) -> FloatArray:
    """Ranks 1..n, ties sharing their average rank."""
    order = np.argsort(column, kind="stable")
    sorted_values = column[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    ends = np.concatenate([starts[1:], [len(column)]])
    average = (starts + ends + 1) / 2.0  # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(len(column))
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman(values: FloatArray) -> FloatArray:
    """Rank correlation matrix of the columns; a constant column correlates 0 with the others."""
    ranks = np.column_stack([_average_ranks(values[:, j]) for j in range(values.shape[1])])
    centred = ranks - ranks.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    safe = np.where(norms > 0, norms, 1.0)
    scaled = centred / safe
    matrix: FloatArray = scaled.T @ scaled
    matrix[:, norms == 0] = 0.0
    matrix[norms == 0, :] = 0.0
    np.fill_diagonal(matrix, 1.0)
    return np.clip(matrix, -1.0, 1.0)


def nearest_correlation(matrix: FloatArray) -> FloatArray:
    """A positive-definite correlation matrix close to a symmetric ``matrix`` (eigenvalues
    clipped from below, then the diagonal rescaled to 1)."""
    symmetric = (matrix + matrix.T) / 2.0
    eigenvalues, vectors = np.linalg.eigh(symmetric)
    clipped = np.maximum(eigenvalues, _MIN_EIGENVALUE)
    rebuilt = (vectors * clipped) @ vectors.T
    scale = np.sqrt(np.diag(rebuilt))
    result: FloatArray = rebuilt / np.outer(scale, scale)
    np.fill_diagonal(result, 1.0)
    return result


def latent_correlation(values: FloatArray) -> FloatArray:
    """The latent normal correlation whose Gaussian copula has the rows' rank correlations."""
    if len(values) < 2:
        return np.eye(values.shape[1])
    latent = 2.0 * np.sin(math.pi / 6.0 * spearman(values))
    return nearest_correlation(latent)


def _shrunk(own: FloatArray, target: FloatArray, weight: float) -> FloatArray:
    return nearest_correlation(weight * own + (1.0 - weight) * target)


def rounded(matrix: npt.NDArray[np.floating[Any]]) -> FloatArray:
    return np.asarray(np.round(matrix, _DIGITS), dtype=np.float64)


def fit_learned_model(
    normal_values: FloatArray, failure_values: tuple[FloatArray, ...]
) -> LearnedModel:
    """Fit marginals, dependence and failure shapes (see the module docstring).

    ``normal_values``: shape (rows, sensors), at least 2 rows; ``failure_values``: one array of
    shape (rows_t, sensors) per failure type, at least 1 row each.
    """
    sensors = normal_values.shape[1]
    decimals = grid_decimals(np.concatenate([normal_values, *failure_values]))
    normal_grid = np.stack([quantile_grid(normal_values[:, j]) for j in range(sensors)])
    constant = np.ptp(normal_values, axis=0) == 0
    correlation = latent_correlation(normal_values)
    cholesky = rounded(np.linalg.cholesky(correlation))
    inverse = np.linalg.inv(cholesky)

    shapes = []
    for rows in failure_values:
        n = len(rows)
        if n >= MIN_TYPE_ROWS:
            grid = np.stack([quantile_grid(rows[:, j]) for j in range(sensors)])
            weight = n / (n + sensors)
            own = _shrunk(latent_correlation(rows), correlation, weight)
        else:
            # Too few rows for a shape: the normal shape, moved to the rows' mean.
            grid = normal_grid + (rows.mean(axis=0) - normal_values.mean(axis=0))[:, None]
            weight = 0.0
            own = correlation
        mix = rounded(np.tril(np.linalg.cholesky(own) @ inverse))
        shapes.append(
            FailureShape(
                table=QuantileTable.from_grid(grid),
                mix=mix,
                own_weight=weight,
                rows=n,
            )
        )
    return LearnedModel(
        normal=QuantileTable.from_grid(normal_grid),
        correlation=correlation,
        cholesky=cholesky,
        failures=tuple(shapes),
        constant=constant,
        decimals=decimals,
    )


# -- evaluation on the hot path (sensor-major arrays: shape (sensors, machines)) ---------------
_INV_CELL = GRID_CELLS / (2.0 * GRID_LIMIT)
_LAST = GRID_CELLS - 1e-9


_ROW_BY_ROW_FROM = 1000
"""Machines from which the row-by-row product beats the column-by-column one (measured in a
whole engine step, where the column-by-column temporaries of (sensors, machines) push the
step's other arrays out of the cache; alone, column by column is faster up to ~20,000)."""


def lower_triangular_product(matrix: FloatArray, vectors: FloatArray) -> FloatArray:
    """``matrix @ vectors`` for a lower-triangular ``matrix`` and sensor-major ``vectors``."""
    return matrix_product(matrix, vectors, lower=True)


def matrix_product(
    matrix: FloatArray,
    vectors: FloatArray,
    *,
    lower: bool = False,
    out: FloatArray | None = None,
) -> FloatArray:
    """``matrix @ vectors`` for sensor-major ``vectors`` (``lower``: ``matrix`` is lower
    triangular, and the terms above the diagonal are skipped), into ``out`` when given (an
    array or a view of ``vectors``' shape whose rows are contiguous, such as a column slice).

    Written as multiply-adds instead of a BLAS call: only IEEE multiplications and additions,
    in the same order (``k = 0, 1, ...`` for output row ``j``) whichever of the two loops runs,
    so every CPU gives the same bits whatever the number of machines (a BLAS kernel's order of
    summation may change with the matrix shape). Many machines: row by row (each row of
    machines stays in cache); few: column by column (fewer numpy calls).
    """
    sensors, machines = vectors.shape
    # rows must be contiguous (a column gather such as ``a[:, index]`` comes out F-ordered);
    # a column slice of a C-ordered array has contiguous rows and is used as it is
    if vectors.strides[1] != vectors.itemsize:
        vectors = np.ascontiguousarray(vectors)
    if out is None:
        out = np.empty((sensors, machines))
    if machines < _ROW_BY_ROW_FROM:
        np.multiply(matrix[:, :1], vectors[0], out=out)
        for k in range(1, sensors):
            first = k if lower else 0
            out[first:] += matrix[first:, k : k + 1] * vectors[k]
        return out
    term = np.empty(machines)
    for j in range(sensors):
        row = out[j]
        np.multiply(vectors[0], matrix[j, 0], out=row)
        for k in range(1, j + 1 if lower else sensors):
            np.multiply(vectors[k], matrix[j, k], out=term)
            row += term
    return out


def grouped_product(
    matrices: FloatArray, vectors: FloatArray, bounds: npt.NDArray[np.intp], *, lower: bool
) -> FloatArray:
    """``matrices[g] @ vectors[:, bounds[g]:bounds[g + 1]]`` for every group ``g`` of columns
    (machines sorted by group), as ``matrix_product``: one output array, no per-group copies."""
    vectors = np.ascontiguousarray(vectors)
    out = np.empty(vectors.shape)
    for group, matrix in enumerate(matrices):
        start, stop = int(bounds[group]), int(bounds[group + 1])
        if stop > start:
            matrix_product(matrix, vectors[:, start:stop], lower=lower, out=out[:, start:stop])
    return out


def sorted_by_group(
    group: npt.NDArray[np.int64], groups: int, among: npt.NDArray[np.intp] | None = None
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The indices of ``among`` (default: all) sorted by ``group`` (ascending index within a
    group), and each group's bounds in that order (``groups + 1`` of them)."""
    if among is None:
        among = np.arange(len(group), dtype=np.intp)
    of_among = group[among]
    members = [among[of_among == g] for g in range(groups)]
    bounds = np.zeros(groups + 1, dtype=np.intp)
    np.cumsum([len(m) for m in members], out=bounds[1:])
    return np.concatenate(members), bounds


def transition_step(
    transition: FloatArray, latent: FloatArray, innovation: FloatArray, noise: FloatArray
) -> FloatArray:
    """``transition @ latent + innovation @ noise`` for a full ``transition``, a
    lower-triangular ``innovation`` and sensor-major arrays (both products as
    ``matrix_product``: a machine's next state has the same bits whatever the number of
    machines beside it)."""
    out = matrix_product(transition, latent)
    out += lower_triangular_product(innovation, noise)
    return out


_SENSOR_CELLS: dict[int, npt.NDArray[np.intp]] = {}


def _sensor_cells(sensors: int) -> npt.NDArray[np.intp]:
    """Each sensor's first cell in a flat table, shape (sensors, 1)."""
    cells = _SENSOR_CELLS.get(sensors)
    if cells is None:
        cells = (np.arange(sensors, dtype=np.intp) * GRID_CELLS)[:, None]
        _SENSOR_CELLS[sensors] = cells
    return cells


def stacked_table(tables: tuple[QuantileTable, ...]) -> QuantileTable:
    """One flat table of several (table ``t`` from cell ``t * sensors * GRID_CELLS`` on), for
    ``GridPosition.of``'s ``column_cells``."""
    return QuantileTable(
        base=np.concatenate([t.base for t in tables]),
        step=np.concatenate([t.step for t in tables]),
        minimum=np.concatenate([t.minimum for t in tables]),
        maximum=np.concatenate([t.maximum for t in tables]),
    )


@dataclass(frozen=True, slots=True)
class GridPosition:
    """Where latent values fall on the grid: flat cell index and fraction within the cell."""

    cell: npt.NDArray[np.intp]
    fraction: FloatArray

    @classmethod
    def of(
        cls, latent: FloatArray, column_cells: npt.NDArray[np.intp] | None = None
    ) -> GridPosition:
        """``column_cells``: per column (machine), cells to add (which of stacked tables)."""
        position = latent + GRID_LIMIT
        position *= _INV_CELL
        np.clip(position, 0.0, _LAST, out=position)
        # the position is not negative: truncating it gives the cell, exact in float64
        cell = position.astype(np.intp)
        position -= cell
        cell += _sensor_cells(latent.shape[0])
        if column_cells is not None:
            cell += column_cells
        return cls(cell, position)

    def read(self, table: QuantileTable) -> FloatArray:
        """``base + fraction * step`` at each position."""
        cells = np.take(table.pairs, self.cell)
        out: FloatArray = cells.imag * self.fraction
        out += cells.real
        return out

    def columns(self, index: npt.NDArray[np.intp]) -> GridPosition:
        """The positions of columns ``index`` (C-ordered)."""
        return GridPosition(
            np.take(self.cell, index, axis=1), np.take(self.fraction, index, axis=1)
        )
