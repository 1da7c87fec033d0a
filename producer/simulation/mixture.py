"""A Gaussian mixture in the copula's latent space, fitted by EM and sized by BIC (numpy only).

The learned model reads every sensor through its own quantile function of a latent normal
value; the latent values of the reference's rows are their **normal scores**: per sensor, the
row's rank ``i`` (0-based) becomes ``Phi^-1((i + 0.5) / n)``. Tied readings (a discrete
sensor) are put in a random but fixed order within their tie, so a tie covers its interval of
latent values as the quantile function's flat part does.

``fit_mixture`` runs expectation-maximisation with full covariances (each regularised by
``REGULARISATION`` on its diagonal), started from k-means++ centres of a seeded generator, best
of ``STARTS`` starts. ``choose_mixture`` fits 1, 2, ... components and keeps the one with the
lowest Bayesian information criterion. Rows of a time series are not independent: the
criterion counts ``n_eff = n (1 - rho) / (1 + rho)`` rows (``rho`` the median lag-1 of the
scores), so a persistent recording does not buy components with its neighbouring rows.

scikit-learn's ``GaussianMixture`` does the same, but scikit-learn is only the optional
``fidelity`` extra; the few lines here keep it out of the producer's image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

REGULARISATION = 1e-3
"""Added to every component covariance's diagonal (the scores have unit variance)."""
STARTS = 2
MAX_ITERATIONS = 200
TOLERANCE = 1e-4
"""EM stops when the mean log-likelihood per row improves by less."""
ROWS_PER_PARAMETER = 3
"""A mixture is tried only when the effective rows are at least this many per parameter."""
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True, eq=False)
class Mixture:
    """``weights[k]``, ``means[k]`` and ``covariances[k]`` of ``K`` components."""

    weights: FloatArray
    means: FloatArray
    """Shape (K, sensors)."""
    covariances: FloatArray
    """Shape (K, sensors, sensors)."""
    log_likelihood: float
    """Sum over the rows it was fitted to."""

    @property
    def components(self) -> int:
        return len(self.weights)

    @property
    def parameters(self) -> int:
        return parameter_count(self.components, self.means.shape[1])

    def log_densities(self, scores: FloatArray) -> FloatArray:
        """``log(weight_k) + log N(row; mean_k, cov_k)``, shape (rows, K)."""
        return _weighted_log_densities(scores, self.weights, self.means, self.covariances)

    def assign(self, scores: FloatArray) -> IntArray:
        """The most probable component of each row."""
        labels: IntArray = np.argmax(self.log_densities(scores), axis=1).astype(np.int64)
        return labels


def parameter_count(components: int, sensors: int) -> int:
    return components * (sensors + sensors * (sensors + 1) // 2) + components - 1


def rank_probabilities(values: FloatArray, seed: int = 0) -> FloatArray:
    """Per column, ``(rank + 0.5) / n`` of each row; ties in a fixed random order."""
    rows, sensors = values.shape
    positions = (np.arange(rows) + 0.5) / rows
    rng = np.random.default_rng(seed)
    probabilities = np.empty((rows, sensors))
    for j in range(sensors):
        order = np.lexsort(np.stack([rng.random(rows), values[:, j]]))
        probabilities[order, j] = positions
    return probabilities


_ERF = np.frompyfunc(math.erf, 1, 1)
_INV_CDF = np.frompyfunc(NormalDist().inv_cdf, 1, 1)


def normal_cdf(values: FloatArray) -> FloatArray:
    """``Phi`` elementwise (``math.erf``: the same bits on every CPU)."""
    erf = np.asarray(_ERF(values / math.sqrt(2.0)), dtype=np.float64)
    out: FloatArray = 0.5 * (1.0 + erf)
    return out


def normal_quantile(probabilities: FloatArray) -> FloatArray:
    out: FloatArray = np.asarray(_INV_CDF(probabilities), dtype=np.float64)
    return out


def marginal_cdf(mixture: Mixture, sensor: int, points: FloatArray) -> FloatArray:
    """The mixture's marginal distribution function of ``sensor`` at ``points``."""
    spread = np.sqrt(mixture.covariances[:, sensor, sensor])
    total = np.zeros(len(points))
    for k in range(mixture.components):
        total += mixture.weights[k] * normal_cdf((points - mixture.means[k, sensor]) / spread[k])
    return total


def _marginal_log_density(mixture: Mixture, latent: FloatArray) -> FloatArray:
    """Per row, the sum over sensors of the log marginal densities of the mixture."""
    spread = np.sqrt(np.diagonal(mixture.covariances, axis1=1, axis2=2))  # (K, sensors)
    density = np.zeros(latent.shape)
    for k in range(mixture.components):
        standard = (latent - mixture.means[k]) / spread[k]
        density += mixture.weights[k] * np.exp(-0.5 * standard**2) / spread[k]
    total: FloatArray = np.log(density / math.sqrt(2.0 * math.pi)).sum(axis=1)
    return total


_INVERSION_POINTS = 4001


def latent_values(mixture: Mixture, probabilities: FloatArray) -> FloatArray:
    """Rows on the mixture's own marginal scale: per sensor ``F_j^-1(p)`` (``F_j`` the
    mixture's marginal distribution function, inverted on a fine grid)."""
    latent = np.empty(probabilities.shape)
    spread = np.sqrt(np.diagonal(mixture.covariances, axis1=1, axis2=2))
    for j in range(probabilities.shape[1]):
        low = float((mixture.means[:, j] - 7.0 * spread[:, j]).min())
        high = float((mixture.means[:, j] + 7.0 * spread[:, j]).max())
        points = np.linspace(low, high, _INVERSION_POINTS)
        cdf = np.maximum.accumulate(marginal_cdf(mixture, j, points))
        latent[:, j] = np.interp(probabilities[:, j], cdf, points)
    return latent


def _weighted_log_densities(
    scores: FloatArray, weights: FloatArray, means: FloatArray, covariances: FloatArray
) -> FloatArray:
    rows, sensors = scores.shape
    out = np.empty((rows, len(weights)))
    for k in range(len(weights)):
        cholesky = np.linalg.cholesky(covariances[k])
        solved = (scores - means[k]) @ np.linalg.inv(cholesky).T
        half_log_det = float(np.log(np.diag(cholesky)).sum())
        out[:, k] = -0.5 * (solved**2).sum(axis=1) - half_log_det - 0.5 * sensors * _LOG_2PI
        out[:, k] += math.log(max(float(weights[k]), 1e-300))
    return out


def _log_normaliser(log_densities: FloatArray) -> FloatArray:
    top = log_densities.max(axis=1, keepdims=True)
    total: FloatArray = top[:, 0] + np.log(np.exp(log_densities - top).sum(axis=1))
    return total


def _kmeans_plus_plus(scores: FloatArray, components: int, rng: np.random.Generator) -> IntArray:
    """Labels of rows to their nearest of ``components`` k-means++ centres (3 Lloyd rounds)."""
    centres = [scores[rng.integers(len(scores))]]
    for _ in range(1, components):
        distance = np.min([((scores - c) ** 2).sum(axis=1) for c in centres], axis=0)
        total = distance.sum()
        pick = rng.choice(len(scores), p=distance / total) if total > 0 else rng.integers(0, 1)
        centres.append(scores[pick])
    centre = np.array(centres)
    labels = np.zeros(len(scores), dtype=np.int64)
    for _ in range(3):
        distance = ((scores[:, None, :] - centre[None, :, :]) ** 2).sum(axis=2)
        labels = np.argmin(distance, axis=1).astype(np.int64)
        for k in range(components):
            members = scores[labels == k]
            if len(members):
                centre[k] = members.mean(axis=0)
    return labels


def _maximise(scores: FloatArray, responsibility: FloatArray) -> tuple[FloatArray, ...]:
    sensors = scores.shape[1]
    mass = responsibility.sum(axis=0) + 1e-12
    weights = mass / mass.sum()
    means = (responsibility.T @ scores) / mass[:, None]
    covariances = np.empty((len(mass), sensors, sensors))
    for k in range(len(mass)):
        centred = scores - means[k]
        covariances[k] = (responsibility[:, k, None] * centred).T @ centred / mass[k]
        covariances[k] = (covariances[k] + covariances[k].T) / 2.0
        covariances[k] += REGULARISATION * np.eye(sensors)
    return weights, means, covariances


def fit_mixture(
    scores: FloatArray, components: int, seed: int = 0, start: Mixture | None = None
) -> Mixture:
    """EM with ``components`` full-covariance components (module docstring), from k-means++
    starts, or from ``start``'s parameters."""
    rows = len(scores)
    best: Mixture | None = None
    for attempt in range(1 if start is not None or components == 1 else STARTS):
        if start is not None:
            weights, means, covariances = start.weights, start.means, start.covariances
        else:
            rng = np.random.default_rng([seed, components, attempt])
            labels = _kmeans_plus_plus(scores, components, rng)
            responsibility = np.zeros((rows, components))
            responsibility[np.arange(rows), labels] = 1.0
            weights, means, covariances = _maximise(scores, responsibility)
        previous = -np.inf
        total = -np.inf
        for _ in range(MAX_ITERATIONS):
            log_densities = _weighted_log_densities(scores, weights, means, covariances)
            normaliser = _log_normaliser(log_densities)
            total = float(normaliser.sum())
            if total / rows - previous < TOLERANCE:
                break
            previous = total / rows
            responsibility = np.exp(log_densities - normaliser[:, None])
            weights, means, covariances = _maximise(scores, responsibility)
        fitted = Mixture(weights, means, covariances, total)
        if best is None or fitted.log_likelihood > best.log_likelihood:
            best = fitted
    assert best is not None
    # components ordered by weight, heaviest first (a stable name for each in reports)
    order = np.argsort(-best.weights, kind="stable")
    return Mixture(
        best.weights[order], best.means[order], best.covariances[order], best.log_likelihood
    )


COPULA_ROUNDS = 2
"""Rounds of putting the rows on the mixture's own marginal scale and fitting again."""


def fit_copula_mixture(probabilities: FloatArray, components: int) -> tuple[Mixture, FloatArray]:
    """A Gaussian mixture copula: the mixture, fitted to the rows on its own marginal scale
    (``latent_values``), and those latent rows. Its ``log_likelihood`` is the copula's: the
    mixture's log density minus its marginal log densities, summed over the rows."""
    latent = normal_quantile(probabilities)
    mixture = fit_mixture(latent, components)
    for _ in range(COPULA_ROUNDS if components > 1 else 0):
        latent = latent_values(mixture, probabilities)
        mixture = fit_mixture(latent, components, start=mixture)
    copula = float(
        (
            _log_normaliser(mixture.log_densities(latent)) - _marginal_log_density(mixture, latent)
        ).sum()
    )
    fitted = Mixture(mixture.weights, mixture.means, mixture.covariances, copula)
    return fitted, latent


def effective_rows(rows: int, lag1: float) -> float:
    """Rows of a persistent series worth as much as independent ones (module docstring)."""
    rho = min(max(lag1, 0.0), 0.99)
    return max(rows * (1.0 - rho) / (1.0 + rho), min(rows, 2.0))


def information_criterion(mixture: Mixture, rows: int, effective: float) -> float:
    """BIC with the log-likelihood and the sample size taken at ``effective`` rows."""
    scale = effective / rows
    return -2.0 * scale * mixture.log_likelihood + mixture.parameters * math.log(effective)


@dataclass(frozen=True, eq=False)
class Choice:
    mixture: Mixture
    criteria: tuple[tuple[int, float], ...]
    """(components, criterion at the effective rows) of every mixture fitted, lower is better."""
    effective_rows: float
    candidates: tuple[Mixture, ...] = ()
    """The mixtures fitted, in the order of ``criteria``."""


COMPONENT_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24)
"""The numbers of components tried, in order: each while one component is a large share of the
law, then sparser, as one more changes the fit less."""
PATIENCE = 2
"""A search stops after this many steps in a row that do not improve its criterion."""


def _search(
    probabilities: FloatArray,
    *,
    most: int,
    rows_for_limit: float,
    criterion: Callable[[Mixture], float],
    fitted: dict[int, Mixture],
) -> None:
    """Fits (into ``fitted``, reusing what it holds) the steps of ``COMPONENT_STEPS`` up to
    ``most`` while each has ``ROWS_PER_PARAMETER`` of ``rows_for_limit`` per parameter, until
    ``PATIENCE`` steps in a row do not improve ``criterion``."""
    sensors = probabilities.shape[1]
    best, worse = math.inf, 0
    for k in COMPONENT_STEPS:
        if k > most or worse >= PATIENCE:
            return
        if k > 1 and rows_for_limit < ROWS_PER_PARAMETER * parameter_count(k, sensors):
            return
        if k not in fitted:
            fitted[k] = fit_copula_mixture(probabilities, k)[0]
        value = criterion(fitted[k])
        best, worse = (value, 0) if value < best else (best, worse + 1)


def choose_mixture(
    probabilities: FloatArray, *, most: int, effective: float, components: int | None = None
) -> Choice:
    """The mixture of at most ``most`` components with the lowest criterion at ``effective``
    rows (``components`` set: that many)."""
    rows = len(probabilities)
    if components is not None:
        mixture = fit_copula_mixture(probabilities, components)[0]
        value = information_criterion(mixture, rows, effective)
        return Choice(mixture, ((components, value),), effective, (mixture,))
    fitted: dict[int, Mixture] = {}
    _search(
        probabilities,
        most=most,
        rows_for_limit=effective,
        criterion=lambda m: information_criterion(m, rows, effective),
        fitted=fitted,
    )
    criteria = tuple((k, information_criterion(m, rows, effective)) for k, m in fitted.items())
    chosen = min(criteria, key=lambda pair: pair[1])[0]
    return Choice(fitted[chosen], criteria, effective, tuple(fitted.values()))


def finer_mixtures(probabilities: FloatArray, choice: Choice, *, most: int) -> list[Mixture]:
    """The mixtures to try when the chosen one's regimes switch too fast to keep the
    reference's lag-1: those of the criterion over all the rows (searched on from the ones
    ``choice`` fitted), best first, all but the chosen one. Counting every row asks for more
    components: a finer mixture resolves the signal's fast structure into nearby components,
    each switch a small step."""
    rows = len(probabilities)
    fitted = {m.components: m for m in choice.candidates}
    _search(
        probabilities,
        most=most,
        rows_for_limit=rows,
        criterion=lambda m: information_criterion(m, rows, rows),
        fitted=fitted,
    )
    others = [m for m in fitted.values() if m is not choice.mixture]
    return sorted(others, key=lambda m: information_criterion(m, rows, rows))


STATIONARY_ROUNDS = 1000
STATIONARY_TOLERANCE = 1e-12
"""``with_stationary`` stops when no row or column of the pair law is off by more."""


def stationary_distribution(transition: FloatArray) -> FloatArray:
    """The distribution a chain with ``transition`` keeps (its left eigenvector of 1)."""
    eigenvalues, vectors = np.linalg.eig(transition.T)
    vector = np.abs(np.real(vectors[:, np.argmin(np.abs(eigenvalues - 1.0))]))
    return np.asarray(vector / vector.sum(), dtype=np.float64)


def with_stationary(transition: FloatArray, weights: FloatArray) -> FloatArray:
    """The transition matrix closest to ``transition`` whose stationary distribution is
    ``weights``.

    Baum-Welch's chain settles in its own stationary distribution, which is not the mixture's
    weights (it assigns rows by their neighbours too); a fleet started in the weights would
    drift to it, and every marginal, tabulated with the weights, with it. The law of a step's
    (origin, destination) pair is scaled, rows and columns in turn (Sinkhorn), until both of its
    marginals are ``weights``: the pair law of that form nearest to the chain's in
    Kullback-Leibler divergence, so transitions the chain never makes stay impossible."""
    pairs = stationary_distribution(transition)[:, None] * transition
    for _ in range(STATIONARY_ROUNDS):
        pairs *= (weights / pairs.sum(axis=1))[:, None]
        pairs *= weights / pairs.sum(axis=0)
        if np.abs(pairs.sum(axis=1) - weights).max() < STATIONARY_TOLERANCE:
            break
    return np.asarray(pairs / pairs.sum(axis=1, keepdims=True), dtype=np.float64)


HIDDEN_MARKOV_ROUNDS = 20
HIDDEN_MARKOV_TOLERANCE = 1e-4
"""Baum-Welch stops when no transition probability moves by more in a round."""


def _chains(linked: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Row index of each (chain, position), -1 past a chain's end; chains are runs of rows each
    linked to the one before."""
    starts = np.flatnonzero(~linked)
    ends = np.append(starts[1:], len(linked))
    length = int((ends - starts).max())
    index = starts[:, None] + np.arange(length)[None, :]
    index = np.where(index < ends[:, None], index, -1)
    return index.astype(np.int64), (ends - starts).astype(np.int64)


def hidden_markov_transition(
    log_densities: FloatArray, linked: npt.NDArray[np.bool_], start: FloatArray
) -> FloatArray:
    """The transition matrix of a hidden Markov chain over the components, the emissions held
    at the mixture's (``log_densities``: per row, ``log N(row; component)``), by Baum-Welch
    from ``start``. ``linked[i]``: row ``i`` follows row ``i - 1`` (one step apart). Rows
    are run as chains side by side, so the loop is over positions in a chain, not rows."""
    emission = np.exp(log_densities - log_densities.max(axis=1, keepdims=True))
    index, lengths = _chains(linked)
    chains, length = index.shape
    components = emission.shape[1]
    padded = np.ones((chains, length, components))
    present = index >= 0
    padded[present] = emission[index[present]]
    transition = start.copy()
    weights = np.full(components, 1.0 / components)
    for _ in range(HIDDEN_MARKOV_ROUNDS):
        forward = np.empty((chains, length, components))
        belief = weights * padded[:, 0]
        forward[:, 0] = belief / belief.sum(axis=1, keepdims=True)
        for t in range(1, length):
            belief = (forward[:, t - 1] @ transition) * padded[:, t]
            forward[:, t] = belief / belief.sum(axis=1, keepdims=True)
        backward = np.ones((chains, length, components))
        counts = np.zeros((components, components))
        for t in range(length - 2, -1, -1):
            following = padded[:, t + 1] * backward[:, t + 1]
            message = following @ transition.T
            backward[:, t] = message / message.sum(axis=1, keepdims=True)
            joint = forward[:, t, :, None] * transition[None] * following[:, None, :]
            joint /= joint.sum(axis=(1, 2), keepdims=True)
            counts += joint[t + 1 < lengths].sum(axis=0)
        posterior = forward[:, 0] * backward[:, 0]
        weights = (posterior / posterior.sum(axis=1, keepdims=True)).mean(axis=0)
        counts += weights[None, :]  # one pseudo-row per origin, spread by weight
        moved = transition
        transition = counts / counts.sum(axis=1, keepdims=True)
        if np.abs(transition - moved).max() < HIDDEN_MARKOV_TOLERANCE:
            break
    return transition
