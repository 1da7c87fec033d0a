"""Acceptance of the learned model: a seeded stream looks like its reference data.

On the bundled data, the original system's file and data sets generated here that the model
was never tuned on (skewed, bounded, two-mode, heavy-tailed, discrete and constant sensors,
strongly correlated groups, 3-5 failure types with 40-100 rows): 200 machines x 800 cycles with
the default settings, healthy readings after a 150-cycle burn-in thinned to one per 25 cycles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.simulation_model import SimulationModel
from producer.analysis.fidelity import ACCEPTANCE, FidelityReport, evaluate, simulate_sample
from producer.simulation.reference_data import ReferenceProfile, load_profile
from tests.synthetic_reference import SPECS, write

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def report_for(profile: ReferenceProfile, seed: int = 1) -> FidelityReport:
    return evaluate(profile, simulate_sample(profile, seed=seed))


def assert_accepted(report: FidelityReport) -> None:
    assert report.healthy_readings > 1000
    assert np.nanmax(report.ks) <= ACCEPTANCE["ks"], report.ks
    assert report.dependence_gap <= ACCEPTANCE["dependence_gap"]
    assert report.worst_signature_gap <= ACCEPTANCE["signature_gap"], report.signature_gap
    floor = report.reference_accuracy - ACCEPTANCE["accuracy_margin"]
    assert report.cross_accuracy >= floor, (report.cross_accuracy, report.reference_accuracy)
    assert report.median_failing_lag1 >= ACCEPTANCE["failing_lag1"]
    assert report.failed_checks() == []


def test_bundled_data() -> None:
    assert_accepted(report_for(load_profile(REPO / "data" / "data_sensors.csv")))


def test_original_reference_file(original_reference_csv: Path) -> None:
    assert_accepted(report_for(load_profile(original_reference_csv)))


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
