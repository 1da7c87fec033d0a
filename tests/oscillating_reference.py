"""Reference recordings of a signal that moves continuously around a loop, generated for the
tests of the regimes' search for finer mixtures.

Each sensor reads a smooth function of a phase that advances a little every row at a speed
that wanders (the phases of a stride, of a rotating machine's cycle), plus a small persistent
noise. The rows form a ring, not clusters: a mixture of a few components cuts it into arcs
that the signal crosses every few rows, so switching between them loses the readings'
persistence, while many small components follow the ring. Several recordings with an id
column, a timestamp at a fixed step and an ``is_anomaly`` column of zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tests import recording_table
from tests.recording_table import recording_frame

SENSOR_NAMES = ("accel_x", "accel_y", "accel_z")


@dataclass(frozen=True)
class OscillatingSpec:
    recordings: int = 6
    rows: int = 1200
    step_seconds: float = 0.05
    mean_advance: float = 0.35
    """Radians per row on average: a loop about every 18 rows."""
    noise: float = 0.12
    seed: int = 5


def generate(spec: OscillatingSpec) -> list[pd.DataFrame]:
    rng = np.random.default_rng(spec.seed)
    frames = []
    for recording in range(spec.recordings):
        speed = spec.mean_advance * np.exp(0.25 * np.cumsum(rng.normal(0.0, 0.05, spec.rows)))
        phase = rng.uniform(0.0, 2.0 * np.pi) + np.cumsum(speed)
        noise = np.empty((spec.rows, 3))
        noise[0] = rng.normal(size=3)
        for t in range(1, spec.rows):
            noise[t] = 0.7 * noise[t - 1] + np.sqrt(1.0 - 0.7**2) * rng.normal(size=3)
        values = (
            np.column_stack([np.cos(phase), np.sin(phase), 0.6 * np.cos(2.0 * phase + 0.5)])
            + spec.noise * noise
        )
        frames.append(
            recording_frame(
                values, SENSOR_NAMES, index=recording, step_seconds=spec.step_seconds, decimals=4
            )
        )
    return frames


def write(path: Path, spec: OscillatingSpec) -> Path:
    return recording_table.write(generate(spec), path)
