"""Learned dynamics: a VAR(1) in the copula's latent space, fitted to a reference time series
with known lagged dependence, per unit of time, with the stationary law kept exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from domain.reference_columns import ReferenceColumns
from domain.simulation_model import DEFAULT_PERSISTENCE, FailureModel, SimulationModel
from producer.simulation.dynamics import (
    LatentDynamics,
    fit_transition,
    latent_dynamics,
    matrix_power,
    step_matrices,
)
from producer.simulation.engine import LearnedProcess, SimulationEngine
from producer.simulation.learned_model import fit_learned_model
from producer.simulation.reference_data import ReferenceProfile, load_profile
from tests import lagged_reference
from tests.lagged_reference import SENSOR_NAMES, LaggedSpec

pytestmark = pytest.mark.unit

FloatArray = npt.NDArray[np.float64]
COLUMNS = ReferenceColumns.parse(
    label="is_anomaly", label_set=True, normal_labels="0", time="timestamp", group="recording"
)
STEP_MS = 500


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return lagged_reference.generate(LaggedSpec())


@pytest.fixture(scope="module")
def profile(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> ReferenceProfile:
    path = tmp_path_factory.mktemp("lagged") / "recordings.csv"
    frame.to_csv(path, index=False)
    return load_profile(path, columns=COLUMNS)


def engine(
    profile: ReferenceProfile,
    *,
    interval_ms: int | None = STEP_MS,
    persistence: float | None = None,
    machines: int = 1500,
    first: int = 0,
) -> SimulationEngine:
    return SimulationEngine(
        profile,
        FailureModel(probability=0),
        first_machine=first,
        count=machines,
        seed=11,
        simulation_name="dynamics",
        model=SimulationModel.LEARNED,
        persistence=persistence,
        interval_ms=interval_ms,
    )


def dynamics_of(sim: SimulationEngine) -> LatentDynamics:
    assert isinstance(sim.process, LearnedProcess)
    return sim.process.dynamics


def lagged_pairs(sim: SimulationEngine, cycles: int, lag: int = 1) -> tuple[FloatArray, FloatArray]:
    """Readings and the same machines' readings ``lag`` cycles later, stacked over cycles."""
    values = [sim.step().values for _ in range(cycles + lag)]
    return np.concatenate(values[:-lag]), np.concatenate(values[lag:])


def column_correlation(a: FloatArray, b: FloatArray) -> FloatArray:
    return np.array([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])])


def test_the_reference_has_the_dynamics_it_was_made_with(frame: pd.DataFrame) -> None:
    lag1 = lagged_reference.reference_lag(frame, 1)
    # own persistences 0.95 .. 0.3 in latent space, seen through the read-outs
    assert lag1[0] > 0.9
    assert np.all(np.diff(lag1[:4]) < 0), lag1
    assert lag1[4] < 0.7


def test_a_stream_at_the_references_interval_has_its_lag1_per_sensor(
    profile: ReferenceProfile, frame: pd.DataFrame
) -> None:
    sim = engine(profile)
    assert dynamics_of(sim).source == "learned from the time series"
    stream = column_correlation(*lagged_pairs(sim, 40))
    reference = lagged_reference.reference_lag(frame, 1)
    assert np.all(np.abs(stream - reference) <= 0.1), (stream, reference)
    # the learned persistences differ per sensor (not one value for all)
    assert stream.max() - stream.min() > 0.3


def test_a_stream_at_twice_the_interval_has_the_references_lag2(
    profile: ReferenceProfile, frame: pd.DataFrame
) -> None:
    stream = column_correlation(*lagged_pairs(engine(profile, interval_ms=2 * STEP_MS), 40))
    lag2 = lagged_reference.reference_lag(frame, 2)
    assert np.all(np.abs(stream - lag2) <= 0.1), (stream, lag2)
    lag1 = lagged_reference.reference_lag(frame, 1)
    assert np.all(stream < lag1 - 0.02), (stream, lag1)


def test_the_lead_and_lag_between_sensors_is_learned(
    profile: ReferenceProfile, frame: pd.DataFrame
) -> None:
    """Sensor 1 follows sensor 0 one step later, sensor 3 follows sensor 2: the stream's lagged
    cross-correlations are the reference's, in both directions."""
    ordered = frame.sort_values(["recording", "timestamp"])
    before, after = [], []
    for _, rows in ordered.groupby("recording"):
        values = rows[list(SENSOR_NAMES)].to_numpy()
        normal = rows["is_anomaly"].to_numpy() == 0
        both = normal[1:] & normal[:-1]
        before.append(values[:-1][both])
        after.append(values[1:][both])
    ref_before, ref_after = np.concatenate(before), np.concatenate(after)
    sim_before, sim_after = lagged_pairs(engine(profile), 40)
    for leader, follower in ((0, 1), (2, 3), (1, 4)):
        for first, second in ((leader, follower), (follower, leader)):
            reference = np.corrcoef(ref_before[:, first], ref_after[:, second])[0, 1]
            stream = np.corrcoef(sim_before[:, first], sim_after[:, second])[0, 1]
            assert abs(stream - reference) <= 0.1, (first, second, stream, reference)


def test_as_fast_as_possible_runs_at_the_references_step(profile: ReferenceProfile) -> None:
    assert dynamics_of(engine(profile, interval_ms=0)).steps == 1.0
    assert dynamics_of(engine(profile, interval_ms=None)).steps == 1.0
    assert dynamics_of(engine(profile, interval_ms=1500)).steps == pytest.approx(3.0)


def test_learned_dynamics_keep_the_references_marginals(profile: ReferenceProfile) -> None:
    sim = engine(profile, machines=400)
    values = np.concatenate([sim.step().values for _ in range(200)][::20])
    for j in range(profile.num_sensors):
        reference = np.sort(profile.normal_values[:, j])
        stream = np.sort(values[:, j])
        points = np.concatenate([reference, stream])
        gap = np.searchsorted(reference, points, side="right") / len(reference)
        gap -= np.searchsorted(stream, points, side="right") / len(stream)
        assert np.abs(gap).max() <= 0.06, SENSOR_NAMES[j]


def test_an_explicit_persistence_overrides_the_learned_dynamics(
    profile: ReferenceProfile,
) -> None:
    sim = engine(profile, persistence=0.5)
    dynamics = dynamics_of(sim)
    assert dynamics.transition is None
    assert dynamics.persistence == 0.5
    stream = column_correlation(*lagged_pairs(sim, 30))
    # 0.5 in latent space: every sensor near it, whatever the reference's persistence
    assert np.all(np.abs(stream - 0.5) < 0.1), stream


def test_without_a_time_column_the_default_persistence_runs(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "no-time.csv"
    frame.to_csv(path, index=False)
    columns = ReferenceColumns.parse(label="is_anomaly", label_set=True, normal_labels="0")
    profile = load_profile(path, columns=columns)
    dynamics = dynamics_of(engine(profile))
    assert dynamics.persistence == DEFAULT_PERSISTENCE
    assert dynamics.source == "default (no TIME_COLUMN)"


def test_readings_do_not_depend_on_the_machines_beside_them(profile: ReferenceProfile) -> None:
    """Many machines take the row-by-row product, few the column-by-column one: same bits."""
    many = engine(profile, machines=3200)
    few = engine(profile, machines=7, first=3193)
    for _ in range(5):
        assert np.array_equal(many.step().micros[-7:], few.step().micros)


def test_state_restored_into_another_engine_continues_the_same_readings(
    profile: ReferenceProfile,
) -> None:
    first = engine(profile, machines=20)
    for _ in range(3):
        first.step()
    rows = np.arange(20)
    state = first.export_state(rows)
    second = engine(profile, machines=20)
    second.restore_state(rows, state)
    second.cycle = first.cycle
    for _ in range(3):
        assert np.array_equal(first.step().micros, second.step().micros)


def test_the_innovation_keeps_the_stationary_law_exact(profile: ReferenceProfile) -> None:
    model = fit_learned_model(profile.normal_values, profile.failure_values)
    for steps in (1.0, 2.0, 0.5, 1.7):
        dynamics = latent_dynamics(
            model,
            persistence=None,
            interval_ms=int(STEP_MS * steps),
            values=profile.normal_values,
            series=profile.series,
            normal=profile.normal_mask,
        )
        a, c = dynamics.transition, dynamics.innovation
        assert a is not None
        assert c is not None
        assert dynamics.steps == pytest.approx(steps)
        r = model.correlation
        assert np.allclose(a @ r @ a.T + c @ c.T, r, atol=1e-9)
        assert np.array_equal(c, np.tril(c))


def test_a_transition_that_would_leave_no_innovation_is_shrunk_until_it_does(
    profile: ReferenceProfile,
) -> None:
    """Sampling noise (here: a series that is one long walk) can give a Yule-Walker matrix with
    R - A R A^T indefinite; the fit moves it toward its diagonal and scales it until the
    innovation is positive definite."""
    model = fit_learned_model(profile.normal_values, profile.failure_values)
    explosive = 1.3 * np.eye(profile.num_sensors)
    power, innovation = step_matrices(explosive, model, 1.0)
    assert np.all(np.isfinite(innovation))
    assert np.all(np.linalg.eigvalsh(innovation @ innovation.T) > 0)
    assert np.abs(np.diag(power)).max() < 1.0
    assert series_fit_is_stable(profile)


def series_fit_is_stable(profile: ReferenceProfile) -> bool:
    model = fit_learned_model(profile.normal_values, profile.failure_values)
    assert profile.series is not None
    assert profile.normal_mask is not None
    fitted = fit_transition(profile.normal_values, profile.series, profile.normal_mask, model)
    assert fitted is not None
    lower = model.cholesky
    whitened = np.linalg.inv(lower) @ fitted.matrix @ lower
    return bool(np.linalg.norm(whitened, 2) < 1.0)


def test_fractional_powers_compose() -> None:
    rng = np.random.default_rng(4)
    matrix = np.diag([0.9, 0.7, 0.4]) + 0.05 * rng.normal(size=(3, 3))
    half = matrix_power(matrix, 1.5)
    assert np.allclose(half @ half, matrix_power(matrix, 3.0), atol=1e-10)
    assert np.allclose(matrix_power(matrix, 2.0), matrix @ matrix)


def test_too_short_a_series_falls_back_to_the_default(tmp_path: Path) -> None:
    """Fewer consecutive pairs than the dependence needs: no VAR, the default persistence."""
    frame = lagged_reference.generate(LaggedSpec(recordings=3, rows=4))
    path = tmp_path / "short.csv"
    frame.to_csv(path, index=False)
    profile = load_profile(path, columns=COLUMNS)
    dynamics = dynamics_of(engine(profile))
    assert dynamics.transition is None
    assert dynamics.persistence == DEFAULT_PERSISTENCE
    assert "too few consecutive normal rows" in dynamics.source
