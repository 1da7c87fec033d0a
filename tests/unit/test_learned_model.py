"""The learned model's mechanics: tables, dependence, persistence, smooth failures, bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from domain.simulation_model import FailureModel, SimulationModel
from producer.errors import ReferenceDataError
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.learned_model import (
    fit_learned_model,
    lower_triangular_product,
    nearest_correlation,
    quantile_grid,
    spearman,
)
from producer.simulation.reference_data import (
    ReferenceProfile,
    check_learned_model_data,
    load_profile,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BUNDLED = load_profile(REPO / "data" / "data_sensors.csv")
FloatArray = npt.NDArray[np.float64]


def learned_engine(
    profile: ReferenceProfile,
    machines: int = 100,
    failures: FailureModel | None = None,
    persistence: float = 0.95,
    seed: int = 3,
) -> SimulationEngine:
    return SimulationEngine(
        profile,
        failures or FailureModel(),
        first_machine=0,
        count=machines,
        seed=seed,
        simulation_name="learned",
        model=SimulationModel.LEARNED,
        persistence=persistence,
    )


def run(engine: SimulationEngine, cycles: int) -> list[CycleResult]:
    return [engine.step() for _ in range(cycles)]


def csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "reference.csv"
    frame.to_csv(path, index=False)
    return path


def test_quantile_grid_is_monotone_and_stays_near_the_data() -> None:
    rng = np.random.default_rng(0)
    for column in (rng.lognormal(size=500), rng.uniform(0, 1, 300), rng.standard_t(2, 800)):
        grid = quantile_grid(column)
        assert np.all(np.diff(grid) >= 0)
        ordered = np.sort(column)
        # Beyond the data by the mean spacing of the five outermost order statistics.
        # (the grid's ends sit at the 3e-7 quantiles, a hair inside the extreme values)
        tolerance = 1e-3 * np.ptp(column)
        assert grid[0] == pytest.approx(ordered[0] - (ordered[4] - ordered[0]) / 4, abs=tolerance)
        assert grid[-1] == pytest.approx(
            ordered[-1] + (ordered[-1] - ordered[-5]) / 4, abs=tolerance
        )


def test_readings_stay_within_the_learned_ranges() -> None:
    engine = learned_engine(BUNDLED)
    values = np.stack([r.values for r in run(engine, 300)])
    model = fit_learned_model(BUNDLED.normal_values, BUNDLED.failure_values)
    tables = [model.normal, *(f.table for f in model.failures)]
    # readings on the reference's grid (4 decimals here) may round half a step past the tables
    half_step = 0.5 / model.grid_scale + 5e-7
    low = np.min([t.minimum for t in tables], axis=0)
    high = np.max([t.maximum for t in tables], axis=0)
    assert np.all(values >= low - half_step)
    assert np.all(values <= high + half_step)
    assert np.all(np.isfinite(values))
    assert engine.max_abs_reading == pytest.approx(
        max(np.abs(low).max(), np.abs(high).max()) + 0.5 / model.grid_scale.min()
    )


def test_latent_correlation_reproduces_rank_correlation() -> None:
    model = fit_learned_model(BUNDLED.normal_values, ())
    assert np.allclose(np.diag(model.correlation), 1.0)
    assert np.all(np.linalg.eigvalsh(model.correlation) > 0)
    expected = spearman(BUNDLED.normal_values)
    implied = 6 / np.pi * np.arcsin(model.correlation / 2)
    assert np.max(np.abs(implied - expected)) < 0.02


def test_nearest_correlation_repairs_an_invalid_matrix() -> None:
    broken = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(broken).min() < 0
    repaired = nearest_correlation(broken)
    assert np.linalg.eigvalsh(repaired).min() > 0
    assert np.allclose(np.diag(repaired), 1.0)
    np.linalg.cholesky(repaired)


def test_triangular_product_matches_matmul_and_does_not_depend_on_the_machine_count() -> None:
    rng = np.random.default_rng(1)
    matrix = np.tril(rng.normal(size=(7, 7)))
    vectors = rng.normal(size=(7, 5000))  # row by row
    whole = lower_triangular_product(matrix, vectors)
    assert np.allclose(whole, matrix @ vectors)
    for start, stop in ((0, 33), (17, 2999), (100, 4000), (4990, 5000)):
        assert np.array_equal(lower_triangular_product(matrix, vectors[:, start:stop]),
                              whole[:, start:stop])  # fmt: skip


@pytest.mark.parametrize("persistence", [0.0, 0.5, 0.95])
def test_persistence_sets_the_lag1_autocorrelation(persistence: float) -> None:
    engine = learned_engine(
        BUNDLED, machines=200, failures=FailureModel(probability=0), persistence=persistence
    )
    values = np.stack([r.values for r in run(engine, 200)])
    first, second = values[:-1].reshape(-1, 20), values[1:].reshape(-1, 20)
    lag1 = [np.corrcoef(first[:, j], second[:, j])[0, 1] for j in range(20)]
    assert np.all(np.abs(np.array(lag1) - persistence) < 0.06), lag1


def test_failing_readings_are_persistent_and_ramps_have_no_jumps() -> None:
    """At full progress a failing reading moves like a healthy one (in units of its type's
    spread; compared at the 90th percentile, as sparse outlying rows make a type's quantile
    function steep in places); while ramping in or out it moves by at most its share of the way
    between the two distributions on top of that. The original model redraws failing readings
    every cycle: its steps are 13-25x the healthy ones."""
    ramp = 10
    results = run(learned_engine(BUNDLED, machines=200), 400)
    values = np.stack([r.values for r in results])
    failing = np.stack([r.failing for r in results])
    full = np.stack([r.failing & (r.progress == 1.0) for r in results])
    types = np.stack([r.failure_type for r in results])
    steps = np.abs(np.diff(values, axis=0))
    healthy = ~failing[1:] & ~failing[:-1]
    healthy_p90 = np.percentile(steps[healthy] / BUNDLED.std, 90, axis=0)
    healthy_p99 = np.percentile(steps[healthy] / BUNDLED.std, 99, axis=0)
    for t, rows in enumerate(BUNDLED.failure_values):
        type_std = rows.std(axis=0, ddof=1)
        same = (types[1:] == t) & (types[:-1] == t)
        at_full = steps[full[1:] & full[:-1] & same] / type_std
        assert np.all(np.percentile(at_full, 90, axis=0) <= 1.5 * healthy_p90)
        ramping = (failing[1:] | failing[:-1]) & ~(full[1:] & full[:-1])
        ramping &= np.where(failing[1:], types[1:], types[:-1]) == t
        # how far apart the two distributions are, quantile by quantile (1st..99th)
        levels = np.arange(1, 100)
        distance = np.abs(
            np.percentile(rows, levels, axis=0)
            - np.percentile(BUNDLED.normal_values, levels, axis=0)
        ).max(axis=0)
        allowed = distance / ramp + 1.5 * healthy_p99 * np.maximum(BUNDLED.std, type_std)
        assert np.all(np.percentile(steps[ramping], 99, axis=0) <= allowed)


def test_progress_ramps_in_and_out_within_each_episode() -> None:
    model = FailureModel(probability=0.1, min_cycles=25, max_cycles=25, ramp_cycles=5)
    results = run(learned_engine(BUNDLED, machines=50, failures=model), 200)
    progress = np.stack([r.progress for r in results])
    episode = np.stack([r.episode_cycle for r in results])
    for cycle, machine in zip(*np.nonzero(episode == 1), strict=True):
        if cycle + 25 >= len(results):
            continue
        curve = progress[cycle : cycle + 25, machine]
        assert np.allclose(curve[:5], [0.2, 0.4, 0.6, 0.8, 1.0])
        assert np.all(curve[5:20] == 1.0)
        assert np.allclose(curve[20:], [1.0, 0.8, 0.6, 0.4, 0.2])
        assert progress[cycle + 25, machine] == 0.0


def test_constant_sensor_stays_constant_and_types_with_one_or_two_rows_work(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    normal = pd.DataFrame(
        {"Sensor 1": rng.normal(10, 2, 200), "Sensor 2": 4.25, "Sensor 3": rng.gamma(2, 3, 200)}
    )
    normal["Label"] = ""
    rare = pd.DataFrame(
        {"Sensor 1": [30.0, 31.0, 25.0], "Sensor 2": [4.25] * 3, "Sensor 3": [1.0, 2.0, 0.5]}
    )
    rare["Label"] = ["single", "pair", "pair"]
    profile = load_profile(csv(tmp_path, pd.concat([normal, rare])))
    model = FailureModel(probability=0.2, min_cycles=10, max_cycles=10, ramp_cycles=2)
    results = run(learned_engine(profile, machines=100, failures=model), 300)
    values = np.stack([r.values for r in results])
    assert np.all(np.isfinite(values))
    assert np.all(values[:, :, 1] == 4.25)
    full = np.stack([r.failing & (r.progress == 1.0) for r in results])
    types = np.stack([r.failure_type for r in results])
    single = values[full & (types == 0)][:, 0]
    assert abs(single.mean() - 30.0) < 1.0  # the normal shape, moved to the row's mean
    pair = values[full & (types == 1)][:, 0]
    assert abs(pair.mean() - 28.0) < 1.0


def test_too_few_normal_rows_is_a_clear_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(15, 10)), columns=[f"Sensor {i}" for i in range(10)])
    profile = load_profile(csv(tmp_path, frame))
    with pytest.raises(ReferenceDataError) as error:
        check_learned_model_data(profile)
    message = str(error.value)
    assert "reference.csv" in message
    assert "15 unlabelled (normal) rows" in message
    assert "at least 20" in message
    assert "SIMULATION_MODEL=original" in message


def test_without_labelled_rows_there_are_no_failures(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(100, 4)), columns=[f"Sensor {i}" for i in range(4)])
    engine = learned_engine(load_profile(csv(tmp_path, frame)))
    assert not engine.failures_enabled
    assert not any(r.failing.any() for r in run(engine, 50))


@pytest.mark.parametrize("kind", list(SimulationModel))
def test_exported_state_continues_the_stream_exactly(kind: SimulationModel) -> None:
    """What continuity checkpoints: a fresh engine given a machine's state and cycle goes on
    exactly as the machine would have."""
    model = FailureModel(probability=0.1, min_cycles=3, max_cycles=8, ramp_cycles=2)

    def make(first: int, count: int) -> SimulationEngine:
        return SimulationEngine(
            BUNDLED, model, first_machine=first, count=count, seed=9, simulation_name="state",
            model=kind,
        )  # fmt: skip

    whole = make(0, 12)
    for _ in range(30):
        whole.step()
    rows = np.arange(4, 12)
    state = whole.export_state(rows)
    assert set(state) == set(whole.state_names)
    resumed = make(4, 8)
    resumed.restore_state(np.arange(8), state)
    resumed.cycle = whole.cycle
    for _ in range(20):
        expected, got = whole.step(), resumed.step()
        assert np.array_equal(expected.micros[4:], got.micros)
        assert np.array_equal(expected.progress[4:], got.progress)
    with pytest.raises(ValueError, match="state names"):
        resumed.restore_state(np.arange(8), {"walk": state[whole.state_names[0]]})
