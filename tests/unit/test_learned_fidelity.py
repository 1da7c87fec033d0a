"""Acceptance of the learned model: a seeded stream looks like its reference data.

On the bundled data, the original system's file and data sets generated here that the model
was never tuned on (skewed, bounded, two-mode, heavy-tailed, discrete and constant sensors,
strongly correlated groups, 3-5 failure types with 40-100 rows): 200 machines x 800 cycles with
the default settings, healthy readings after a 150-cycle burn-in thinned by their persistence.
The classifier two-sample test (the slowest check) runs on the bundled file, the original file
and generated recordings with lagged dependence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.reference_columns import ReferenceColumns
from domain.simulation_model import SimulationModel
from producer.analysis.fidelity import ACCEPTANCE, FidelityReport, evaluate, simulate_sample
from producer.analysis.two_sample import classifier_auc, reference_lag1, reference_thinning
from producer.simulation.reference_data import ReferenceProfile, load_profile
from tests import lagged_reference, regime_reference
from tests.synthetic_reference import SPECS, write

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def report_for(
    profile: ReferenceProfile, seed: int = 1, *, classifier: bool = False
) -> FidelityReport:
    return evaluate(profile, simulate_sample(profile, seed=seed), classifier=classifier)


def assert_accepted(report: FidelityReport) -> None:
    assert report.healthy_readings > 1000
    assert np.nanmax(report.ks) <= ACCEPTANCE["ks"], report.ks
    assert report.dependence_gap <= ACCEPTANCE["dependence_gap"]
    assert report.worst_signature_gap <= ACCEPTANCE["signature_gap"], report.signature_gap
    floor = report.reference_accuracy - ACCEPTANCE["accuracy_margin"]
    assert report.cross_accuracy >= floor, (report.cross_accuracy, report.reference_accuracy)
    assert report.median_failing_lag1 >= ACCEPTANCE["failing_lag1"]
    if report.reference_lag1 is not None:
        assert report.worst_lag1_gap <= ACCEPTANCE["lag1"], report.stream_lag1
    if report.two_sample is not None:
        assert report.two_sample.auc <= report.classifier_bound, report.two_sample
    assert report.failed_checks() == []


def test_bundled_data() -> None:
    report = report_for(load_profile(REPO / "data" / "data_sensors.csv"), classifier=True)
    assert report.two_sample is not None
    assert_accepted(report)


def test_original_reference_file(original_reference_csv: Path) -> None:
    assert_accepted(report_for(load_profile(original_reference_csv), classifier=True))


LAGGED_COLUMNS = ReferenceColumns.parse(
    label="is_anomaly", label_set=True, normal_labels="0", time="timestamp", group="recording"
)


def lagged_profile(tmp_path: Path) -> ReferenceProfile:
    path = lagged_reference.write(tmp_path / "recordings.csv")
    return load_profile(path, columns=LAGGED_COLUMNS)


def test_recordings_with_lagged_dependence(tmp_path: Path) -> None:
    """Several recordings with an id, a timestamp and is_anomaly: each sensor's lag-1 is the
    reference's, and a classifier cannot tell the stream's healthy rows from the reference's."""
    profile = lagged_profile(tmp_path)
    report = report_for(profile, classifier=True)
    assert report.reference_lag1 is not None
    assert report.two_sample is not None
    assert report.two_sample.thin > 1  # the reference's rows are thinned: they persist
    assert_accepted(report)


def test_recordings_with_operating_regimes_and_machine_offsets(tmp_path: Path) -> None:
    """Machines that run in three regimes with their own dwell times and differ by persistent
    offsets: the stream with regimes meets every bound, and the classifier tells the stream
    without them apart from the reference better than the one with them."""
    path = regime_reference.write(tmp_path / "machines.csv")
    profile = load_profile(path, columns=LAGGED_COLUMNS)
    report = report_for(profile, classifier=True)
    assert report.two_sample is not None
    assert report.two_sample.auc <= ACCEPTANCE["classifier_auc"], report.two_sample
    assert_accepted(report)
    without = evaluate(profile, simulate_sample(profile, seed=1, regimes=1), classifier=True)
    assert without.two_sample is not None
    assert without.two_sample.auc > report.two_sample.auc + 0.05, (without.two_sample, report)


def test_the_lag1_check_fails_a_stream_with_the_wrong_persistence(tmp_path: Path) -> None:
    profile = lagged_profile(tmp_path)
    sample = simulate_sample(profile, persistence=0.2, seed=3)
    report = evaluate(profile, sample, classifier=False)
    assert "lag1" in report.failed_checks()
    assert report.worst_lag1_gap > 0.5


def test_the_classifier_two_sample_test_tells_apart_what_differs() -> None:
    rng = np.random.default_rng(5)
    same_a, same_b = rng.normal(size=(600, 3)), rng.normal(size=(600, 3))
    # out-of-fold AUC of rows from one law scatters around 0.5 (and a little below it)
    assert 0.35 < classifier_auc(same_a, same_b) < 0.6
    shifted = rng.normal(size=(600, 3)) + np.array([0.0, 1.5, 0.0])
    assert classifier_auc(same_a, shifted) > 0.75  # the best classifier: about 0.86


def test_only_a_time_series_is_thinned(tmp_path: Path) -> None:
    profile = lagged_profile(tmp_path)
    lag1 = reference_lag1(profile)
    assert lag1 is not None
    assert lag1.max() > 0.9
    # 0.94 ** 21 ~ 0.2: one row in about 21 is nearly independent of the next kept one
    assert 15 <= reference_thinning(profile, lag1) <= 30
    bundled = load_profile(REPO / "data" / "data_sensors.csv")
    assert reference_lag1(bundled) is None
    assert reference_thinning(bundled, None) == 1


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_data_sets_never_tuned_for(spec: object, tmp_path: Path) -> None:
    profile = load_profile(write(spec, tmp_path))  # type: ignore[arg-type]
    assert_accepted(report_for(profile, seed=7))


def test_the_original_model_misses_what_the_learned_one_meets() -> None:
    """The report can fail: the seed's walk has a third of the spread and no dependence."""
    profile = load_profile(REPO / "data" / "data_sensors.csv")
    report = evaluate(profile, simulate_sample(profile, model=SimulationModel.ORIGINAL))
    assert {"ks", "dependence_gap", "failing_lag1"} <= set(report.failed_checks())
    assert np.nanmin(report.ks) > 0.2
