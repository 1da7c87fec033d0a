"""Reference recordings with known operating regimes, generated for the regime tests.

Each recording (a machine) runs a Markov chain over ``len(weights)`` regimes with chosen mean
dwell times; in a regime its latent vector is the regime's mean plus the recording's own
persistent offset plus a VAR(1) with lagged dependence and the regime's own scale. Read through
monotone functions of several shapes, with a timestamp at a fixed step, a recording id and an
``is_anomaly`` 0/1 column, as real recordings come.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

SENSOR_NAMES = ("spindle_load", "coolant_temp", "vibration_rms", "feed_rate")


@dataclass(frozen=True)
class RegimeSpec:
    recordings: int = 8
    rows: int = 3000
    step_seconds: float = 1.0
    seed: int = 3
    dwell_steps: tuple[float, ...] = (120.0, 60.0, 30.0)
    """Mean dwell of each regime, in steps."""
    means: tuple[tuple[float, ...], ...] = (
        (0.0, 0.0, 0.0, 0.0),
        (2.5, 1.5, 2.0, -1.5),
        (-2.0, 2.0, -1.0, 2.5),
    )
    scales: tuple[float, ...] = (1.0, 0.6, 0.8)
    offset_std: float = 0.35
    anomaly_share: float = 0.03
    persistence: tuple[float, ...] = field(default=(0.9, 0.7, 0.5, 0.3))


def transition_matrix(spec: RegimeSpec) -> FloatArray:
    """Leave a regime with 1/dwell per step, to the others in equal parts."""
    count = len(spec.dwell_steps)
    matrix = np.zeros((count, count))
    for k, dwell in enumerate(spec.dwell_steps):
        leave = 1.0 / dwell
        matrix[k] = leave / (count - 1)
        matrix[k, k] = 1.0 - leave
    return matrix


def stationary_weights(spec: RegimeSpec) -> FloatArray:
    matrix = transition_matrix(spec)
    values, vectors = np.linalg.eig(matrix.T)
    vector = np.abs(np.real(vectors[:, np.argmin(np.abs(values - 1.0))]))
    return np.asarray(vector / vector.sum(), dtype=np.float64)


def paths(spec: RegimeSpec) -> list[tuple[FloatArray, npt.NDArray[np.int64]]]:
    """Per recording: latent rows and the regime of each row."""
    rng = np.random.default_rng(spec.seed)
    sensors = len(SENSOR_NAMES)
    a = np.diag(spec.persistence)
    a[1, 0] = 0.2  # coolant follows spindle load one step later
    noise_chol = np.linalg.cholesky(0.5 * np.eye(sensors) + 0.5)  # correlated innovations
    state_cov = noise_chol @ noise_chol.T
    for _ in range(500):
        state_cov = a @ state_cov @ a.T + noise_chol @ noise_chol.T
    unit = np.sqrt(np.diag(state_cov))
    transition = transition_matrix(spec)
    cumulative = np.cumsum(transition, axis=1)
    means = np.array(spec.means)
    out = []
    for _ in range(spec.recordings):
        offset = rng.normal(size=sensors) * spec.offset_std
        regime = np.empty(spec.rows, dtype=np.int64)
        regime[0] = rng.choice(len(spec.dwell_steps), p=stationary_weights(spec))
        x = np.linalg.cholesky(state_cov) @ rng.normal(size=sensors)
        z = np.empty((spec.rows, sensors))
        for t in range(spec.rows):
            if t:
                regime[t] = min(
                    int((rng.random() >= cumulative[regime[t - 1]]).sum()), len(means) - 1
                )
                x = a @ x + noise_chol @ rng.normal(size=sensors)
            z[t] = means[regime[t]] + offset + spec.scales[regime[t]] * x / unit
        out.append((z, regime))
    return out


def readings(z: FloatArray) -> FloatArray:
    out = np.empty_like(z)
    out[:, 0] = 40.0 + 10.0 * np.exp(0.35 * z[:, 0])
    out[:, 1] = np.round(30.0 + 3.0 * z[:, 1], 1)
    out[:, 2] = 1.0 / (1.0 + np.exp(-0.8 * z[:, 2]))
    out[:, 3] = 100.0 + 15.0 * z[:, 3]
    return out


def generate(spec: RegimeSpec = RegimeSpec()) -> pd.DataFrame:
    rng = np.random.default_rng(spec.seed + 1)
    frames = []
    start = pd.Timestamp("2026-04-01T00:00:00Z")
    for r, (z, _) in enumerate(paths(spec)):
        frame = pd.DataFrame(readings(z), columns=list(SENSOR_NAMES))
        frame.insert(
            0, "timestamp", start + pd.to_timedelta(np.arange(spec.rows) * spec.step_seconds, "s")
        )
        frame.insert(1, "recording", f"machine-{r:02d}")
        anomalous = np.zeros(spec.rows, dtype=np.int64)
        length = int(spec.anomaly_share * spec.rows)
        begin = int(rng.integers(0, spec.rows - length))
        anomalous[begin : begin + length] = 1
        frame["is_anomaly"] = anomalous
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write(path: Path, spec: RegimeSpec = RegimeSpec()) -> Path:
    generate(spec).to_csv(path, index=False)
    return path
