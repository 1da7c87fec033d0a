"""Isolated extremes: a cycle's fresh tail draws keep each component's standard normal law and
leave the state alone; a reference whose spikes do not persist gets them, and its stream then
keeps the reference's lag-1 of raw readings with its marginals and dependence; a reference
without spikes gets none; streams with them do not depend on the shard count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.partitioning import shard_table
from domain.reference_columns import ReferenceColumns
from domain.simulation_model import FailureModel, SimulationModel
from producer.analysis import fidelity
from producer.analysis.two_sample import reference_lag1
from producer.simulation.engine import SimulationEngine
from producer.simulation.isolated_extremes import IsolatedExtremes
from producer.simulation.randomness import normals
from producer.simulation.reference_data import ReferenceProfile, load_profile
from producer.simulation.regime_process import RegimeProcess
from producer.simulation.regimes import regimes_for
from tests import lagged_reference, spiky_reference
from tests.lagged_reference import LaggedSpec
from tests.spiky_reference import SPIKY, SpikySpec

pytestmark = pytest.mark.unit

COLUMNS = ReferenceColumns.parse(
    label="is_anomaly", label_set=True, normal_labels="0", time="timestamp", group="recording"
)


@pytest.fixture(scope="module")
def spiky(tmp_path_factory: pytest.TempPathFactory) -> ReferenceProfile:
    path = spiky_reference.write(tmp_path_factory.mktemp("spiky") / "impacts.csv", SpikySpec())
    return load_profile(path, columns=COLUMNS)


def engine(profile: ReferenceProfile, *, first: int = 0, count: int = 30) -> SimulationEngine:
    return SimulationEngine(
        profile,
        FailureModel(probability=0.0),
        first_machine=first,
        count=count,
        seed=3,
        simulation_name="extremes",
        model=SimulationModel.LEARNED,
    )


def test_emitted_components_stay_standard_normal_and_the_state_is_left_alone() -> None:
    generator = np.random.Philox(key=5)
    state = normals(generator.random_raw(3 * 200_000).reshape(3, 200_000))
    words = generator.random_raw(200_000 * 2).reshape(200_000, 2)
    kept = state.copy()
    extremes = IsolatedExtremes(np.array([0, 2]), np.array([0.02, 0.2]))
    emitted = extremes.emit(state, words)
    assert np.array_equal(state, kept)
    assert np.array_equal(emitted[1], state[1])
    for component, share in ((0, 0.02), (2, 0.2)):
        changed = emitted[component] != state[component]
        assert abs(changed.mean() - share) < 0.1 * share
        limit = np.abs(emitted[component][changed]).min()
        assert limit >= np.abs(state[component][~changed]).max()  # still in the tail
        # the fresh draws know nothing of the value they replace
        fresh, replaced = emitted[component][changed], state[component][changed]
        assert abs(np.corrcoef(fresh, replaced)[0, 1]) < 0.05
        # the same law as the state's: the largest gap between the two distribution functions
        grid = np.linspace(-4.0, 4.0, 161)
        emitted_cdf = np.searchsorted(np.sort(emitted[component]), grid) / state.shape[1]
        state_cdf = np.searchsorted(np.sort(state[component]), grid) / state.shape[1]
        assert np.abs(emitted_cdf - state_cdf).max() < 0.01


def test_spikes_that_do_not_persist_become_isolated_extremes_and_the_stream_keeps_the_lag1(
    spiky: ReferenceProfile,
) -> None:
    reference = reference_lag1(spiky)
    assert reference is not None
    found = regimes_for(spiky, components=None, persistence=None, interval_ms=None)
    assert found.extremes is not None
    assert set(found.extremes.components.tolist()) & set(SPIKY)
    assert 0 not in found.extremes.components  # the smooth sensor keeps its excursions
    assert isinstance(engine(spiky).process, RegimeProcess)
    sample = fidelity.simulate_sample(spiky, machines=120, cycles=700, burn_in=100, seed=2)
    report = fidelity.evaluate(spiky, sample, classifier=False)
    assert report.worst_lag1_gap <= 0.1, (report.stream_lag1, reference)
    assert float(report.ks.max()) <= 0.06
    gap = np.abs(report.stream_spearman - report.reference_spearman).max()
    assert gap <= 0.12


def test_without_isolated_extremes_the_stream_would_miss_that_lag1(
    spiky: ReferenceProfile,
) -> None:
    """What the test above guards against: the spiky sensors' lag-1 of raw readings is far
    below what their persistent bodies give (a copula with the body's lag-1 overshoots it)."""
    reference = reference_lag1(spiky)
    assert reference is not None
    ranks = np.argsort(np.argsort(spiky.normal_values, axis=0), axis=0).astype(np.float64)
    series = spiky.series
    assert series is not None
    same = series.groups[1:] == series.groups[:-1]
    for sensor in SPIKY:
        rank_lag1 = np.corrcoef(ranks[:-1, sensor][same], ranks[1:, sensor][same])[0, 1]
        assert rank_lag1 - reference[sensor] > 0.2


def test_a_reference_without_spikes_has_no_isolated_extremes(tmp_path: Path) -> None:
    path = tmp_path / "lagged.csv"
    lagged_reference.generate(LaggedSpec()).to_csv(path, index=False)
    profile = load_profile(path, columns=COLUMNS)
    found = regimes_for(profile, components=None, persistence=None, interval_ms=None)
    assert found.extremes is None


@pytest.mark.parametrize("shards", [2, 3])
def test_streams_with_isolated_extremes_do_not_depend_on_the_shard_count(
    spiky: ReferenceProfile, shards: int
) -> None:
    whole = engine(spiky, count=17)
    parts = [engine(spiky, first=r.start, count=r.size) for r in shard_table(17, shards)]
    for _ in range(30):
        one = whole.step()
        split = [p.step() for p in parts]
        assert np.array_equal(one.micros, np.concatenate([s.micros for s in split]))
