"""The fidelity report's tests of the joint law and of the dynamics in time.

* A classifier two-sample test on healthy readings: gradient-boosted trees (scikit-learn's
  ``HistGradientBoostingClassifier``, the optional ``fidelity`` extra) learn to tell stream rows
  from reference rows; the out-of-fold ROC AUC of stratified 5-fold cross-validation on a
  balanced sample is 0.5 when they cannot. Rows are thinned so that they are nearly independent
  (a classifier could otherwise recognise the neighbours of a row it trained on): the reference's
  normal rows, in time order, to one per ``thin`` rows, where ``thin`` brings the strongest
  sensor's lag-1 autocorrelation down to ``INDEPENDENT_AUTOCORRELATION``. Its floor is the same
  test between the first and the second half of the reference: a recording that drifts is told
  apart from itself, and the stream is held to that.
* Per sensor, the lag-1 autocorrelation of the reference's normal readings (consecutive rows of
  a group, one median step apart) against the stream's at the reference's own interval.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from producer.simulation.dynamics import consecutive_pairs
from producer.simulation.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]

FOLDS = 5
MAX_ROWS = 3000
"""Rows per side at most (drawn at random): enough for the test, bounded in time."""
MIN_ROWS = 50
"""Fewer rows per side and the test is not run."""
INDEPENDENT_AUTOCORRELATION = 0.2
MIN_THINNED_ROWS = 400
"""Thinning stops where it would leave fewer reference rows."""
INSTALL_HINT = "pip install 'sensorsim[fidelity]' (or: pip install scikit-learn)"


def classifier_available() -> bool:
    return importlib.util.find_spec("sklearn") is not None


@dataclass(frozen=True, slots=True)
class TwoSampleTest:
    auc: float
    """Stream against reference (0.5: indistinguishable)."""
    floor: float
    """Reference's first half against its second half."""
    rows: int
    """Rows per side of the stream test."""
    thin: int
    """The reference kept one normal row per ``thin``."""


def _pearson(a: FloatArray, b: FloatArray) -> FloatArray:
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    denominator = np.sqrt((ca**2).sum(axis=0) * (cb**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = (ca * cb).sum(axis=0) / denominator
    return np.where(denominator > 0, result, np.nan)


def reference_lag1(profile: ReferenceProfile) -> FloatArray | None:
    """Per sensor, the lag-1 autocorrelation of the reference's normal readings (NaN for a
    constant sensor); None when the reference is not a time series."""
    if profile.series is None or profile.normal_mask is None:
        return None
    previous, after = consecutive_pairs(profile.series, profile.normal_mask)
    if len(previous) < 3:
        return None
    values = profile.normal_values
    return _pearson(values[previous], values[after])


def reference_thinning(profile: ReferenceProfile, lag1: FloatArray | None) -> int:
    """Keep one normal row per this many (module docstring); 1 without a time series."""
    if lag1 is None or not np.isfinite(lag1).any():
        return 1
    strongest = float(np.nanmax(np.abs(lag1)))
    if strongest <= INDEPENDENT_AUTOCORRELATION:
        return 1
    wanted = math.ceil(math.log(INDEPENDENT_AUTOCORRELATION) / math.log(min(strongest, 0.9999)))
    return max(1, min(wanted, profile.normal_rows // MIN_THINNED_ROWS))


def classifier_auc(first: FloatArray, second: FloatArray, seed: int = 0) -> float:
    """Out-of-fold ROC AUC of gradient-boosted trees telling ``second`` from ``first`` on a
    balanced sample (module docstring)."""
    # scikit-learn is optional (the fidelity extra): imported only where it is used
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415
    from sklearn.model_selection import StratifiedKFold, cross_val_predict  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    rows = min(len(first), len(second), MAX_ROWS)
    features = np.concatenate(
        [
            first[rng.choice(len(first), rows, replace=False)],
            second[rng.choice(len(second), rows, replace=False)],
        ]
    )
    labels = np.repeat([0, 1], rows)
    # early stopping on a held-out tenth: rows that cannot be told apart stop after a few trees
    classifier: Any = HistGradientBoostingClassifier(
        early_stopping=True, n_iter_no_change=5, random_state=seed
    )
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    scores = cross_val_predict(classifier, features, labels, cv=folds, method="predict_proba")
    return float(roc_auc_score(labels, scores[:, 1]))


def two_sample_test(
    profile: ReferenceProfile, healthy: FloatArray, seed: int = 0
) -> TwoSampleTest | None:
    """The classifier two-sample test of ``healthy`` stream readings against the reference's
    normal rows, with its real-vs-real floor; None without scikit-learn or with too few rows."""
    if not classifier_available():
        return None
    thin = reference_thinning(profile, reference_lag1(profile))
    reference = profile.normal_values[::thin]
    half = len(reference) // 2
    if half < MIN_ROWS or len(healthy) < MIN_ROWS:
        return None
    return TwoSampleTest(
        auc=classifier_auc(healthy, reference, seed),
        floor=classifier_auc(reference[:half], reference[half:], seed),
        rows=min(len(healthy), len(reference), MAX_ROWS),
        thin=thin,
    )
