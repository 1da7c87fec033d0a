"""Read a reference table (CSV or Parquet) and find its sensor, label, time and group columns.

The roles come from ``domain.reference_columns.ReferenceColumns`` (the settings
``SENSOR_COLUMNS``, ``LABEL_COLUMN``, ``NORMAL_LABELS``, ``TIME_COLUMN``, ``GROUP_COLUMN``).
Sensors are the columns ``SENSOR_COLUMNS`` names; else the columns named ``Sensor <n>`` (the
first ``NUM_SENSORS``); else every column whose values are all numbers, other than the label,
time and group columns. A time column (numbers or timestamps) makes the rows a time series:
they are ordered by group, then time. Every refusal names the column and the setting to use;
``ReferenceTable.notes`` says what was recognised and why (the ``profile`` command prints them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from domain.reference_columns import ReferenceColumns, normalise_label
from producer.errors import ReferenceDataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

SENSOR_COLUMN = re.compile(r"^Sensor\s+(\d+)$")
_MANGLED_DUPLICATE = re.compile(r"^(Sensor\s+\d+)\.\d+$")
_UNNAMED = re.compile(r"^Unnamed: \d+$")
PARQUET_MAGIC = b"PAR1"
MAX_ABS_VALUE = 1e12
"""Larger readings could not be rounded to 6 decimals exactly in 64-bit arithmetic."""
_HINTS = (
    (re.compile(r"anomal|label|status|fault|failure|target|class", re.I), "LABEL_COLUMN"),
    (re.compile(r"time|date|^ts$|epoch", re.I), "TIME_COLUMN"),
    (re.compile(r"(^|_)id$|machine|unit|recording|device|asset", re.I), "GROUP_COLUMN"),
)


@dataclass(frozen=True, eq=False)
class TimeSeries:
    """The time order of a reference table's rows (kept for fitting dynamics in time)."""

    column: str
    times: FloatArray
    """Per row, in the table's (sorted) row order: seconds since 1970 for timestamps, else the
    column's numbers."""
    groups: IntArray
    """Per row: the group's code (0 when there is no group column)."""
    group_count: int
    median_step: float | None
    """Median positive step between consecutive rows of a group (None: no such step)."""
    timestamps: bool


@dataclass(frozen=True, eq=False)
class ReferenceTable:
    """A reference table's sensor readings and labels, rows in series order."""

    sensor_names: tuple[str, ...]
    values: FloatArray
    """Shape (rows, sensors)."""
    labels: ObjectArray
    """Normalised label per row ('' when there is no label column)."""
    normal: npt.NDArray[np.bool_]
    series: TimeSeries | None
    notes: tuple[str, ...]


def read_frame(path: Path) -> tuple[pd.DataFrame, bool]:
    """The table as pandas reads it: a CSV as text (every cell a string or NaN), a Parquet file
    (recognised by its magic bytes) with its own column types; and whether it is Parquet."""
    if not path.exists():
        raise ReferenceDataError(
            path, "file not found (set SENSOR_DATA_FILE to a readable CSV or Parquet file)"
        )
    if path.is_dir():
        raise ReferenceDataError(path, "is a directory, not a CSV or Parquet file")
    try:
        with path.open("rb") as handle:
            parquet = handle.read(4) == PARQUET_MAGIC
        if parquet:
            frame = pd.read_parquet(path)
            frame.columns = [str(c) for c in frame.columns]
            return frame, True
        return pd.read_csv(path, dtype=str, skipinitialspace=True), False
    except pd.errors.EmptyDataError:
        raise ReferenceDataError(path, "file is empty (expected a header row and data)") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ReferenceDataError(path, f"not a well-formed CSV: {first}") from None
    except UnicodeDecodeError:
        raise ReferenceDataError(path, "not a text CSV file (cannot decode as UTF-8)") from None
    except OSError as exc:
        raise ReferenceDataError(path, f"cannot read: {exc.strerror or exc}") from None
    except (ValueError, ImportError) as exc:  # pyarrow's errors derive from these
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReferenceDataError(path, f"not a readable Parquet file: {first}") from None


def _where(parquet: bool, row: int) -> str:
    return f"row {row + 1}" if parquet else f"line {row + 2}"


def _is_text(series: pd.Series) -> bool:
    return bool(pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series))


def _missing(series: pd.Series) -> npt.NDArray[np.bool_]:
    missing = series.isna().to_numpy(dtype=bool, copy=True)
    if _is_text(series):
        missing |= series.astype(str).str.strip().eq("").to_numpy(dtype=bool)
    return missing


def _numbers(series: pd.Series) -> FloatArray:
    """The values as floats; NaN where a value is missing or not a number."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return np.full(len(series), np.nan)
    numbers: FloatArray = pd.to_numeric(series, errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return numbers


def _numeric_column(series: pd.Series) -> bool:
    """Every value is a finite number (what makes a column a sensor by default)."""
    if len(series) == 0 or _missing(series).any():
        return False
    numbers = _numbers(series)
    return bool(np.all(np.isfinite(numbers)))


def sensor_values(path: Path, frame: pd.DataFrame, columns: list[str], parquet: bool) -> FloatArray:
    """The sensor columns as floats; refuses a missing, non-numeric or huge value."""
    values = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        series = frame[column]
        missing = _missing(series)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise ReferenceDataError(
                path,
                f"missing value in column '{column}' at {_where(parquet, row)} (every sensor "
                "value must be a number; SENSOR_COLUMNS chooses the sensor columns)",
            )
        numbers = _numbers(series)
        bad = ~np.isfinite(numbers) | (np.abs(numbers) > MAX_ABS_VALUE)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ReferenceDataError(
                path,
                f"non-numeric value {series.iloc[row]!r} in column '{column}' at "
                f"{_where(parquet, row)} (expected a finite number of magnitude <= "
                f"{MAX_ABS_VALUE:g}; SENSOR_COLUMNS chooses the sensor columns)",
            )
        values[:, j] = numbers
    return values


def _shown(columns: list[str]) -> str:
    return ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")


def _check_roles(path: Path, frame: pd.DataFrame, roles: ReferenceColumns) -> None:
    columns = [str(c) for c in frame.columns]
    wanted = [(roles.time, "TIME_COLUMN"), (roles.group, "GROUP_COLUMN")]
    if roles.label_required:
        wanted.append((roles.label, "LABEL_COLUMN"))
    for name, setting in wanted:
        if name is not None and name not in frame.columns:
            raise ReferenceDataError(
                path, f"{setting}={name!r}: no such column (columns: {_shown(columns)})"
            )
    named = [name for name, _ in wanted if name is not None]
    if len(set(named)) < len(named):
        raise ReferenceDataError(
            path, "LABEL_COLUMN, TIME_COLUMN and GROUP_COLUMN must name different columns"
        )


def _pattern_sensors(path: Path, frame: pd.DataFrame) -> list[str]:
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
    return sensors


def _hint(column: str) -> str:
    for pattern, setting in _HINTS:
        if pattern.search(column):
            return f" (if it is not a sensor, set {setting} or SENSOR_COLUMNS)"
    return ""


def _numeric_sensors(
    path: Path, frame: pd.DataFrame, roles: ReferenceColumns, notes: list[str]
) -> list[str]:
    others = roles.roles
    chosen, skipped = [], []
    for column in (str(c) for c in frame.columns):
        if column in others:
            continue
        if _UNNAMED.match(column) or not column.strip():
            skipped.append(f"'{column}' (no header: an index column)")
        elif _numeric_column(frame[column]):
            chosen.append(column)
        else:
            missing = int(_missing(frame[column]).sum())
            why = f"{missing} missing values" if missing else "values that are not numbers"
            skipped.append(f"'{column}' ({why})")
    if not chosen:
        raise ReferenceDataError(
            path,
            "no sensor columns: none named 'Sensor <n>' and no numeric column besides the "
            f"label, time and group columns (columns: {_shown([str(c) for c in frame.columns])});"
            " set SENSOR_COLUMNS",
        )
    notes.append(
        "sensors: every numeric column but the label, time and group columns (no 'Sensor <n>' "
        "columns, SENSOR_COLUMNS unset)"
    )
    notes += [f"  sensor '{c}'{_hint(c)}" for c in chosen if _hint(c)]
    if skipped:
        notes.append("not sensors: " + ", ".join(skipped))
    return chosen


def select_sensors(
    path: Path,
    frame: pd.DataFrame,
    roles: ReferenceColumns,
    num_sensors: int | None,
    *,
    at_most: bool,
    notes: list[str],
) -> list[str]:
    """The sensor columns (see the module docstring); ``at_most``: NUM_SENSORS was not set."""
    _check_roles(path, frame, roles)
    if roles.sensors:
        names = list(roles.sensors)
        for name in names:
            if name not in frame.columns:
                raise ReferenceDataError(
                    path,
                    f"SENSOR_COLUMNS names '{name}', which is not a column "
                    f"(columns: {_shown([str(c) for c in frame.columns])})",
                )
            if name in roles.roles:
                raise ReferenceDataError(
                    path, f"column '{name}' is in SENSOR_COLUMNS and is {roles.roles[name]}"
                )
        if len(set(names)) < len(names):
            raise ReferenceDataError(path, "SENSOR_COLUMNS names a column more than once")
        if num_sensors is not None and not at_most and num_sensors != len(names):
            raise ReferenceDataError(
                path,
                f"NUM_SENSORS={num_sensors} but SENSOR_COLUMNS names {len(names)} columns: "
                "unset NUM_SENSORS (or make them agree)",
            )
        notes.append(f"sensors: the {len(names)} columns of SENSOR_COLUMNS")
        return names
    sensors = _pattern_sensors(path, frame)
    pattern = bool(sensors)
    if not pattern:
        sensors = _numeric_sensors(path, frame, roles, notes)
    if num_sensors is not None and (pattern or not at_most):
        if len(sensors) < num_sensors and not at_most:
            raise ReferenceDataError(
                path,
                f"has {len(sensors)} sensor columns ({sensors[0]} .. {sensors[-1]}) "
                f"but NUM_SENSORS={num_sensors}; lower NUM_SENSORS or use a wider file",
            )
        sensors = sensors[:num_sensors]
    if pattern:
        notes.append(f"sensors: {len(sensors)} columns named 'Sensor <n>' (NUM_SENSORS caps them)")
    return sensors


def label_values(frame: pd.DataFrame, roles: ReferenceColumns) -> ObjectArray:
    """Each row's normalised label ('' for blank or missing, or without a label column)."""
    if roles.label not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    series = frame[roles.label]
    missing = _missing(series)
    text = series.astype(str).to_numpy(dtype=object)
    return np.array(
        ["" if gone else normalise_label(str(v)) for v, gone in zip(text, missing, strict=True)],
        dtype=object,
    )


def _times(path: Path, series: pd.Series, parquet: bool) -> tuple[FloatArray, bool]:
    column = str(series.name)
    missing = _missing(series)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ReferenceDataError(
            path, f"missing time in column '{column}' (TIME_COLUMN) at {_where(parquet, row)}"
        )
    if not pd.api.types.is_datetime64_any_dtype(series):
        numbers = _numbers(series)
        if np.all(np.isfinite(numbers)):
            return numbers, False
    parsed = pd.to_datetime(series, utc=True, errors="coerce")
    bad = parsed.isna().to_numpy(dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ReferenceDataError(
            path,
            f"value {series.iloc[row]!r} in column '{column}' (TIME_COLUMN) at "
            f"{_where(parquet, row)} is neither a number nor a timestamp",
        )
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.float64), True


def series_order(
    path: Path, frame: pd.DataFrame, roles: ReferenceColumns, parquet: bool, notes: list[str]
) -> tuple[IntArray, TimeSeries | None]:
    """The row order (by group, then time) and the time series it makes (None: no time)."""
    rows = len(frame)
    groups = np.zeros(rows, dtype=np.int64)
    group_count = 1
    if roles.group is not None:
        series = frame[roles.group]
        missing = _missing(series)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise ReferenceDataError(
                path,
                f"missing id in column '{roles.group}' (GROUP_COLUMN) at {_where(parquet, row)}",
            )
        codes, uniques = pd.factorize(series.astype(str).str.strip())
        groups = codes.astype(np.int64)
        group_count = len(uniques)
        notes.append(f"groups: {group_count} in column '{roles.group}' (GROUP_COLUMN)")
    if roles.time is None:
        order = np.argsort(groups, kind="stable").astype(np.int64)
        if roles.group is not None:
            notes.append("no TIME_COLUMN: rows keep the file's order within each group")
        return order, None
    times, stamps = _times(path, frame[roles.time], parquet)
    order = np.lexsort((times, groups)).astype(np.int64)
    times, groups = times[order], groups[order]
    same = groups[1:] == groups[:-1]
    steps = np.diff(times)[same]
    positive = steps[steps > 0]
    median = float(np.median(positive)) if positive.size else None
    unit = " s" if stamps else ""
    kind = "timestamps" if stamps else "numbers"
    shown = "none" if median is None else f"{median:g}{unit}"
    notes.append(
        f"time: column '{roles.time}' (TIME_COLUMN), {kind}; rows ordered by "
        f"{'group and ' if roles.group else ''}time; median step {shown}"
    )
    repeated = int((steps == 0).sum())
    if repeated:
        hint = "" if roles.group else " (several recordings in one file? set GROUP_COLUMN)"
        notes.append(f"  {repeated} repeated times within a series{hint}")
    return order, TimeSeries(roles.time, times, groups, group_count, median, stamps)


def read_reference_table(
    path: Path,
    roles: ReferenceColumns,
    num_sensors: int | None = None,
    *,
    at_most: bool = False,
) -> ReferenceTable:
    """Read ``path`` and take its columns in the roles ``roles`` gives (module docstring)."""
    frame, parquet = read_frame(path)
    notes: list[str] = []
    columns = select_sensors(path, frame, roles, num_sensors, at_most=at_most, notes=notes)
    if len(frame) == 0:
        raise ReferenceDataError(path, "has a header but no data rows")
    values = sensor_values(path, frame, columns, parquet)
    labels = label_values(frame, roles)
    if roles.label in frame.columns:
        normal_shown = ", ".join(repr(v) for v in sorted(roles.normal_labels))
        notes.append(
            f"labels: column '{roles.label}'; normal: blank"
            + (f" and {normal_shown} (NORMAL_LABELS)" if normal_shown else "")
            + "; any other value names a failure type"
        )
    else:
        notes.append(
            f"labels: no column '{roles.label}': every row is normal (LABEL_COLUMN names the "
            "column of failure labels)"
        )
    order, series = series_order(path, frame, roles, parquet, notes)
    values, labels = values[order], labels[order]
    normal = np.array([roles.is_normal(str(v)) for v in labels], dtype=np.bool_)
    return ReferenceTable(
        sensor_names=tuple(c.strip() for c in columns),
        values=values,
        labels=labels,
        normal=normal,
        series=series,
        notes=tuple(notes),
    )
