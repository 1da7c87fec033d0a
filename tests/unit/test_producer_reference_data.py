"""Learning from reference CSVs: the bundled set, the original system's file, bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from producer.errors import ReferenceDataError
from producer.simulation.reference_data import describe, load_profile, normalise_label
from tests.producer_process import run_producer

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "data_sensors.csv"


def test_bundled_data_set() -> None:
    profile = load_profile(BUNDLED, 20)
    assert profile.sensor_names == tuple(f"Sensor {n}" for n in range(1, 21))
    assert set(profile.failure_types) >= {"bearing_wear", "overheating", "pressure_leak"}
    assert profile.normal_rows >= 1000
    assert np.all(profile.lower <= profile.minimum)
    assert np.all(profile.upper >= profile.maximum)
    # distinct signatures: each type's most shifted sensor differs
    shift = np.abs(profile.signature_mean - profile.mean) / profile.std
    assert len({int(np.argmax(row)) for row in shift}) == len(profile.failure_types)


@pytest.mark.subprocess
def test_bundled_data_set_is_reproducible_by_its_script() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "data" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_original_systems_file(original_reference_csv: Path) -> None:
    profile = load_profile(original_reference_csv, 20)
    assert profile.sensor_names == tuple(f"Sensor {n}" for n in range(20))
    assert profile.normal_rows == 1560
    assert sorted(profile.failure_types) == ["1", "2", "3"]
    assert dict(zip(profile.failure_types, profile.failure_rows, strict=True)) == {
        "1": 10,
        "2": 10,
        "3": 20,
    }
    frame = pd.read_csv(original_reference_csv)
    normal = frame[frame["Label"].isna()]
    assert profile.std[0] == pytest.approx(normal["Sensor 0"].std(ddof=1))
    assert profile.lower[2] == pytest.approx(1.2 * normal["Sensor 2"].min())
    nine = profile.sensor_names.index("Sensor 9")
    assert profile.signature_mean[profile.failure_types.index("1"), nine] == pytest.approx(
        0.44, abs=0.01
    )
    assert "'1' (10 rows)" in describe(profile)


def test_first_num_sensors_columns_in_column_order(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("Label,Sensor 7,x,Sensor 2,Sensor 9\n,1,a,2,3\n,2,b,3,4\n")
    profile = load_profile(path, 2)
    assert profile.sensor_names == ("Sensor 7", "Sensor 2")
    assert profile.mean.tolist() == [1.5, 2.5]
    assert not profile.failures_enabled


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("", ""), ("1.0", "1"), (" 2 ", "2"), ("bearing_wear", "bearing_wear"), ("2.5", "2.5")],
)
def test_labels_are_normalised(raw: str, shown: str) -> None:
    assert normalise_label(raw) == shown


def test_single_row_failure_type_has_zero_std(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("Sensor 1,Label\n1,\n2,\n5,x\n")
    profile = load_profile(path, 1)
    assert profile.failure_types == ("x",)
    assert profile.signature_std.tolist() == [[0.0]]


BAD_FILES = {
    "empty": ("", "file is empty"),
    "header only": ("Sensor 1,Sensor 2,Label\n", "no data rows"),
    "no sensor columns": ("a,b,Label\n1,2,\n3,4,\n", "no sensor columns"),
    "non-numeric": ("Sensor 1,Sensor 2,Label\n1,2,\n1,abc,\n", "non-numeric value 'abc'"),
    "missing value": ("Sensor 1,Sensor 2,Label\n1,2,\n1,,\n", "missing value in column 'Sensor 2'"),
    "too narrow": ("Sensor 1,Label\n1,\n2,\n", "has 1 sensor columns"),
    "infinite": ("Sensor 1,Sensor 2,Label\n1,2,\n1,inf,\n", "non-numeric value 'inf'"),
    "repeated column": ("Sensor 1,Sensor 1,Label\n1,2,\n3,4,\n", "'Sensor 1' appears more"),
    "repeated after trimming": (
        "Sensor 1,Sensor 1 ,Label\n1,2,\n3,4,\n",
        "'Sensor 1' appears more",
    ),
    "one normal row": ("Sensor 1,Sensor 2,Label\n1,2,\n1,3,x\n", "at least 2 unlabelled"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_a_clear_error(tmp_path: Path, case: str) -> None:
    content, message = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ReferenceDataError) as info:
        load_profile(path, 2)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="file not found"):
        load_profile(tmp_path / "nope.csv", 2)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="directory"):
        load_profile(tmp_path, 2)


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "case", ["missing", "empty", "no sensor columns", "non-numeric", "missing value", "too narrow"]
)
def test_process_reports_bad_data_in_one_line_without_traceback(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.csv"
    message = "file not found"
    if case != "missing":
        content, message = BAD_FILES[case]
        path.write_text(content)
    result = run_producer(
        "--sink", "stdout", "--max-messages", "1", SENSOR_DATA_FILE=str(path), NUM_SENSORS="2"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert message in lines[0]
    assert result.stdout == ""


@pytest.mark.subprocess
def test_file_without_labels_runs_with_failures_disabled(tmp_path: Path) -> None:
    path = tmp_path / "normal.csv"
    rows = "\n".join(f"{i % 7},{(i * 3) % 5}," for i in range(50))
    path.write_text("Sensor 1,Sensor 2,Label\n" + rows + "\n")
    result = run_producer(
        "--sink", "stdout", "--max-messages", "40",
        SENSOR_DATA_FILE=str(path), NUM_SENSORS="2", NUM_MACHINES="4", FAILURE_PROBABILITY="1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no labelled rows: failures are disabled" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 40
    assert all('"has_failure":false' in line for line in lines)
