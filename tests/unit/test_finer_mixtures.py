"""Regimes of a signal that moves continuously around a loop (``tests/oscillating_reference``):
the criterion's few components cut the loop into arcs whose switching loses the readings'
persistence, so they are passed over for a finer mixture, whose stream keeps the lag-1, the
marginals, the dependence and passes the classifier two-sample test."""

from __future__ import annotations

import numpy as np
import pytest

from domain.reference_columns import ReferenceColumns
from producer.analysis import fidelity
from producer.simulation.mixture import COMPONENT_STEPS, choose_mixture, finer_mixtures
from producer.simulation.reference_data import ReferenceProfile, load_profile
from producer.simulation.regimes import regimes_for
from tests import oscillating_reference
from tests.oscillating_reference import OscillatingSpec

pytestmark = pytest.mark.unit

COLUMNS = ReferenceColumns.parse(
    label="is_anomaly", label_set=True, normal_labels="0", time="timestamp", group="recording"
)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> ReferenceProfile:
    directory = tmp_path_factory.mktemp("loop")
    path = oscillating_reference.write(directory / "loop.csv", OscillatingSpec())
    return load_profile(path, columns=COLUMNS)


def report(profile: ReferenceProfile, regimes: int | None) -> fidelity.FidelityReport:
    sample = fidelity.simulate_sample(
        profile, machines=120, cycles=700, burn_in=100, seed=2, regimes=regimes
    )
    return fidelity.evaluate(profile, sample, classifier=True)


def test_a_loop_gets_a_finer_mixture_that_keeps_its_lag1_and_passes_the_classifier(
    loop: ReferenceProfile,
) -> None:
    found = regimes_for(loop, components=None, persistence=None, interval_ms=None)
    assert found.rejected, "the criterion's choice keeps the lag-1: nothing to test"
    assert found.components > found.rejected[0]
    result = report(loop, None)
    assert result.worst_lag1_gap <= 0.1, result.stream_lag1
    assert float(result.ks.max()) <= 0.06
    assert np.abs(result.stream_spearman - result.reference_spearman).max() <= 0.12
    assert result.two_sample is not None
    assert result.two_sample.auc <= result.classifier_bound


def test_the_criterions_own_choice_would_miss_the_lag1(loop: ReferenceProfile) -> None:
    """What the test above guards against: the mixture the criterion chooses, kept as it is."""
    found = regimes_for(loop, components=None, persistence=None, interval_ms=None)
    result = report(loop, found.rejected[0])
    assert result.worst_lag1_gap > 0.1


def test_finer_mixtures_go_on_from_the_criterions_fits_best_all_rows_criterion_first() -> None:
    rng = np.random.default_rng(3)
    angle = rng.uniform(0.0, 2.0 * np.pi, 3000)
    rows = np.column_stack([np.cos(angle), np.sin(angle)]) + 0.05 * rng.normal(size=(3000, 2))
    probabilities = (np.argsort(np.argsort(rows, axis=0), axis=0) + 0.5) / len(rows)
    choice = choose_mixture(probabilities, most=24, effective=60.0)
    finer = finer_mixtures(probabilities, choice, most=24)
    fitted = {m.components for m in choice.candidates}
    assert choice.mixture not in finer
    assert max(m.components for m in finer) > max(fitted)
    assert {m.components for m in finer} <= set(COMPONENT_STEPS)
    assert finer[0].components > choice.mixture.components
    reused = [m for m in finer if m.components in fitted]
    assert all(any(m is c for c in choice.candidates) for m in reused)
