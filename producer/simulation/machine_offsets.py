"""Persistent per-machine offsets in the regimes' latent space, estimated from the differences
between the reference's groups (machines or recordings; see ``regimes``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_OFFSET_GROUPS = 3
MAX_OFFSET_SHARE = 0.5
"""Offsets take at most this share of any regime's variance, in any direction."""


def lag1(latent: FloatArray, pairs: tuple[IntArray, IntArray]) -> FloatArray:
    """Per column, the correlation of consecutive rows ``pairs`` (previous, next)."""
    a, b = latent[pairs[0]], latent[pairs[1]]
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    return np.asarray((a * b).sum(axis=0) / np.where(denominator > 0, denominator, 1.0))


def _offset_covariance(
    residual: FloatArray, groups: IntArray, inflation: FloatArray
) -> FloatArray | None:
    """The one-way ANOVA estimate of the between-group covariance (``regimes``)."""
    codes, group_of = np.unique(groups, return_inverse=True)
    count = len(codes)
    if count < MIN_OFFSET_GROUPS:
        return None
    rows = len(residual)
    sizes = np.bincount(group_of, minlength=count).astype(np.float64)
    sums = np.zeros((count, residual.shape[1]))
    np.add.at(sums, group_of, residual)
    means = sums / sizes[:, None]
    overall = residual.mean(axis=0)
    centred_means = means - overall
    between = (sizes[:, None] * centred_means).T @ centred_means / (count - 1)
    deviations = residual - means[group_of]
    within = deviations.T @ deviations / max(rows - count, 1)
    size = (rows - (sizes**2).sum() / rows) / (count - 1)
    scale = np.sqrt(np.outer(inflation, inflation))
    estimate = (between - scale * within) / size
    estimate = (estimate + estimate.T) / 2.0
    values, vectors = np.linalg.eigh(estimate)
    return np.asarray((vectors * np.clip(values, 0.0, None)) @ vectors.T, dtype=np.float64)


def _bounded_offset(offset: FloatArray, covariances: FloatArray) -> FloatArray:
    """``offset`` scaled so that it is at most ``MAX_OFFSET_SHARE`` of any regime's variance
    in any direction."""
    largest = 0.0
    for covariance in covariances:
        inverse = np.linalg.inv(np.linalg.cholesky(covariance))
        largest = max(largest, float(np.linalg.eigvalsh(inverse @ offset @ inverse.T).max()))
    factor = min(1.0, MAX_OFFSET_SHARE / largest) if largest > 0 else 1.0
    return offset * factor


def offset_covariance(
    residual: FloatArray,
    groups: IntArray,
    pairs: tuple[IntArray, IntArray] | None,
    covariances: FloatArray,
) -> tuple[FloatArray, str]:
    """The offsets' covariance ``T`` of rows' deviations ``residual`` from their regime's mean,
    by group (``pairs``: consecutive rows, whose lag-1 inflates the within-group noise of a
    persistent series), bounded by the regimes' ``covariances``; zero when there are fewer than
    ``MIN_OFFSET_GROUPS`` groups. Also says where it came from."""
    sensors = residual.shape[1]
    count = len(np.unique(groups))
    if count < MIN_OFFSET_GROUPS:
        return np.zeros((sensors, sensors)), f"none: {count} groups, {MIN_OFFSET_GROUPS} needed"
    inflation = np.ones(sensors)
    if pairs is not None:
        rho = np.clip(lag1(residual, pairs), 0.0, 0.99)
        inflation = (1.0 + rho) / (1.0 - rho)
    estimate = _offset_covariance(residual, groups, inflation)
    assert estimate is not None
    return _bounded_offset(estimate, covariances), f"learned from {count} groups (GROUP_COLUMN)"
