"""One generated recording as users have it: a ``timestamp`` at a fixed step, a ``recording``
id, the sensor columns and an ``is_anomaly`` column of zeros (for the generated references)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd


def recording_frame(
    values: npt.NDArray[np.float64],
    sensors: Sequence[str],
    *,
    index: int,
    step_seconds: float,
    decimals: int,
) -> pd.DataFrame:
    """Recording ``rec-<index>``, starting ``index`` hours into 2026."""
    frame = pd.DataFrame(np.round(values, decimals), columns=list(sensors))
    frame.insert(0, "recording", f"rec-{index}")
    start = pd.Timestamp("2026-01-01") + pd.Timedelta(hours=index)
    stamps = start + pd.to_timedelta(np.arange(len(values)) * step_seconds, unit="s")
    frame.insert(0, "timestamp", stamps.strftime("%Y-%m-%d %H:%M:%S.%f"))
    frame["is_anomaly"] = 0
    return frame


def write(frames: Sequence[pd.DataFrame], path: Path) -> Path:
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path
