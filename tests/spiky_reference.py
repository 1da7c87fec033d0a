"""Reference recordings whose extremes are isolated in time, generated for the tests of
``isolated_extremes``.

A persistent body (a latent AR(1), lag-1 0.85, sensors correlated) read through smooth monotone
functions, plus impacts: at a few per cent of rows, a spike on two of the sensors at once (same
sign, heavy-tailed size) that is gone on the next row, as accelerometers record them. The smooth
sensor has no spikes. Several recordings with an id column, a timestamp at a fixed step and an
``is_anomaly`` column of zeros, as real recordings come.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from tests import recording_table
from tests.recording_table import recording_frame

FloatArray = npt.NDArray[np.float64]

SENSOR_NAMES = ("temperature", "accel_x", "accel_y")
SPIKY = (1, 2)
"""Indices of the sensors with isolated spikes."""


@dataclass(frozen=True)
class SpikySpec:
    recordings: int = 4
    rows: int = 1500
    step_seconds: float = 0.02
    persistence: float = 0.85
    spike_share: float = 0.04
    seed: int = 11


def generate(spec: SpikySpec) -> list[pd.DataFrame]:
    rng = np.random.default_rng(spec.seed)
    correlation = np.array([[1.0, 0.4, 0.3], [0.4, 1.0, 0.5], [0.3, 0.5, 1.0]])
    root = np.linalg.cholesky(correlation)
    innovation = np.sqrt(1.0 - spec.persistence**2)
    frames = []
    for recording in range(spec.recordings):
        latent = np.empty((spec.rows, 3))
        latent[0] = root @ rng.normal(size=3)
        for t in range(1, spec.rows):
            latent[t] = spec.persistence * latent[t - 1] + innovation * (root @ rng.normal(size=3))
        values = np.column_stack(
            [20.0 + 2.0 * latent[:, 0] + 0.3 * latent[:, 0] ** 2, latent[:, 1], latent[:, 2]]
        )
        impacts = rng.random(spec.rows) < spec.spike_share
        size = rng.choice([-1.0, 1.0], spec.rows) * (4.0 + rng.exponential(6.0, spec.rows))
        for sensor, gain in zip(SPIKY, (1.0, 0.7), strict=True):
            values[impacts, sensor] += gain * size[impacts]
        frames.append(
            recording_frame(
                values, SENSOR_NAMES, index=recording, step_seconds=spec.step_seconds, decimals=3
            )
        )
    return frames


def write(path: Path, spec: SpikySpec) -> Path:
    return recording_table.write(generate(spec), path)
