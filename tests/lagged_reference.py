"""Reference recordings with known dynamics, generated for the learned-dynamics tests.

A latent VAR(1) ``z_t = A z_{t-1} + e_t`` with a chosen ``A`` (each sensor its own persistence,
some sensors leading others) is started in its stationary law and read through monotone
functions of several shapes (skewed, bounded, quantised, heavy-ish), in several recordings with
an id column, a timestamp column at a fixed step and an ``is_anomaly`` 0/1 column, as real
recordings come.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

SENSOR_NAMES = ("bearing_temp", "motor_current", "vibration", "oil_pressure", "rpm_band")


@dataclass(frozen=True)
class LaggedSpec:
    recordings: int = 6
    rows: int = 1500
    step_seconds: float = 0.5
    seed: int = 7
    anomaly_share: float = 0.03


def transition_matrix() -> FloatArray:
    """Own persistences 0.95 .. 0.3; sensor 1 follows sensor 0 one step later, sensor 2
    pushes sensor 3, sensor 4 leans against sensor 1."""
    a = np.diag([0.95, 0.8, 0.6, 0.45, 0.3])
    a[1, 0] = 0.15
    a[3, 2] = 0.35
    a[4, 1] = -0.25
    return a


def stationary_covariance(a: FloatArray, q: FloatArray) -> FloatArray:
    """``S = A S A^T + Q`` by iteration (``A`` is stable)."""
    s = q.copy()
    for _ in range(2000):
        s = a @ s @ a.T + q
    return s


def latent_paths(spec: LaggedSpec) -> list[FloatArray]:
    rng = np.random.default_rng(spec.seed)
    a = transition_matrix()
    sensors = len(a)
    base = rng.normal(size=(sensors, sensors)) * 0.3
    q = base @ base.T + np.eye(sensors) * 0.5
    s = stationary_covariance(a, q)
    q_chol, s_chol = np.linalg.cholesky(q), np.linalg.cholesky(s)
    scale = np.sqrt(np.diag(s))
    paths = []
    for _ in range(spec.recordings):
        z = np.empty((spec.rows, sensors))
        z[0] = s_chol @ rng.normal(size=sensors)
        for t in range(1, spec.rows):
            z[t] = a @ z[t - 1] + q_chol @ rng.normal(size=sensors)
        paths.append(z / scale)
    return paths


def readings(z: FloatArray) -> FloatArray:
    """Monotone read-outs of the latent columns: skewed, bounded, quantised, heavy-ish, linear."""
    out = np.empty_like(z)
    out[:, 0] = 60.0 + 4.0 * np.exp(0.6 * z[:, 0])
    out[:, 1] = 100.0 / (1.0 + np.exp(-1.5 * z[:, 1]))
    out[:, 2] = np.round(3.0 * z[:, 2] + 0.3 * z[:, 2] ** 3, 1)
    out[:, 3] = 2.5 + 0.4 * z[:, 3]
    out[:, 4] = np.floor(4.0 + 2.0 * z[:, 4])
    return out


def generate(spec: LaggedSpec = LaggedSpec()) -> pd.DataFrame:
    rng = np.random.default_rng(spec.seed + 1)
    frames = []
    start = pd.Timestamp("2026-03-01T00:00:00Z")
    for r, z in enumerate(latent_paths(spec)):
        values = readings(z)
        frame = pd.DataFrame(values, columns=list(SENSOR_NAMES))
        frame.insert(
            0,
            "timestamp",
            start + pd.to_timedelta(np.arange(spec.rows) * spec.step_seconds, unit="s"),
        )
        frame.insert(1, "recording", f"rec-{r:02d}")
        anomalous = np.zeros(spec.rows, dtype=np.int64)
        length = int(spec.anomaly_share * spec.rows)
        if length:
            begin = int(rng.integers(0, spec.rows - length))
            anomalous[begin : begin + length] = 1
        frame["is_anomaly"] = anomalous
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    # a file as found: the recordings interleaved, not in time order
    order = np.random.default_rng(spec.seed + 2).permutation(len(table))
    return table.iloc[order].reset_index(drop=True)


def write(path: Path, spec: LaggedSpec = LaggedSpec()) -> Path:
    generate(spec).to_csv(path, index=False)
    return path


def reference_lag(frame: pd.DataFrame, lag: int) -> FloatArray:
    """Per sensor, the Pearson correlation of normal readings ``lag`` rows apart within a
    recording (both rows normal)."""
    ordered = frame.sort_values(["recording", "timestamp"])
    firsts, seconds = [], []
    for _, rows in ordered.groupby("recording"):
        values = rows[list(SENSOR_NAMES)].to_numpy()
        normal = rows["is_anomaly"].to_numpy() == 0
        both = normal[lag:] & normal[:-lag]
        firsts.append(values[:-lag][both])
        seconds.append(values[lag:][both])
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    return np.array([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])])
