"""Reference data sets the model was never tuned on, generated for the fidelity tests.

Each set mixes the marginals real sensors have (skewed, bounded, two-mode, heavy-tailed,
discrete, constant) with groups of strongly correlated sensors, and has several failure types
whose rows shift some sensors and change the dependence of others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

MARGINALS = ("skewed", "bounded", "two-mode", "heavy", "normal", "discrete")


@dataclass(frozen=True)
class SyntheticSpec:
    name: str
    sensors: int
    normal_rows: int
    type_rows: tuple[int, ...]
    seed: int
    first_index: int = 1
    constant_sensor: bool = False


def _latent(rng: np.random.Generator, rows: int, sensors: int, strength: float) -> FloatArray:
    """Normal latent rows with blocks of correlated sensors (factor model)."""
    factors = rng.normal(size=(rows, 3))
    loadings = np.zeros((sensors, 3))
    for j in range(sensors):
        loadings[j, j % 3] = strength * rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.0)
    noise = rng.normal(size=(rows, sensors)) * np.sqrt(np.maximum(1 - (loadings**2).sum(1), 0.02))
    latent: FloatArray = factors @ loadings.T + noise
    scaled: FloatArray = latent / latent.std(axis=0)
    return scaled


def _shape(kind: str, z: FloatArray, rng: np.random.Generator, scale: float) -> FloatArray:
    u = np.clip(np.vectorize(NormalDist().cdf)(z), 1e-9, 1 - 1e-9)
    if kind == "skewed":
        out = scale * np.exp(0.8 * z) + 20.0
    elif kind == "bounded":
        out = 100.0 * u**0.6  # a percentage in [0, 100], piled up near the top
    elif kind == "two-mode":
        out = np.where(u < 0.4, 40.0 + 3.0 * z, 75.0 + 5.0 * z)
    elif kind == "heavy":
        out = scale * z / np.sqrt(rng.chisquare(3, size=z.shape) / 3)
    elif kind == "discrete":
        out = np.floor(6 * u)
    else:
        out = scale * z - 5.0
    return np.asarray(out, dtype=np.float64)


def generate(spec: SyntheticSpec) -> pd.DataFrame:
    rng = np.random.default_rng(spec.seed)
    sensors = spec.sensors
    kinds = [MARGINALS[(j + spec.seed) % len(MARGINALS)] for j in range(sensors)]
    scales = rng.uniform(0.5, 20.0, size=sensors)
    blocks = []
    labels: list[str] = []
    normal_latent = _latent(rng, spec.normal_rows, sensors, 0.9)
    blocks.append(normal_latent)
    labels += [""] * spec.normal_rows
    for t, rows in enumerate(spec.type_rows):
        latent = _latent(rng, rows, sensors, 0.5 + 0.15 * t)
        shifted = rng.choice(sensors, size=max(2, sensors // 4), replace=False)
        latent[:, shifted] += rng.choice([-1.5, 1.5, 2.5], size=len(shifted))
        blocks.append(latent)
        labels += [f"failure_{t + 1}"] * rows
    latent_all = np.concatenate(blocks)
    columns = {}
    for j in range(sensors):
        values = _shape(kinds[j], latent_all[:, j], rng, scales[j])
        if spec.constant_sensor and j == sensors - 1:
            values = np.full(len(values), 7.5)
        columns[f"Sensor {spec.first_index + j}"] = np.round(values, 4)
    frame = pd.DataFrame(columns)
    frame["Label"] = labels
    return frame.sample(frac=1.0, random_state=spec.seed).reset_index(drop=True)


def write(spec: SyntheticSpec, directory: Path) -> Path:
    path = directory / f"{spec.name}.csv"
    generate(spec).to_csv(path, index=False)
    return path


SPECS = (
    SyntheticSpec("mixed-12", sensors=12, normal_rows=1500, type_rows=(60, 80, 45), seed=11),
    SyntheticSpec(
        "wide-35", sensors=35, normal_rows=3000, type_rows=(40, 100, 70, 55, 90), seed=23
    ),
    SyntheticSpec(
        "small-6",
        sensors=6,
        normal_rows=400,
        type_rows=(50, 40, 100, 60),
        seed=5,
        first_index=0,
        constant_sensor=True,
    ),
)
