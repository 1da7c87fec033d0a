"""What the learned model holds, as text (the ``profile`` command's second half)."""

from __future__ import annotations

import numpy as np

from domain.simulation_model import DECIMALS, SimulationModel
from producer.settings import ProducerSettings
from producer.simulation.dynamics import latent_dynamics
from producer.simulation.learned_model import GRID_CELLS, LearnedModel, spearman
from producer.simulation.reference_data import ReferenceProfile
from producer.simulation.regimes import regimes_for

_TOP_PAIRS = 8
_TOP_SHIFTS = 4


def _skewness(column: np.ndarray) -> float:
    centred = column - column.mean()
    spread = float(np.sqrt(np.mean(centred**2)))
    return float(np.mean(centred**3) / spread**3) if spread > 0 else 0.0


def _grid(decimals: int) -> str:
    if decimals >= DECIMALS:
        return ""
    return " (integers)" if decimals == 0 else f" (on a {10.0**-decimals:.{decimals}f} grid)"


def describe_learned(
    profile: ReferenceProfile, model: LearnedModel, settings: ProducerSettings
) -> str:
    normal = profile.normal_values
    names = profile.sensor_names
    lines = [
        "learned model (SIMULATION_MODEL=learned): each sensor's distribution is its normal "
        "rows' (quantiles below), dependence is their rank correlation",
        "",
        f"{'sensor':<12} {'p1':>11} {'p25':>11} {'median':>11} {'p75':>11} {'p99':>11} "
        f"{'skew':>6} {'range of readings':>25}",
    ]
    low = model.normal.base.reshape(-1, GRID_CELLS)[:, 0]
    high = model.normal.maximum
    for j, name in enumerate(names):
        q = np.percentile(normal[:, j], [1, 25, 50, 75, 99])
        note = (" (constant)" if model.constant[j] else "") + _grid(int(model.decimals[j]))
        lines.append(
            f"{name:<12} {q[0]:>11.4g} {q[1]:>11.4g} {q[2]:>11.4g} {q[3]:>11.4g} {q[4]:>11.4g} "
            f"{_skewness(normal[:, j]):>6.2f} {f'[{low[j]:.4g}, {high[j]:.4g}]':>25}{note}"
        )
    ranks = spearman(normal)
    upper = np.triu_indices(len(names), k=1)
    order = np.argsort(-np.abs(ranks[upper]), kind="stable")[:_TOP_PAIRS]
    lines += ["", "strongest dependencies (Spearman rank correlation of the normal rows):"]
    for index in order:
        a, b = upper[0][index], upper[1][index]
        lines.append(f"  {names[a]} ~ {names[b]}: {ranks[a, b]:+.3f}")
    lines += ["", *_dynamics(profile, model, settings), "", *_regimes(profile, settings)]
    if not profile.failures_enabled:
        return "\n".join(lines)

    lines += ["", "failure types (shifts of the median, in normal interquartile ranges):"]
    iqr = np.subtract(*np.percentile(normal, [75, 25], axis=0))
    safe = np.where(iqr > 0, iqr, np.where(profile.std > 0, profile.std, 1.0))
    for t, shape in enumerate(model.failures):
        rows = profile.failure_values[t]
        shift = (np.median(rows, axis=0) - np.median(normal, axis=0)) / safe
        top = np.argsort(-np.abs(shift), kind="stable")[:_TOP_SHIFTS]
        shown = ", ".join(f"{names[j]} {shift[j]:+.1f}" for j in top)
        if shape.rows < 3:
            dependence = "too few rows for a shape: the normal shape moved to the rows' mean"
        else:
            dependence = (
                f"dependence {shape.own_weight:.0%} its own, "
                f"{1 - shape.own_weight:.0%} the normal rows' (shrunk: {shape.rows} rows for "
                f"{len(names)} sensors)"
            )
        lines.append(f"  {profile.failure_types[t]!r} ({shape.rows} rows): {shown}")
        lines.append(f"      {dependence}")
    failures = settings.failure_model(profile.labelled_share)
    if settings.failure_probability is not None:
        source = "FAILURE_PROBABILITY (it wins over FAILURE_SHARE)"
    elif settings.failure_share is not None:
        source = "FAILURE_SHARE"
    elif settings.simulation_model is SimulationModel.LEARNED:
        source = (
            f"the reference's labelled share {profile.labelled_share:.2%} (FAILURE_SHARE unset)"
        )
    else:
        source = "the original model's default FAILURE_PROBABILITY"
    lines += [
        "",
        f"expected share of failing readings: {failures.failing_share():.2%}, from {source}: "
        f"start chance {failures.probability:.6f} per healthy cycle, episodes of "
        f"{failures.min_cycles}-{failures.max_cycles} cycles",
    ]
    return "\n".join(lines)


def _regimes(profile: ReferenceProfile, settings: ProducerSettings) -> list[str]:
    """The operating regimes found, their weights and dwell times, and the machine offsets."""
    regimes = regimes_for(
        profile,
        components=settings.simulation_regimes,
        persistence=settings.simulation_persistence,
        interval_ms=settings.simulation_interval_ms,
    )
    criteria = ", ".join(f"{k}: {c:.0f}" for k, c in regimes.choice.criteria)
    lines = [
        f"operating regimes: {regimes.components} (a Gaussian mixture copula of the normal rows; "
        f"information criterion by components, lower is better: {criteria}; "
        f"{regimes.choice.effective_rows:.0f} effective rows)"
    ]
    if regimes.rejected:
        lines.append(
            f"  passed over: {', '.join(map(str, regimes.rejected))} components (their regimes "
            "come and go too fast for the stream to keep the reference's lag-1)"
        )
    if regimes.components == 1 and regimes.extremes is None:
        lines.append("  one regime: every machine runs the model above, without offsets")
        return lines
    unit = ""
    if regimes.seconds_per_step is not None:
        unit = f" (a reference step is {regimes.seconds_per_step:g} s)"
    lines.append(f"  dwell: {regimes.dwell_source}{unit}")
    for k in range(regimes.components):
        lines.append(
            f"  regime {k + 1}: weight {regimes.weights[k]:.1%}, lasts "
            f"{regimes.dwell_cycles[k]:.1f} cycles on average"
        )
    share = regimes.offset_share
    lines.append(
        f"  machine offsets: {regimes.offset_source}"
        + (f"; up to {share.max():.1%} of a sensor's latent variance" if share.any() else "")
    )
    extremes = regimes.extremes
    if extremes is not None:
        shares = ", ".join(
            f"{profile.sensor_names[j]} {q:.1%}"
            for j, q in zip(extremes.components, extremes.shares, strict=True)
        )
        lines.append(
            f"  isolated extremes: {shares} of readings are a fresh draw from the tail every "
            "cycle (the reference's lag-1 of these sensors is below what persistent extremes "
            "give)"
        )
    return lines


def _dynamics(
    profile: ReferenceProfile, model: LearnedModel, settings: ProducerSettings
) -> list[str]:
    """How the latent state moves from one cycle to the next, and where that came from."""
    dynamics = latent_dynamics(
        model,
        persistence=settings.simulation_persistence,
        interval_ms=settings.simulation_interval_ms,
        values=profile.normal_values,
        series=profile.series,
        normal=profile.normal_mask,
    )
    if dynamics.fitted is None:
        return [f"in time: lag-1 {dynamics.persistence} for every sensor, {dynamics.source}"]
    fitted = dynamics.fitted
    unit = " s" if fitted.timestamps else ""
    lines = [
        f"in time: {dynamics.source} ({fitted.pairs} consecutive normal rows, median step "
        f"{fitted.median_step:g}{unit}); a cycle of {settings.simulation_interval_ms} ms is "
        f"{dynamics.steps:g} steps (SIMULATION_PERSISTENCE overrides)",
    ]
    if fitted.toward_diagonal > 0 or fitted.scaled < 1:
        lines.append(
            f"  kept stationary: moved {fitted.toward_diagonal:.0%} toward each sensor's own "
            f"persistence, scaled by {fitted.scaled:.3f}"
        )
    per_cycle = dynamics.lag1(model.correlation)
    shown = ", ".join(
        f"{name} {step:.2f}/{cycle:.2f}"
        for name, step, cycle in zip(
            profile.sensor_names, fitted.reference_lag1, per_cycle, strict=True
        )
    )
    lines.append(f"  latent lag-1 per reference step / per cycle: {shown}")
    return lines
