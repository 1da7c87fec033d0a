"""How closely a simulated stream looks like its reference data (the ``fidelity`` command).

A seeded stream is simulated in memory and compared with the reference rows it was learned
from, on the numbers the learned model is accepted by (docs/simulation.md):

* per sensor, the two-sample Kolmogorov-Smirnov distance between healthy readings (after a
  burn-in, thinned to one reading per ``thin`` cycles per machine) and the normal rows;
* the largest gap between the two rank (Spearman) correlation matrices;
* per failure type, at full progress: each sensor's |mean difference| in units of the type's
  own std (the "signature gap");
* a per-class Gaussian classifier (QDA, covariances shrunk 10 % toward their diagonal, class
  priors from the training rows) trained on the stream and tested on the reference rows,
  against the same classifier's 5-fold cross-validation on the reference;
* the lag-1 autocorrelation of failing readings at full progress (median over types and
  sensors): a failure is a persistent process, not fresh noise every cycle;
* the classifier two-sample test on healthy readings and, where the reference is a time series,
  each sensor's lag-1 autocorrelation against the reference's (``two_sample``).

The stream runs at the reference's own interval (its median step), where the lag-1 of the two
is comparable. Healthy readings are thinned to one per ``thin`` cycles per machine; by default
``thin`` brings the strongest sensor's latent autocorrelation down to
``INDEPENDENT_AUTOCORRELATION`` (at least 25 cycles, and each machine keeps 5 readings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.simulation_model import FailureModel, SimulationModel
from producer.analysis.gaussian_classifier import (
    CV_FOLDS,
    GaussianClassifier,
    balanced_accuracy,
    cross_validated_accuracy,
    reference_rows,
)
from producer.analysis.two_sample import (
    INDEPENDENT_AUTOCORRELATION,
    INSTALL_HINT,
    TwoSampleTest,
    reference_lag1,
    two_sample_test,
)
from producer.simulation.engine import LearnedProcess, SimulationEngine
from producer.simulation.learned_model import spearman
from producer.simulation.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_THIN = 25
MIN_READINGS_PER_MACHINE = 5


@dataclass(frozen=True, slots=True)
class StreamSample:
    """What the fidelity numbers are computed from."""

    healthy: FloatArray
    """Healthy readings after burn-in, thinned: shape (readings, sensors)."""
    failing: tuple[FloatArray, ...]
    """Per failure type, readings at full progress after burn-in."""
    failing_pairs: tuple[tuple[FloatArray, FloatArray], ...]
    """Per type, readings at full progress and the same machine's next one, also at full
    progress: for the lag-1 autocorrelation."""
    healthy_lag1: FloatArray
    """Per sensor, the lag-1 autocorrelation of healthy readings (consecutive cycles of a
    machine, both healthy)."""
    thin: int


@dataclass(frozen=True, slots=True)
class FidelityReport:
    sensor_names: tuple[str, ...]
    failure_types: tuple[str, ...]
    ks: FloatArray
    """Per sensor."""
    reference_spearman: FloatArray
    stream_spearman: FloatArray
    signature_gap: FloatArray
    """Shape (types, sensors); NaN where the stream had no reading of the type."""
    cross_accuracy: float
    """Balanced accuracy, trained on the stream, tested on the reference."""
    reference_accuracy: float
    """Balanced accuracy of 5-fold cross-validation on the reference."""
    failing_lag1: FloatArray
    """Shape (types, sensors); NaN where undefined (a constant sensor, too few pairs)."""
    healthy_readings: int
    failing_readings: tuple[int, ...]
    stream_lag1: FloatArray
    """Per sensor, the lag-1 autocorrelation of healthy stream readings."""
    reference_lag1: FloatArray | None
    """Per sensor, the reference's (None: not a time series)."""
    two_sample: TwoSampleTest | None
    """None: not run (scikit-learn missing, or too few rows)."""

    @property
    def worst_lag1_gap(self) -> float:
        if self.reference_lag1 is None:
            return float("nan")
        gap = np.abs(self.stream_lag1 - self.reference_lag1)
        return float(np.nanmax(gap)) if np.isfinite(gap).any() else float("nan")

    @property
    def classifier_bound(self) -> float:
        """The AUC the stream is held to: ``classifier_auc``, or the real-vs-real floor plus
        ``classifier_margin`` for a reference whose halves a classifier tells apart."""
        floor = self.two_sample.floor if self.two_sample else 0.5
        return max(ACCEPTANCE["classifier_auc"], floor + ACCEPTANCE["classifier_margin"])

    @property
    def dependence_gap(self) -> float:
        return float(np.max(np.abs(self.stream_spearman - self.reference_spearman)))

    @property
    def worst_signature_gap(self) -> float:
        finite = self.signature_gap[np.isfinite(self.signature_gap)]
        return float(finite.max()) if finite.size else float("nan")

    def failed_checks(self) -> list[str]:
        """The acceptance bounds (``ACCEPTANCE``) this report misses, by name."""
        bound = ACCEPTANCE
        failed = []
        if not float(np.nanmax(self.ks)) <= bound["ks"]:
            failed.append("ks")
        if not self.dependence_gap <= bound["dependence_gap"]:
            failed.append("dependence_gap")
        if self.failure_types:
            if not self.worst_signature_gap <= bound["signature_gap"]:
                failed.append("signature_gap")
            if not self.cross_accuracy >= self.reference_accuracy - bound["accuracy_margin"]:
                failed.append("accuracy")
            if not self.median_failing_lag1 >= bound["failing_lag1"]:
                failed.append("failing_lag1")
        if self.reference_lag1 is not None and not self.worst_lag1_gap <= bound["lag1"]:
            failed.append("lag1")
        if self.two_sample is not None and not self.two_sample.auc <= self.classifier_bound:
            failed.append("classifier")
        return failed

    @property
    def median_failing_lag1(self) -> float:
        finite = self.failing_lag1[np.isfinite(self.failing_lag1)]
        return float(np.median(finite)) if finite.size else float("nan")


def simulate_sample(
    profile: ReferenceProfile,
    *,
    model: SimulationModel = SimulationModel.LEARNED,
    failures: FailureModel | None = None,
    persistence: float | None = None,
    machines: int = 200,
    cycles: int = 800,
    burn_in: int = 150,
    thin: int | None = None,
    seed: int = 1,
    regimes: int | None = None,
) -> StreamSample:
    """Simulate ``machines`` for ``cycles`` at the reference's interval and keep what the
    report needs (``thin``: None chooses it, module docstring; ``regimes``: the learned model's
    operating regimes, None: as the reference shows)."""
    engine = SimulationEngine(
        profile,
        failures or FailureModel(),
        first_machine=0,
        count=machines,
        seed=seed,
        simulation_name="fidelity",
        model=model,
        persistence=persistence,
        regimes=regimes,
    )
    if thin is None:
        thin = automatic_thinning(engine, cycles - burn_in)
    types = len(profile.failure_types)
    healthy: list[FloatArray] = []
    failing: list[list[FloatArray]] = [[] for _ in range(types)]
    pairs: list[list[tuple[FloatArray, FloatArray]]] = [[] for _ in range(types)]
    previous_full = np.zeros(machines, dtype=np.bool_)
    previous_type = np.zeros(machines, dtype=np.int64)
    previous_values = np.zeros((machines, profile.num_sensors))
    lag_pairs = LagMoments(profile.num_sensors)
    previous_healthy = np.zeros(machines, dtype=np.bool_)
    for cycle in range(cycles):
        result = engine.step()
        if cycle < burn_in:
            previous_healthy = ~result.failing
            previous_values = result.values
            continue
        values = result.values
        both_healthy = previous_healthy & ~result.failing
        lag_pairs.add(previous_values[both_healthy], values[both_healthy])
        previous_healthy = ~result.failing
        full = result.failing & (result.progress >= 1.0)
        if (cycle - burn_in) % thin == 0:
            healthy.append(values[~result.failing])
        for t in range(types):
            of_type = full & (result.failure_type == t)
            failing[t].append(values[of_type])
            both = of_type & previous_full & (previous_type == t)
            pairs[t].append((previous_values[both], values[both]))
        previous_full, previous_type, previous_values = full, result.failure_type, values
    empty = np.zeros((0, profile.num_sensors))
    return StreamSample(
        healthy=np.concatenate(healthy) if healthy else empty,
        failing=tuple(np.concatenate(f) if f else empty for f in failing),
        failing_pairs=tuple(
            (np.concatenate([a for a, _ in p]), np.concatenate([b for _, b in p]))
            if p
            else (empty, empty)
            for p in pairs
        ),
        healthy_lag1=lag_pairs.correlation(),
        thin=thin,
    )


def automatic_thinning(engine: SimulationEngine, cycles: int) -> int:
    """Cycles between kept healthy readings of a machine (module docstring)."""
    if not isinstance(engine.process, LearnedProcess):
        return MIN_THIN
    strongest = min(float(np.abs(engine.process.latent_lag1).max()), 0.9999)
    if strongest <= INDEPENDENT_AUTOCORRELATION:
        return MIN_THIN
    wanted = math.ceil(math.log(INDEPENDENT_AUTOCORRELATION) / math.log(strongest))
    return max(MIN_THIN, min(wanted, cycles // MIN_READINGS_PER_MACHINE))


class LagMoments:
    """Running sums of pairs of readings, for their per-sensor Pearson correlation."""

    def __init__(self, sensors: int) -> None:
        self.count = 0
        self.sums = np.zeros((5, sensors))
        """Sums of a, b, a*a, b*b, a*b."""

    def add(self, a: FloatArray, b: FloatArray) -> None:
        self.count += len(a)
        for row, term in enumerate((a, b, a * a, b * b, a * b)):
            self.sums[row] += term.sum(axis=0)

    def correlation(self) -> FloatArray:
        if self.count < 3:
            return np.full(self.sums.shape[1], np.nan)
        sa, sb, saa, sbb, sab = self.sums / self.count
        denominator = np.sqrt(np.maximum(saa - sa * sa, 0.0) * np.maximum(sbb - sb * sb, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            result: FloatArray = (sab - sa * sb) / denominator
        return np.where(denominator > 0, result, np.nan)


def ks_distance(a: FloatArray, b: FloatArray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    if a.size == 0 or b.size == 0:
        return float("nan")
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    gap = np.searchsorted(a, points, side="right") / a.size
    gap -= np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(gap)))


def _column_correlation(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pearson correlation of ``a[:, j]`` with ``b[:, j]`` per column (NaN if undefined)."""
    if len(a) < 3:
        return np.full(a.shape[1], np.nan)
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    denominator = np.sqrt((ca**2).sum(axis=0) * (cb**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = (ca * cb).sum(axis=0) / denominator
    return np.where(denominator > 0, result, np.nan)


def evaluate(
    profile: ReferenceProfile, sample: StreamSample, *, classifier: bool = True
) -> FidelityReport:
    """Compare a stream sample with the reference rows of ``profile`` (``classifier``: run the
    classifier two-sample test, the slowest part)."""
    normal = profile.normal_values
    sensors = profile.num_sensors
    types = len(profile.failure_types)
    ks = np.array([ks_distance(sample.healthy[:, j], normal[:, j]) for j in range(sensors)])
    gap = np.full((types, sensors), np.nan)
    lag1 = np.full((types, sensors), np.nan)
    for t, rows in enumerate(profile.failure_values):
        stream = sample.failing[t]
        if len(stream):
            scale = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(sensors)
            scale = np.where(scale > 0, scale, profile.std)
            scale = np.where(scale > 0, scale, 1.0)
            gap[t] = np.abs(stream.mean(axis=0) - rows.mean(axis=0)) / scale
        lag1[t] = _column_correlation(*sample.failing_pairs[t])

    features, labels = reference_rows(profile)
    classes = types + 1
    stream_features = np.concatenate([sample.healthy, *sample.failing])
    stream_labels = np.concatenate(
        [np.zeros(len(sample.healthy), dtype=np.int64)]
        + [np.full(len(f), t + 1, dtype=np.int64) for t, f in enumerate(sample.failing)]
    )
    cross = GaussianClassifier(stream_features, stream_labels, classes).predict(features)
    return FidelityReport(
        sensor_names=profile.sensor_names,
        failure_types=profile.failure_types,
        ks=ks,
        reference_spearman=spearman(normal),
        stream_spearman=spearman(sample.healthy),
        signature_gap=gap,
        cross_accuracy=balanced_accuracy(labels, cross),
        reference_accuracy=cross_validated_accuracy(features, labels, classes),
        failing_lag1=lag1,
        healthy_readings=len(sample.healthy),
        failing_readings=tuple(len(f) for f in sample.failing),
        stream_lag1=sample.healthy_lag1,
        reference_lag1=reference_lag1(profile),
        two_sample=two_sample_test(profile, sample.healthy) if classifier else None,
    )


ACCEPTANCE = {
    "ks": 0.06,
    "dependence_gap": 0.12,
    "signature_gap": 0.4,
    "accuracy_margin": 0.05,
    "failing_lag1": 0.5,
    "lag1": 0.1,
    "classifier_auc": 0.65,
    "classifier_margin": 0.07,
}
"""The bounds the learned model is held to (docs/simulation.md)."""


def _mark(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def describe(report: FidelityReport) -> str:
    """The report as text: per sensor, then overall, each with its bound."""
    bound = ACCEPTANCE
    lines = [
        f"healthy readings: {report.healthy_readings}; failing at full progress: "
        + ", ".join(
            f"{name!r} {n}"
            for name, n in zip(report.failure_types, report.failing_readings, strict=True)
        ),
        "",
        f"{'sensor':<14} {'KS':>7} {'max |dSpearman|':>16} {'max sig gap':>12} "
        f"{'failing lag1':>13} {'lag1 stream':>12} {'lag1 ref':>9}",
    ]
    reference_lag = (
        report.reference_lag1
        if report.reference_lag1 is not None
        else np.full(len(report.sensor_names), np.nan)
    )
    spearman_gap = np.abs(report.stream_spearman - report.reference_spearman)
    np.fill_diagonal(spearman_gap, 0.0)
    for j, name in enumerate(report.sensor_names):
        sig = report.signature_gap[:, j] if report.signature_gap.size else np.array([np.nan])
        lags = report.failing_lag1[:, j] if report.failing_lag1.size else np.array([np.nan])
        lines.append(
            f"{name:<14} {report.ks[j]:>7.3f} {spearman_gap[j].max():>16.3f} "
            f"{np.nanmax(sig) if np.isfinite(sig).any() else float('nan'):>12.2f} "
            f"{np.nanmedian(lags) if np.isfinite(lags).any() else float('nan'):>13.2f} "
            f"{report.stream_lag1[j]:>12.3f} {reference_lag[j]:>9.3f}"
        )
    max_ks = float(np.nanmax(report.ks))
    lines += [
        "",
        f"KS distance, worst sensor:        {max_ks:.3f}  (<= {bound['ks']}) "
        f"{_mark(max_ks <= bound['ks'])}",
        f"rank-correlation gap, worst pair: {report.dependence_gap:.3f}  "
        f"(<= {bound['dependence_gap']}) {_mark(report.dependence_gap <= bound['dependence_gap'])}",
    ]
    if report.failure_types:
        worst_sig = report.worst_signature_gap
        floor = report.reference_accuracy - bound["accuracy_margin"]
        lag = report.median_failing_lag1
        lines += [
            f"signature gap, worst type/sensor: {worst_sig:.2f} type std  "
            f"(<= {bound['signature_gap']}) {_mark(worst_sig <= bound['signature_gap'])}",
            f"classifier trained on the stream, tested on the reference: "
            f"{report.cross_accuracy:.3f} balanced accuracy",
            f"  the same classifier, 5-fold cross-validation on the reference: "
            f"{report.reference_accuracy:.3f}  (stream >= {floor:.3f}) "
            f"{_mark(report.cross_accuracy >= floor)}",
            f"lag-1 autocorrelation of failing readings (median): {lag:.2f}  "
            f"(>= {bound['failing_lag1']}) {_mark(lag >= bound['failing_lag1'])}",
        ]
    return "\n".join(lines + _dynamics_lines(report))


def _dynamics_lines(report: FidelityReport) -> list[str]:
    """The lag-1 comparison and the classifier two-sample test."""
    bound = ACCEPTANCE
    lines = []
    if report.reference_lag1 is None:
        lines.append("lag-1 autocorrelation: the reference is no time series (no TIME_COLUMN)")
    else:
        gap = report.worst_lag1_gap
        lines.append(
            f"lag-1 autocorrelation of healthy readings, worst sensor's gap to the reference: "
            f"{gap:.3f}  (<= {bound['lag1']}) {_mark(gap <= bound['lag1'])}"
        )
    test = report.two_sample
    if test is None:
        lines.append(
            "classifier two-sample test: not run (needs scikit-learn, "
            f"{INSTALL_HINT}, and 50 rows a side)"
        )
        return lines
    limit = report.classifier_bound
    lines += [
        f"classifier two-sample test (gradient-boosted trees, {CV_FOLDS}-fold, {test.rows} "
        f"healthy rows a side, reference thinned to 1 row in {test.thin}): AUC {test.auc:.3f}  "
        f"(<= {limit:.3f}) {_mark(test.auc <= limit)}",
        f"  real vs real (reference's first half against its second): AUC {test.floor:.3f}; "
        f"the bound is {bound['classifier_auc']} or this + {bound['classifier_margin']}",
    ]
    return lines
