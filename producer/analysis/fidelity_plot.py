"""Pictures of a fidelity report (``fidelity --plot``): needs the optional matplotlib."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from producer.analysis.fidelity import FidelityReport, StreamSample
from producer.errors import ConfigError
from producer.simulation.reference_data import ReferenceProfile

INSTALL_HINT = "pip install 'sensorsim[plots]' (or: pip install matplotlib)"


def plot(
    path: Path, profile: ReferenceProfile, sample: StreamSample, report: FidelityReport
) -> None:
    """Reference vs stream histograms per sensor, the two rank-correlation matrices, then (a
    time series) each sensor's lag-1 autocorrelation in the stream and the reference."""
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise ConfigError(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None

    sensors = profile.num_sensors
    columns = min(5, sensors)
    lagged = report.reference_lag1 is not None
    rows = math.ceil(sensors / columns) + 1 + int(lagged)
    figure = plt.figure(figsize=(3.2 * max(columns, 2), 2.4 * rows + 1.5))
    grid = figure.add_gridspec(rows, max(columns, 2))
    for j, name in enumerate(profile.sensor_names):
        axis = figure.add_subplot(grid[j // columns, j % columns])
        reference = profile.normal_values[:, j]
        stream = sample.healthy[:, j]
        low = float(min(reference.min(), stream.min()))
        high = float(max(reference.max(), stream.max()))
        bins: list[float] | int = np.linspace(low, high, 40).tolist() if high > low else 1
        axis.hist(reference, bins=bins, density=True, alpha=0.5, label="reference")
        axis.hist(stream, bins=bins, density=True, alpha=0.5, label="stream")
        axis.set_title(f"{name} (KS {report.ks[j]:.3f})", fontsize=8)
        axis.tick_params(labelsize=6)
        if j == 0:
            axis.legend(fontsize=6)
    half = max(columns, 2) // 2
    for index, (title, matrix) in enumerate(
        (
            ("reference rank correlation", report.reference_spearman),
            (f"stream (max gap {report.dependence_gap:.3f})", report.stream_spearman),
        )
    ):
        start = index * half
        axis = figure.add_subplot(grid[rows - 1 - int(lagged), start : start + half])
        image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="coolwarm")
        axis.set_title(title, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(image, ax=figure.axes[-2:], shrink=0.8)
    if report.reference_lag1 is not None:
        _lag1_bars(figure.add_subplot(grid[rows - 1, :]), profile, report)
    test = report.two_sample
    shown = (
        "" if test is None else f"; classifier AUC {test.auc:.3f} (real vs real {test.floor:.3f})"
    )
    figure.suptitle(f"sensorsim fidelity: {profile.source}{shown}", fontsize=9)
    try:
        figure.savefig(path, dpi=110)
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)


def _lag1_bars(axis: Any, profile: ReferenceProfile, report: FidelityReport) -> None:
    """Each sensor's lag-1 autocorrelation, reference and stream side by side."""
    assert report.reference_lag1 is not None
    positions = np.arange(profile.num_sensors)
    axis.bar(positions - 0.2, report.reference_lag1, width=0.4, label="reference")
    axis.bar(positions + 0.2, report.stream_lag1, width=0.4, label="stream")
    axis.set_xticks(positions, profile.sensor_names, fontsize=6, rotation=45, ha="right")
    axis.set_title(f"lag-1 autocorrelation (worst gap {report.worst_lag1_gap:.3f})", fontsize=8)
    axis.tick_params(labelsize=6)
    axis.legend(fontsize=6)
