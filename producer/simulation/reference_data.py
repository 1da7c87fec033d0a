"""Learn the simulation's statistics from a reference table (CSV or Parquet, pandas).

Which columns are sensors, label, time and group is ``reference_table``'s business (the
settings ``SENSOR_COLUMNS``, ``LABEL_COLUMN``, ``NORMAL_LABELS``, ``TIME_COLUMN``,
``GROUP_COLUMN``). A label is normal when blank or one of ``NORMAL_LABELS``; any other value
names a failure type (``1.0`` is shown as ``"1"``). Normal statistics (mean, sample std, min,
max) come from the normal rows; each failure type's signature is the per-sensor mean and sample
std of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from domain.reference_columns import ReferenceColumns, normalise_label
from domain.simulation_model import widened_bounds
from producer.errors import ReferenceDataError
from producer.simulation.reference_table import (
    MAX_ABS_VALUE,
    SENSOR_COLUMN,
    TimeSeries,
    read_reference_table,
)

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "MAX_ABS_VALUE",
    "SENSOR_COLUMN",
    "ReferenceProfile",
    "check_learned_model_data",
    "describe",
    "load_profile",
    "normalise_label",
]


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
    columns: ReferenceColumns = field(default_factory=ReferenceColumns)
    """The roles the table's columns were read in."""
    notes: tuple[str, ...] = ()
    """What was recognised in the table and why (``reference_table``)."""
    series: TimeSeries | None = None
    """The rows' time order when the table has a time column (rows are in that order)."""
    normal_mask: npt.NDArray[np.bool_] | None = None
    """Which of the table's rows (in series order) are normal."""

    @property
    def num_sensors(self) -> int:
        return len(self.sensor_names)

    @property
    def failures_enabled(self) -> bool:
        return bool(self.failure_types)

    @property
    def labelled_share(self) -> float:
        """Share of the table's rows that are labelled with a failure type."""
        failing = sum(self.failure_rows)
        return failing / (failing + self.normal_rows)


def load_profile(
    path: Path | str,
    num_sensors: int | None = None,
    *,
    at_most: bool = False,
    columns: ReferenceColumns | None = None,
) -> ReferenceProfile:
    """Read and analyse a reference table (CSV or Parquet); ``num_sensors=None`` takes every
    sensor column; ``at_most``: NUM_SENSORS was left at its default (a narrower file is used
    whole, and only 'Sensor <n>' columns are capped by it); ``columns``: the roles of the
    columns (default: the settings' defaults).

    Raises ``ReferenceDataError`` naming the file, the problem and the setting to use.
    """
    path = Path(path)
    roles = columns or ReferenceColumns()
    table = read_reference_table(path, roles, num_sensors, at_most=at_most)
    values, labels, normal = table.values, table.labels, table.normal
    if int(normal.sum()) < 2:
        raise ReferenceDataError(path, _too_few_normal(roles, labels, int(normal.sum())))
    normal_values = values[normal]
    minimum = normal_values.min(axis=0)
    maximum = normal_values.max(axis=0)
    bounds = [widened_bounds(float(lo), float(hi)) for lo, hi in zip(minimum, maximum, strict=True)]
    all_bounds = [
        widened_bounds(float(lo), float(hi))
        for lo, hi in zip(values.min(axis=0), values.max(axis=0), strict=True)
    ]

    types = list(dict.fromkeys(str(label) for label in labels[~normal]))
    sensors = len(table.sensor_names)
    sig_mean = np.zeros((len(types), sensors))
    sig_std = np.zeros((len(types), sensors))
    counts: list[int] = []
    type_rows: list[FloatArray] = []
    for t, name in enumerate(types):
        rows = values[~normal & (labels == name)]
        counts.append(len(rows))
        type_rows.append(rows)
        sig_mean[t] = rows.mean(axis=0)
        sig_std[t] = rows.std(axis=0, ddof=1) if len(rows) > 1 else 0.0

    return ReferenceProfile(
        source=str(path),
        sensor_names=table.sensor_names,
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
        columns=roles,
        notes=table.notes,
        series=table.series,
        normal_mask=normal,
    )


def _too_few_normal(roles: ReferenceColumns, labels: npt.NDArray[np.object_], found: int) -> str:
    """The refusal of a table with fewer than 2 normal rows, naming the settings to use."""
    message = f"needs at least 2 normal rows to learn statistics, found {found}"
    values, counts = np.unique(labels.astype(str), return_counts=True)
    if len(values) == 0:
        return message
    order = np.argsort(-counts, kind="stable")[:5]
    shown = ", ".join(f"{values[i]!r} ({counts[i]} rows)" for i in order)
    return (
        f"{message}: label column '{roles.label}' (LABEL_COLUMN) has {shown}; set NORMAL_LABELS "
        "to the values that mean normal (e.g. NORMAL_LABELS=0), or LABEL_COLUMN to the label "
        "column"
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
        *profile.notes,
        f"normal rows: {profile.normal_rows}; sensors: {profile.num_sensors}; "
        f"failure types: {len(profile.failure_types)}; labelled share "
        f"{profile.labelled_share:.2%}",
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
