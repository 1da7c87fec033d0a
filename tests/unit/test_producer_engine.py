"""The simulation engine over long runs: bounds, means, failure statistics, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.partitioning import shard_table
from domain.simulation_model import FailureModel, SimulationModel
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.randomness import CounterStream, normals, uniforms
from producer.simulation.reference_data import ReferenceProfile, load_profile

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROFILE = load_profile(REPO / "data" / "data_sensors.csv", 20)


def run(
    engine: SimulationEngine, cycles: int
) -> tuple[list[CycleResult], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    results = [engine.step() for _ in range(cycles)]
    values = np.stack([r.values for r in results])  # (cycles, machines, sensors)
    failing = np.stack([r.failing for r in results])  # (cycles, machines)
    return results, values, failing


def engine(
    model: FailureModel, machines: int, profile: ReferenceProfile = PROFILE, seed: int = 7
) -> SimulationEngine:
    return SimulationEngine(
        profile,
        model,
        first_machine=0,
        count=machines,
        seed=seed,
        simulation_name="test",
        model=SimulationModel.ORIGINAL,
    )


ROUNDING = 5e-7


def test_readings_stay_within_bounds_and_are_rounded() -> None:
    _, values, failing = run(engine(FailureModel(), 200), 300)
    assert failing.any()
    healthy = values[~failing]
    assert np.all(healthy >= PROFILE.lower - ROUNDING)
    assert np.all(healthy <= PROFILE.upper + ROUNDING)
    assert np.all(values >= PROFILE.reading_lower - ROUNDING)
    assert np.all(values <= PROFILE.reading_upper + ROUNDING)
    assert np.all(PROFILE.reading_lower <= PROFILE.lower)
    assert np.all(PROFILE.reading_upper >= PROFILE.upper)
    assert np.array_equal(np.round(values, 6), values)


def test_walk_is_clipped_to_the_bounds() -> None:
    # A sensor whose std is large against its range keeps hitting the bounds.
    one = np.ones(1)
    profile = ReferenceProfile(
        source="synthetic", sensor_names=("Sensor 1",), mean=0 * one, std=10 * one,
        minimum=-one, maximum=one, lower=-1.2 * one, upper=1.2 * one,
        reading_lower=-1.2 * one, reading_upper=1.2 * one, normal_rows=2,
        failure_types=(), failure_rows=(), signature_mean=np.zeros((0, 1)),
        signature_std=np.zeros((0, 1)), normal_values=np.array([[-1.0], [1.0]]),
        failure_values=(),
    )  # fmt: skip
    _, values, _ = run(engine(FailureModel(probability=0), 100, profile), 100)
    assert values.min() == -1.2
    assert values.max() == 1.2


def test_long_run_mean_is_near_the_learned_mean() -> None:
    # Without failures the readings are the mean-reverting walk; its stationary std is
    # 0.1*std/sqrt(1-0.95**2) ~ 0.32 std, with autocorrelation 0.95 per cycle.
    _, values, _ = run(engine(FailureModel(probability=0.0), 200), 2000)
    mean = values[100:].mean(axis=(0, 1))
    assert np.all(np.abs(mean - PROFILE.mean) < 0.03 * PROFILE.std)
    spread = values[100:].std(axis=(0, 1))
    expected = 0.1 * PROFILE.std / math.sqrt(1 - 0.95**2)
    assert np.all(np.abs(spread / expected - 1) < 0.1)


def test_healthy_readings_keep_the_learned_mean_while_failures_happen() -> None:
    _, values, failing = run(
        engine(FailureModel(probability=0.02, min_cycles=5, max_cycles=10), 200), 1500
    )
    healthy = values[~failing]
    assert np.all(np.abs(healthy.mean(axis=0) - PROFILE.mean) < 0.05 * PROFILE.std)


@pytest.mark.parametrize("probability", [0.01, 0.05, 0.3])
def test_failure_start_rate_is_within_a_binomial_confidence_interval(probability: float) -> None:
    model = FailureModel(probability=probability, min_cycles=2, max_cycles=5, ramp_cycles=1)
    _, _, failing = run(engine(model, 400), 500)
    healthy_before = np.vstack([np.ones((1, failing.shape[1]), dtype=bool), ~failing[:-1]])
    starts = failing & healthy_before
    trials = int(healthy_before.sum())
    successes = int(starts.sum())
    # 99.99 % interval (z = 3.9); the seed is fixed, so the test is deterministic anyway.
    half_width = 3.9 * math.sqrt(trials * probability * (1 - probability))
    assert abs(successes - trials * probability) <= half_width, (successes, trials)


def episodes(failing: npt.NDArray[np.bool_]) -> list[tuple[int, int, int]]:
    """(machine, first cycle, length) of every complete episode."""
    found = []
    cycles, machines = failing.shape
    for m in range(machines):
        column = np.concatenate([[False], failing[:, m], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(column))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            if stop < cycles:  # ended inside the run
                found.append((m, int(start), int(stop - start)))
    return found


def test_episodes_last_within_range_ramp_linearly_and_keep_one_type() -> None:
    model = FailureModel(probability=0.1, min_cycles=4, max_cycles=9, ramp_cycles=3)
    results, _, failing = run(engine(model, 300), 300)
    types = np.stack([r.failure_type for r in results])
    progress = np.stack([r.progress for r in results])
    episode_cycle = np.stack([r.episode_cycle for r in results])
    found = episodes(failing)
    assert len(found) > 1000
    lengths = {length for _, _, length in found}
    assert lengths == set(range(4, 10))  # every length in [min, max] and nothing else
    for m, start, length in found:
        assert len(set(types[start : start + length, m].tolist())) == 1
        ks = np.arange(1, length + 1)
        assert episode_cycle[start : start + length, m].tolist() == ks.tolist()
        assert progress[start : start + length, m].tolist() == np.minimum(1.0, ks / 3).tolist()
    assert set(types[failing].tolist()) == set(range(len(PROFILE.failure_types)))


def test_a_healthy_reading_separates_consecutive_episodes() -> None:
    model = FailureModel(probability=1.0, min_cycles=3, max_cycles=3, ramp_cycles=1)
    _, _, failing = run(engine(model, 5), 12)
    assert failing[:, 0].tolist() == [True, True, True, False] * 3


def constant_profile(tmp_path: Path) -> ReferenceProfile:
    # Normal rows are constant (std 0: the walk stays at the mean); the failure rows too.
    path = tmp_path / "flat.csv"
    path.write_text("Sensor 1,Sensor 2,Label\n10,-4,\n10,-4,\n11,-2,leak\n11,-2,leak\n")
    return load_profile(path, 2)


def test_readings_blend_linearly_into_the_signature(tmp_path: Path) -> None:
    profile = constant_profile(tmp_path)
    model = FailureModel(probability=0.2, min_cycles=6, max_cycles=8, ramp_cycles=4)
    results, values, failing = run(engine(model, 50, profile), 200)
    progress = np.stack([r.progress for r in results])
    expected = np.stack([10 + progress * (11 - 10), -4 + progress * (-2 - -4)], axis=-1)
    assert failing.any()
    assert np.allclose(values, np.round(expected, 6), atol=1e-9)
    assert np.all(values[~failing] == [10, -4])


def test_failures_disabled_without_labels(tmp_path: Path) -> None:
    path = tmp_path / "normal.csv"
    path.write_text("Sensor 1,Label\n1,\n2,\n3,\n")
    eng = engine(FailureModel(probability=1.0), 10, load_profile(path, 1))
    assert not eng.failures_enabled
    _, _, failing = run(eng, 20)
    assert not failing.any()


@settings(max_examples=15, deadline=None)
@given(
    machines=st.integers(5, 40),
    shards=st.integers(2, 5),
    seed=st.integers(0, 2**64 - 1),
    cycles=st.integers(1, 40),
    kind=st.sampled_from(SimulationModel),
)
def test_machine_sequences_do_not_depend_on_the_shard_count(
    machines: int, shards: int, seed: int, cycles: int, kind: SimulationModel
) -> None:
    model = FailureModel(probability=0.2, min_cycles=2, max_cycles=6, ramp_cycles=2)

    def shard(first: int, count: int) -> SimulationEngine:
        return SimulationEngine(
            PROFILE,
            model,
            first_machine=first,
            count=count,
            seed=seed,
            simulation_name="det",
            model=kind,
        )

    whole = shard(0, machines)
    parts = [shard(r.start, r.size) for r in shard_table(machines, shards)]
    # the bundled rows show operating regimes: each machine's regime path is drawn per machine
    assert (whole.regimes is not None) == (kind is SimulationModel.LEARNED)
    for _ in range(cycles):
        one = whole.step()
        split = [p.step() for p in parts]
        assert np.array_equal(one.micros, np.concatenate([s.micros for s in split]))
        assert np.array_equal(one.failing, np.concatenate([s.failing for s in split]))
        joined_types = np.concatenate([s.failure_type for s in split])
        assert np.array_equal(one.failure_type[one.failing], joined_types[one.failing])


def test_seed_and_name_change_the_output() -> None:
    base = engine(FailureModel(), 5, seed=1).step().micros
    assert not np.array_equal(base, engine(FailureModel(), 5, seed=2).step().micros)
    other_name = SimulationEngine(
        PROFILE,
        FailureModel(),
        first_machine=0,
        count=5,
        seed=1,
        simulation_name="other",
        model=SimulationModel.ORIGINAL,
    )
    assert not np.array_equal(base, other_name.step().micros)
    assert np.array_equal(base, engine(FailureModel(), 5, seed=1).step().micros)


def test_counter_stream_is_addressable_by_machine() -> None:
    stream = CounterStream(5, "x", 8)
    whole = stream.words(3, 0, 100)
    assert np.array_equal(whole[37:61], stream.words(3, 37, 24))
    assert not np.array_equal(whole, stream.words(4, 0, 100))


def test_normal_and_uniform_variates_have_the_right_moments() -> None:
    words = CounterStream(1, "moments", 8).words(0, 0, 50_000).ravel()
    z = normals(words)
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1) < 0.01
    assert abs(np.mean(z**3)) < 0.02
    assert abs(np.mean(z**4) - 3) < 0.05
    assert np.abs(z).max() <= 4.1
    u = uniforms(words)
    assert u.min() >= 0
    assert u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005
