"""Operating regimes and machine differences of the learned model (pure numpy, no I/O).

Fitted to the reference's normal rows (``mixture``): a Gaussian mixture copula whose number of
components (regimes) the information criterion chooses; one component is the learned model
without regimes, exactly. With ``K > 1`` components each machine has

* a **regime** ``r``, a Markov chain: its transition matrix per reference step is counted from
  consecutive normal rows of a group (each row's most probable component; a pseudo-count of one
  row per origin spread over the regimes by weight, refined by Baum-Welch and scaled so that
  its stationary distribution is the mixture's weights) when the reference is a time series, and
  otherwise stays in its regime with probability ``1 - 1/DEFAULT_DWELL_CYCLES`` per cycle and
  else draws one by weight (no time order, no dwell to learn; ``DEFAULT_DWELL_CYCLES`` is five
  times the default persistence's correlation time, so regimes change more slowly than the
  readings move within one). A cycle applies the transition to the power of the reference steps
  per cycle, as the latent dynamics do. ``SIMULATION_PERSISTENCE=rho`` sets the regimes'
  persistence too: stay with chance ``rho``, else draw one by weight (``rho = 0``: independent
  readings every cycle, as without regimes);
* a persistent **offset** ``o ~ N(0, T)`` in latent space (``machine_offsets``): with at least
  ``MIN_OFFSET_GROUPS`` groups (machines or recordings), ``T`` is the between-group covariance
  of the rows' deviations from their regime's mean, less what a group's own noise explains (the
  one-way analysis-of-variance estimate, its within-group part inflated by each sensor's lag-1
  as a persistent series needs), kept to at most ``MAX_OFFSET_SHARE`` of any regime's variance.
  Without groups there is none: rows of one unnamed source give no evidence of how machines
  differ, and an invented offset would take variance from each machine's own movement;
* a whitened state ``y ~ N(0, I)``, persistent in time: ``y <- B y + C eps`` with
  ``C C^T = I - B B^T``, ``B`` the within-regime lag-1 of the reference's time series
  (consecutive rows of one regime and group: ``W_k^-1 (G_k - T) W_k^-T`` pooled, where
  ``G_k`` is their lag-1 cross-covariance), ``rho I`` with ``SIMULATION_PERSISTENCE``, else
  ``DEFAULT_PERSISTENCE I``.

The latent value is ``z = mu_r + o + W_r y`` with ``W_r W_r^T = Sigma_r - T``: at every cycle the
fleet's latent law is the mixture (regimes in their stationary weights), and a sensor's reading
is its reference quantile at ``F_j(z_j)``, ``F_j`` the mixture's marginal distribution function
(tabulated with the latent grid, so reading it costs what the model without regimes does).

Where the reference is a time series whose extremes do not persist (spikes), what ``y`` emits
replaces its excursions beyond a limit with fresh draws from the same tail (``isolated_extremes``,
fitted with a short stream at the reference's step): the law of every cycle stays the one above.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from domain.simulation_model import DEFAULT_PERSISTENCE, MAX_REGIMES
from producer.simulation.dynamics import (
    MAX_GAIN,
    consecutive_pairs,
    matrix_power,
    steps_per_cycle,
)
from producer.simulation.isolated_extremes import IsolatedExtremes, calibrated
from producer.simulation.learned_model import (
    LATENT_GRID,
    GridPosition,
    QuantileTable,
    quantile_grid,
    rounded,
)
from producer.simulation.machine_offsets import lag1, offset_covariance
from producer.simulation.mixture import (
    Choice,
    Mixture,
    choose_mixture,
    effective_rows,
    finer_mixtures,
    hidden_markov_transition,
    latent_values,
    marginal_cdf,
    normal_cdf,
    normal_quantile,
    rank_probabilities,
    stationary_distribution,
    with_stationary,
)
from producer.simulation.randomness import normals, uniforms
from producer.simulation.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

DEFAULT_DWELL_CYCLES = 100
_MIN_PAIRS = 10


@dataclass(frozen=True, eq=False)
class Regimes:
    """The regimes of a learned engine for its cycle's interval (module docstring)."""

    choice: Choice
    weights: FloatArray
    """Stationary weight of each regime, shape (K,)."""
    means: FloatArray
    """Latent mean of each regime, shape (K, sensors)."""
    within: FloatArray
    """``W_k``, lower triangular, shape (K, sensors, sensors)."""
    offset: FloatArray | None
    """Lower-triangular ``T^(1/2)`` of the machine offsets (None: no offsets)."""
    transition: FloatArray
    """Regime transition per cycle, shape (K, K), rows summing to 1."""
    dwell_cycles: FloatArray
    """Mean cycles a regime lasts once entered."""
    dwell_source: str
    offset_source: str
    persistence: float | None
    """Set: ``B = persistence I``; None: ``step``."""
    step: FloatArray | None
    """``B^k`` for one cycle."""
    innovation: FloatArray | None
    """``C``, lower triangular, with ``C C^T = I - B^k B^k^T``."""
    table: QuantileTable
    """Each sensor's reading at latent value ``z``: its quantile at ``F_j(z)``."""
    scores: QuantileTable
    """Each sensor's normal score at latent value ``z``: ``Phi^-1(F_j(z))`` (what a failure
    type's dependence is applied to)."""
    seconds_per_step: float | None
    """The reference's median step in seconds (None: no time order)."""
    rejected: tuple[int, ...] = ()
    """Numbers of components the criterion preferred whose regimes came and went too fast to
    keep the reference's lag-1 (``fit_regimes``)."""
    extremes: IsolatedExtremes | None = None
    """Components of ``y`` whose excursions beyond a limit are fresh draws every cycle
    (``isolated_extremes``); None: none."""

    @property
    def components(self) -> int:
        return len(self.weights)

    @property
    def offset_share(self) -> FloatArray:
        """Per sensor, the offsets' share of the latent variance."""
        if self.offset is None:
            return np.zeros(self.means.shape[1])
        between = np.diag(self.offset @ self.offset.T)
        return np.asarray(between / self._variance(), dtype=np.float64)

    def _variance(self) -> FloatArray:
        mean = self.weights @ self.means
        spread = ((self.means - mean) ** 2 * self.weights[:, None]).sum(axis=0)
        within = sum(w * np.diag(c @ c.T) for w, c in zip(self.weights, self.within, strict=True))
        offset = 0.0 if self.offset is None else np.diag(self.offset @ self.offset.T)
        return np.asarray(spread + within + offset, dtype=np.float64)

    def within_lag1(self) -> FloatArray:
        """Per sensor, the lag-1 correlation of one cycle within a regime (offsets and regime
        means aside): what thinning a stream to nearly independent readings goes by."""
        within = sum(w * c @ c.T for w, c in zip(self.weights, self.within, strict=True))
        if self.step is None:
            return np.full(self.means.shape[1], self.persistence or 0.0)
        lagged = sum(
            w * c @ self.step @ c.T for w, c in zip(self.weights, self.within, strict=True)
        )
        return np.asarray(np.diag(lagged) / np.diag(within), dtype=np.float64)


def _transition_power(transition: FloatArray, steps: float) -> FloatArray:
    if float(steps).is_integer():
        power = np.linalg.matrix_power(transition, int(steps))
    else:
        power = np.clip(matrix_power(transition, steps), 0.0, None)
    return np.asarray(power / power.sum(axis=1, keepdims=True), dtype=np.float64)


def _counted_transition(
    labels: IntArray, pairs: tuple[IntArray, IntArray], weights: FloatArray
) -> FloatArray:
    previous, after = pairs
    components = len(weights)
    counts = np.zeros((components, components))
    np.add.at(counts, (labels[previous], labels[after]), 1.0)
    counts += weights[None, :]
    return np.asarray(counts / counts.sum(axis=1, keepdims=True), dtype=np.float64)


def _calibrated_tables(values: FloatArray, mixture: Mixture) -> tuple[QuantileTable, ...]:
    """The readings and the normal scores at the latent grid's points (``Regimes``)."""
    sensors = values.shape[1]
    probabilities = [marginal_cdf(mixture, j, LATENT_GRID) for j in range(sensors)]
    readings = np.stack([quantile_grid(values[:, j], at=probabilities[j]) for j in range(sensors)])
    limit = float(LATENT_GRID[-1])
    inside = [np.clip(p, normal_cdf(np.array([-limit]))[0], normal_cdf(np.array([limit]))[0])
              for p in probabilities]  # fmt: skip
    scores = np.stack([normal_quantile(p) for p in inside])
    return QuantileTable.from_grid(rounded(readings)), QuantileTable.from_grid(rounded(scores))


@dataclass(frozen=True, eq=False)
class _Fit:
    """The mixture and the reference's rows on its latent scale."""

    profile: ReferenceProfile
    choice: Choice
    latent: FloatArray
    labels: IntArray
    """Each normal row's most probable regime."""
    pairs: tuple[IntArray, IntArray]
    """Consecutive normal rows (``dynamics.consecutive_pairs``), empty without time order."""
    timed: bool
    """Enough consecutive rows to learn from."""

    @property
    def mixture(self) -> Mixture:
        return self.choice.mixture


def _candidate_fits(profile: ReferenceProfile, components: int | None) -> Iterator[_Fit]:
    """The fits to try, lazily: the criterion's choice, then (``fit_regimes`` asking for more)
    the finer mixtures (``mixture.finer_mixtures``)."""
    values = profile.normal_values
    probabilities = rank_probabilities(values)
    series, normal = profile.series, profile.normal_mask
    pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if series is not None and normal is not None:
        pairs = consecutive_pairs(series, normal)
    timed = len(pairs[0]) >= max(2 * values.shape[1], _MIN_PAIRS) and series is not None
    start = normal_quantile(probabilities)
    persistence = float(np.median(lag1(start, pairs))) if timed else 0.0
    choice = choose_mixture(
        probabilities,
        most=MAX_REGIMES,
        effective=effective_rows(len(values), persistence),
        components=components,
    )

    def fit_of(mixture: Mixture) -> _Fit:
        latent = latent_values(mixture, probabilities) if mixture.components > 1 else start
        chosen = Choice(mixture, choice.criteria, choice.effective_rows, choice.candidates)
        return _Fit(profile, chosen, latent, mixture.assign(latent), pairs, timed)

    yield fit_of(choice.mixture)
    if components is None:
        for mixture in finer_mixtures(probabilities, choice, most=MAX_REGIMES):
            yield fit_of(mixture)


def _chain(
    fit: _Fit, interval_ms: int | None, persistence: float | None
) -> tuple[FloatArray, FloatArray | None, float, str]:
    """The regimes' transition per cycle and per reference step (None: no time order or an
    explicit persistence), reference steps per cycle and where the transition came from."""
    mixture, series = fit.mixture, fit.profile.series
    steps = 1.0
    if series is not None and series.median_step is not None:
        steps = steps_per_cycle(series.median_step, interval_ms)
    if persistence is not None:
        # stay with chance rho, else draw by weight: each regime's indicator has lag-1 rho
        transition = persistence * np.eye(mixture.components) + (1.0 - persistence) * np.tile(
            mixture.weights, (mixture.components, 1)
        )
        return transition, None, steps, "SIMULATION_PERSISTENCE (stay with that chance)"
    if not fit.timed or series is None or series.median_step is None:
        leave = 1.0 / DEFAULT_DWELL_CYCLES
        transition = (1.0 - leave) * np.eye(mixture.components) + leave * mixture.weights
        source = f"default (no time order): {DEFAULT_DWELL_CYCLES} cycles between draws"
        return transition, None, 1.0, source
    if mixture.components == 1:
        return np.ones((1, 1)), np.ones((1, 1)), steps, "one regime"
    counted = _counted_transition(fit.labels, fit.pairs, mixture.weights)
    linked = np.zeros(len(fit.latent), dtype=np.bool_)
    linked[fit.pairs[1]] = True
    emissions = mixture.log_densities(fit.latent) - np.log(mixture.weights)
    per_step = with_stationary(
        hidden_markov_transition(emissions, linked, counted), mixture.weights
    )
    source = f"learned from {len(fit.pairs[0])} consecutive normal rows"
    return _transition_power(per_step, steps), per_step, steps, source


def _offsets(fit: _Fit) -> tuple[FloatArray, str]:
    """The machine offsets' covariance ``T`` (zero: none) and where it came from."""
    series, normal = fit.profile.series, fit.profile.normal_mask
    sensors = fit.latent.shape[1]
    if series is None or normal is None or series.group_count < 2:
        none = np.zeros((sensors, sensors))
        return none, "none: no GROUP_COLUMN (rows of one source show no machine differences)"
    return offset_covariance(
        fit.latent - fit.mixture.means[fit.labels],
        series.groups[normal],
        fit.pairs if fit.timed else None,
        fit.mixture.covariances,
    )


def fit_regimes(
    profile: ReferenceProfile,
    *,
    components: int | None,
    persistence: float | None,
    interval_ms: int | None,
) -> Regimes:
    """The regimes of ``profile``'s normal rows (``components``: None chooses by the
    criterion), for a cycle of ``interval_ms`` (module docstring).

    Where the reference is a time series, the stream must keep its lag-1: where regimes come
    and go so fast that a sensor's lag-1 in a stream at the reference's step falls short of the
    reference's by more than ``LAG1_SHORTFALL`` whatever the within-regime dynamics, the
    components are not operating regimes but the clusters of the signal's own fast structure.
    Finer mixtures are tried then (``mixture.finer_mixtures``), and fewer components (one
    always keeps the lag-1); if none keeps it, the last tried is used."""
    rejected: list[int] = []
    tried: tuple[Regimes, _ReferenceStepStream, FloatArray] | None = None
    for fit in _candidate_fits(profile, components):
        regimes, stream = _regimes_of(fit, persistence=persistence, interval_ms=interval_ms)
        if stream is None:
            return replace(regimes, rejected=tuple(rejected))
        reference = lag1(profile.normal_values, fit.pairs)
        tried = (regimes, stream, reference)
        if fit.mixture.components == 1 or _keeps_lag1(stream.lag1(None), reference):
            break
        rejected.append(fit.mixture.components)
    else:
        rejected.pop()  # none kept the lag-1: the last tried after all
    assert tried is not None
    regimes, stream, reference = tried
    extremes = calibrated(reference, stream.lag1)
    return replace(regimes, rejected=tuple(rejected), extremes=extremes)


LAG1_SHORTFALL = 0.09
"""How far below the reference's lag-1 a sensor's may fall in the stream at the reference's step
before its regimes are passed over (just under the fidelity bound of 0.1)."""


def _keeps_lag1(stream: FloatArray, reference: FloatArray) -> bool:
    """No sensor's lag-1 in the stream falls short of the reference's by more than
    ``LAG1_SHORTFALL`` (one above it is isolated extremes' to bring down)."""
    shortfall = np.nan_to_num(reference - stream, nan=0.0)
    return bool(shortfall.max() <= LAG1_SHORTFALL)


def _regimes_of(
    fit: _Fit, *, persistence: float | None, interval_ms: int | None
) -> tuple[Regimes, _ReferenceStepStream | None]:
    """The regimes of one mixture, whether the reference's lag-1 is within reach, and (learned
    dynamics) the stream at the reference's step that isolated extremes are fitted with."""
    profile = fit.profile
    mixture = fit.mixture
    sensors = fit.latent.shape[1]
    transition, per_step, steps, dwell_source = _chain(fit, interval_ms, persistence)
    series = profile.series
    seconds = None if per_step is None or series is None else series.median_step
    offset, offset_source = _offsets(fit)
    within = np.stack([np.linalg.cholesky(c - offset) for c in mixture.covariances])
    step = innovation = None
    table, scores = _calibrated_tables(profile.normal_values, mixture)
    offset_root = None
    if np.any(offset):
        offset_root = rounded(np.linalg.cholesky(offset + 1e-12 * np.eye(sensors)))
    stream = None
    if persistence is None and per_step is not None:
        fitted, _ = _within_transition(fit, per_step, within, offset)
        step = rounded(_bounded_power(fitted, steps))
        innovation = _innovation(step)
        stream = _ReferenceStepStream(
            per_step,
            means=rounded(mixture.means),
            within=rounded(within),
            offset_root=offset_root,
            step=rounded(fitted),
            table=table,
        )
    if step is None and persistence is None:
        persistence = DEFAULT_PERSISTENCE
    stay = np.clip(np.diag(transition), 0.0, 1.0 - 1e-12)
    return (
        Regimes(
            choice=fit.choice,
            weights=rounded(stationary_distribution(transition)),
            means=rounded(mixture.means),
            within=rounded(within),
            offset=offset_root,
            transition=rounded(transition),
            dwell_cycles=1.0 / (1.0 - stay),
            dwell_source=dwell_source,
            offset_source=offset_source,
            persistence=persistence if step is None else None,
            step=step,
            innovation=innovation,
            table=table,
            scores=scores,
            seconds_per_step=seconds,
        ),
        stream,
    )


def _innovation(step: FloatArray) -> FloatArray:
    """``C``, lower triangular, with ``C C^T = I - B B^T``."""
    inner = np.eye(len(step)) - step @ step.T
    return rounded(np.tril(np.linalg.cholesky((inner + inner.T) / 2.0)))


class _ReferenceStepStream:
    """A short stream of the regimes at the reference's own step, for the lag-1 of readings
    that ``isolated_extremes.calibrated`` fits the extremes' shares to. Its random numbers are
    fixed words of a counter stream, the same in every simulation (normals and uniforms as the
    engine makes them)."""

    STEPS = 600
    KEY = np.array([0x5E750451, 0x1507A7ED], dtype=np.uint64)

    def __init__(
        self,
        per_step: FloatArray,
        *,
        means: FloatArray,
        within: FloatArray,
        offset_root: FloatArray | None,
        step: FloatArray,
        table: QuantileTable,
    ) -> None:
        self._sensors = sensors = means.shape[1]
        self._chains = max(20, min(200, 4000 // sensors))
        self._cumulative = np.cumsum(per_step, axis=1)
        self._start = np.cumsum(stationary_distribution(per_step))
        self._means, self._within, self._offset_root = means, within, offset_root
        self._step, self._innovation, self._table = step, _innovation(step), table
        self._generator = np.random.Philox(key=self.KEY)

    def _words(self, count: int) -> UInt64Array:
        words: UInt64Array = self._generator.random_raw(count * self._chains)
        return words.reshape(count, self._chains)

    def _regimes(self, draws: FloatArray, cumulative: FloatArray) -> IntArray:
        chosen = (draws[:, None] >= cumulative).sum(axis=1)
        regimes: IntArray = np.minimum(chosen, len(self._start) - 1).astype(np.int64)
        return regimes

    def lag1(self, extremes: IsolatedExtremes | None) -> FloatArray:
        """Per sensor, the lag-1 of the stream's readings with ``extremes``."""
        self._generator = np.random.Philox(key=self.KEY)
        sensors = self._sensors
        latent = normals(self._words(sensors))
        regime = self._regimes(uniforms(self._words(1)[0]), self._start)
        offsets = np.zeros((sensors, self._chains))
        if self._offset_root is not None:
            offsets = self._offset_root @ normals(self._words(sensors))
        readings = np.empty((self.STEPS, sensors, self._chains))
        for t in range(self.STEPS):
            noise, moves = normals(self._words(sensors)), uniforms(self._words(1)[0])
            extra = np.ascontiguousarray(self._words(sensors).T)
            if t:
                latent = self._step @ latent + self._innovation @ noise
                regime = self._regimes(moves, self._cumulative[regime])
            emitted = latent if extremes is None else extremes.emit(latent, extra)
            value = self._means[regime].T.copy()
            for k, within in enumerate(self._within):
                mine = regime == k
                value[:, mine] += within @ emitted[:, mine]
            value += offsets
            readings[t] = GridPosition.of(value).read(self._table)
        previous = readings[:-1] - readings[:-1].mean(axis=(0, 2), keepdims=True)
        after = readings[1:] - readings[1:].mean(axis=(0, 2), keepdims=True)
        products = (previous * after).sum(axis=(0, 2))
        scale = np.sqrt((previous**2).sum(axis=(0, 2)) * (after**2).sum(axis=(0, 2)))
        return np.asarray(products / np.where(scale > 0, scale, 1.0), dtype=np.float64)


def _within_transition(
    fit: _Fit, per_step: FloatArray, within: FloatArray, offset: FloatArray
) -> tuple[FloatArray, float]:
    """The whitened transition ``B`` per reference step that gives the stream the reference's
    lag-1 cross-covariance of latent values, regime moves and offsets included (module
    docstring), gain-bounded.

    With ``pi`` the regimes' weights and ``P`` their transition per step, the stream's lag-1
    cross-covariance is ``sum_ij pi_i P_ij [(mu_j - m)(mu_i - m)^T + W_j B W_i^T] + T``: linear
    in ``B``, solved by least squares (row-major ``vec(W_j B W_i^T) = (W_j kron W_i) vec(B)``).
    Returns ``B`` and the gain the solution needed."""
    previous, after = fit.pairs
    mixture, latent = fit.mixture, fit.latent
    weights = stationary_distribution(per_step)
    centre = weights @ mixture.means
    lagged = (latent[after] - centre).T @ (latent[previous] - centre) / len(previous)
    if mixture.components == 1:
        # one regime: W B W^T = G - T, solved directly (the system below is sensors^4 large)
        left = np.linalg.solve(within[0], lagged - offset)
        step = np.asarray(np.linalg.solve(within[0], left.T).T, dtype=np.float64)
        gain = float(np.linalg.norm(step, 2))
        return (step * (MAX_GAIN / gain) if gain > MAX_GAIN else step), gain
    terms = []
    for i in range(mixture.components):
        for j in range(mixture.components):
            share = weights[i] * per_step[i, j]
            lagged -= share * np.outer(mixture.means[j] - centre, mixture.means[i] - centre)
            terms.append((share, within[j], within[i]))
    lagged -= offset
    step = solve_regime_sum(terms, lagged)
    gain = float(np.linalg.norm(step, 2))
    return (step * (MAX_GAIN / gain) if gain > MAX_GAIN else step), gain


_DIRECT_MAX_SENSORS = 30
"""Up to this many sensors the linear system of ``B`` is solved as one matrix (``sensors^2``
unknowns: its least-squares solve costs ``sensors^6``); above, by conjugate gradients on
matrix products."""


def solve_regime_sum(
    terms: list[tuple[float, FloatArray, FloatArray]],
    target: FloatArray,
    *,
    direct_max: int = _DIRECT_MAX_SENSORS,
) -> FloatArray:
    """The least-squares ``B`` of ``sum_t share_t L_t B R_t^T = target``."""
    sensors = len(target)
    if sensors <= direct_max:
        system = sum(share * np.kron(left, right) for share, left, right in terms)
        solved = np.linalg.lstsq(system, target.ravel(), rcond=None)[0]
        return np.asarray(solved.reshape(sensors, sensors), dtype=np.float64)

    def apply(b: FloatArray) -> FloatArray:
        return np.asarray(sum(share * left @ b @ right.T for share, left, right in terms))

    def adjoint(r: FloatArray) -> FloatArray:
        return np.asarray(sum(share * left.T @ r @ right for share, left, right in terms))

    # conjugate gradients on the normal equations (CGNR)
    solution = np.zeros_like(target)
    residual = target.copy()
    gradient = adjoint(residual)
    direction = gradient.copy()
    norm = float(np.sum(gradient * gradient))
    floor = 1e-24 * max(norm, 1e-300)
    for _ in range(10 * sensors * sensors):
        if norm <= floor:
            break
        mapped = apply(direction)
        alpha = norm / float(np.sum(mapped * mapped))
        solution += alpha * direction
        residual -= alpha * mapped
        gradient = adjoint(residual)
        updated = float(np.sum(gradient * gradient))
        direction = gradient + (updated / norm) * direction
        norm = updated
    return solution


def _bounded_power(step: FloatArray, steps: float) -> FloatArray:
    power = matrix_power(step, steps)
    gain = float(np.linalg.norm(power, 2))
    return power * (MAX_GAIN / gain) if gain > MAX_GAIN else power


_CACHE: OrderedDict[tuple[object, ...], Regimes] = OrderedDict()
_CACHED = 8


def _content(profile: ReferenceProfile) -> str:
    """A digest of what the regimes are fitted from: the normal rows and their time order."""
    digest = hashlib.blake2b(np.ascontiguousarray(profile.normal_values).tobytes())
    if profile.series is not None and profile.normal_mask is not None:
        digest.update(np.ascontiguousarray(profile.series.times).tobytes())
        digest.update(np.ascontiguousarray(profile.series.groups).tobytes())
        digest.update(np.ascontiguousarray(profile.normal_mask).tobytes())
        digest.update(repr((profile.series.median_step, profile.series.group_count)).encode())
    return digest.hexdigest()


def regimes_for(
    profile: ReferenceProfile,
    *,
    components: int | None,
    persistence: float | None,
    interval_ms: int | None,
) -> Regimes:
    """``fit_regimes``, fitted once per reference rows and settings (the engines of a shard's
    segments, its configuration record and the ``profile`` command share it)."""
    key = (_content(profile), components, persistence, interval_ms)
    if key not in _CACHE:
        _CACHE[key] = fit_regimes(
            profile, components=components, persistence=persistence, interval_ms=interval_ms
        )
        while len(_CACHE) > _CACHED:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]
