"""Learn the simulation's statistics from a reference CSV (pandas).

Sensor columns are those named ``Sensor <n>`` (the first ``num_sensors`` of them, in column
order); ``Label`` is blank for normal rows and names a failure type otherwise (``1.0`` is shown
as ``"1"``). Normal statistics (mean, sample std, min, max) come from the unlabelled rows; each
failure type's signature is the per-sensor mean and sample std of its rows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from domain.simulation_model import widened_bounds
from producer.errors import ReferenceDataError

FloatArray = npt.NDArray[np.float64]

SENSOR_COLUMN = re.compile(r"^Sensor\s+(\d+)$")
_MANGLED_DUPLICATE = re.compile(r"^(Sensor\s+\d+)\.\d+$")
LABEL_COLUMN = "Label"
MAX_ABS_VALUE = 1e12
"""Larger readings could not be rounded to 6 decimals exactly in 64-bit arithmetic."""


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """What was learned from a reference file. Arrays are indexed by sensor (and type)."""

    source: str
    sensor_names: tuple[str, ...]
    mean: FloatArray
    std: FloatArray
    minimum: FloatArray
    maximum: FloatArray
    lower: FloatArray
    """Clip bounds (see ``domain.simulation_model.widened_bounds``)."""
    upper: FloatArray
    reading_lower: FloatArray
    """Bounds of emitted readings: the same rule over all rows, so that failure signatures
    outside the normal range stay visible while every reading remains bounded."""
    reading_upper: FloatArray
    normal_rows: int
    failure_types: tuple[str, ...]
    failure_rows: tuple[int, ...]
    signature_mean: FloatArray
    """Shape (types, sensors)."""
    signature_std: FloatArray
    normal_values: FloatArray
    """The unlabelled rows, shape (rows, sensors): what the learned model is fitted to."""
    failure_values: tuple[FloatArray, ...]
    """Each failure type's rows, shape (rows_t, sensors)."""

    @property
    def num_sensors(self) -> int:
        return len(self.sensor_names)

    @property
    def failures_enabled(self) -> bool:
        return bool(self.failure_types)


def normalise_label(value: str) -> str:
    """Blank stays blank; a number that is a whole number loses its ``.0``.

    >>> [normalise_label(v) for v in ["", " 1.0 ", "3", "bearing_wear", "2.5"]]
    ['', '1', '3', 'bearing_wear', '2.5']
    """
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ReferenceDataError(path, "file not found (set SENSOR_DATA_FILE to a readable CSV)")
    if path.is_dir():
        raise ReferenceDataError(path, "is a directory, not a CSV file")
    try:
        return pd.read_csv(path, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ReferenceDataError(path, "file is empty (expected a header row and data)") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ReferenceDataError(path, f"not a well-formed CSV: {first}") from None
    except UnicodeDecodeError:
        raise ReferenceDataError(path, "not a text CSV file (cannot decode as UTF-8)") from None
    except OSError as exc:
        raise ReferenceDataError(path, f"cannot read: {exc.strerror or exc}") from None


def _sensor_columns(
    path: Path, frame: pd.DataFrame, num_sensors: int | None, *, at_most: bool
) -> list[str]:
    columns = [str(c) for c in frame.columns]
    sensors = [c for c in columns if SENSOR_COLUMN.match(c.strip())]
    names = [c.strip() for c in sensors]
    # pandas renames a repeated header "Sensor 1" to "Sensor 1.1"; both would be one JSON key.
    repeated = [c for c in columns if _MANGLED_DUPLICATE.match(c.strip())]
    repeated += [n for i, n in enumerate(names) if n in names[:i]]
    if repeated:
        name = _MANGLED_DUPLICATE.sub(r"\1", repeated[0].strip())
        raise ReferenceDataError(
            path, f"column '{name}' appears more than once (sensor names must be unique)"
        )
    if not sensors:
        shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise ReferenceDataError(
            path, f"no sensor columns: expected columns named 'Sensor <n>', found: {shown}"
        )
    if num_sensors is not None:
        if len(sensors) < num_sensors and not at_most:
            raise ReferenceDataError(
                path,
                f"has {len(sensors)} sensor columns ({sensors[0]} .. {sensors[-1]}) "
                f"but NUM_SENSORS={num_sensors}; lower NUM_SENSORS or use a wider file",
            )
        sensors = sensors[:num_sensors]
    return sensors


def _numeric(path: Path, frame: pd.DataFrame, columns: list[str]) -> FloatArray:
    values = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        text = frame[column]
        missing = text.isna() | (text.str.strip() == "")
        if missing.any():
            row = int(np.flatnonzero(missing.to_numpy())[0])
            raise ReferenceDataError(
                path,
                f"missing value in column '{column}' at line {row + 2} (every sensor "
                "value must be a number)",
            )
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers) | (np.abs(numbers) > MAX_ABS_VALUE)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ReferenceDataError(
                path,
                f"non-numeric value {text.iloc[row]!r} in column '{column}' at line {row + 2} "
                f"(expected a finite number of magnitude <= {MAX_ABS_VALUE:g})",
            )
        values[:, j] = numbers
    return values


def load_profile(
    path: Path | str, num_sensors: int | None = None, *, at_most: bool = False
) -> ReferenceProfile:
    """Read and analyse a reference CSV; ``num_sensors=None`` takes every sensor column;
    ``at_most``: a file with fewer sensor columns than ``num_sensors`` is used whole instead of
    being an error (NUM_SENSORS left at its default).

    Raises ``ReferenceDataError`` naming the file and the problem.
    """
    path = Path(path)
    frame = _read(path)
    columns = _sensor_columns(path, frame, num_sensors, at_most=at_most)
    if len(frame) == 0:
        raise ReferenceDataError(path, "has a header but no data rows")
    values = _numeric(path, frame, columns)

    if LABEL_COLUMN in frame.columns:
        labels = [normalise_label(v) for v in frame[LABEL_COLUMN].fillna("").astype(str)]
    else:
        labels = [""] * len(frame)
    label_array = np.array(labels, dtype=object)
    normal = label_array == ""
    if int(normal.sum()) < 2:
        raise ReferenceDataError(
            path,
            f"needs at least 2 unlabelled (normal) rows to learn statistics, found "
            f"{int(normal.sum())}",
        )
    normal_values = values[normal]
    minimum = normal_values.min(axis=0)
    maximum = normal_values.max(axis=0)
    bounds = [widened_bounds(float(lo), float(hi)) for lo, hi in zip(minimum, maximum, strict=True)]
    all_bounds = [
        widened_bounds(float(lo), float(hi))
        for lo, hi in zip(values.min(axis=0), values.max(axis=0), strict=True)
    ]

    types = list(dict.fromkeys(label for label in labels if label))
    sig_mean = np.zeros((len(types), len(columns)))
    sig_std = np.zeros((len(types), len(columns)))
    counts: list[int] = []
    type_rows: list[FloatArray] = []
    for t, name in enumerate(types):
        rows = values[label_array == name]
        counts.append(len(rows))
        type_rows.append(rows)
        sig_mean[t] = rows.mean(axis=0)
        sig_std[t] = rows.std(axis=0, ddof=1) if len(rows) > 1 else 0.0

    return ReferenceProfile(
        source=str(path),
        sensor_names=tuple(c.strip() for c in columns),
        mean=normal_values.mean(axis=0),
        std=normal_values.std(axis=0, ddof=1),
        minimum=minimum,
        maximum=maximum,
        lower=np.array([b[0] for b in bounds]),
        upper=np.array([b[1] for b in bounds]),
        reading_lower=np.array([b[0] for b in all_bounds]),
        reading_upper=np.array([b[1] for b in all_bounds]),
        normal_rows=int(normal.sum()),
        failure_types=tuple(types),
        failure_rows=tuple(counts),
        signature_mean=sig_mean,
        signature_std=sig_std,
        normal_values=normal_values,
        failure_values=tuple(type_rows),
    )


def learned_model_rows(num_sensors: int) -> int:
    """Normal rows the learned model needs to estimate the dependence of ``num_sensors``."""
    return max(2 * num_sensors, 10)


def check_learned_model_data(profile: ReferenceProfile) -> None:
    """Raise ``ReferenceDataError`` when ``profile`` has too few normal rows for the learned
    model (the original model needs only 2)."""
    needed = learned_model_rows(profile.num_sensors)
    if profile.normal_rows < needed:
        raise ReferenceDataError(
            Path(profile.source),
            f"has {profile.normal_rows} unlabelled (normal) rows; the learned model needs at "
            f"least {needed} for {profile.num_sensors} sensors (2 per sensor, at least 10): add "
            "rows, lower NUM_SENSORS, or set SIMULATION_MODEL=original",
        )


def describe(profile: ReferenceProfile) -> str:
    """A human-readable report of what was learned (the ``profile`` command)."""
    lines = [
        f"reference data: {profile.source}",
        f"normal rows: {profile.normal_rows}; sensors: {profile.num_sensors}; "
        f"failure types: {len(profile.failure_types)}",
        "",
        "normal statistics (SIMULATION_MODEL=original walks around the mean, clipped to "
        "[lower, upper]):",
        f"{'sensor':<12} {'mean':>12} {'std':>12} {'min':>12} {'max':>12} {'lower':>12} "
        f"{'upper':>12}",
    ]
    for j, name in enumerate(profile.sensor_names):
        lines.append(
            f"{name:<12} {profile.mean[j]:>12.4f} {profile.std[j]:>12.4f} "
            f"{profile.minimum[j]:>12.4f} {profile.maximum[j]:>12.4f} "
            f"{profile.lower[j]:>12.4f} {profile.upper[j]:>12.4f}"
        )
    lines.append("")
    if not profile.failures_enabled:
        lines.append("no labelled rows: failures are disabled")
        return "\n".join(lines)
    lines.append("failure signatures (sensors furthest from normal, in normal std units):")
    safe_std = np.where(profile.std > 0, profile.std, 1.0)
    for t, name in enumerate(profile.failure_types):
        shift = (profile.signature_mean[t] - profile.mean) / safe_std
        top = np.argsort(-np.abs(shift), kind="stable")[:4]
        shown = ", ".join(f"{profile.sensor_names[j]} {shift[j]:+.1f}" for j in top)
        lines.append(f"  {name!r} ({profile.failure_rows[t]} rows): {shown}")
    return "\n".join(lines)
