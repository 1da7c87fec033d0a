"""Reference tables as users have them: named columns, a timestamp, a label column with its own
values, several recordings in one file; CSV and Parquet; quantised sensors; the failure share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from domain.messages import MessageFormat, body_sensor_names
from domain.reference_columns import ReferenceColumns
from domain.simulation_model import FailureModel, SimulationModel
from producer.errors import ReferenceDataError
from producer.settings import DEFAULT_DATA_FILE, load_settings
from producer.simulation.engine import SimulationEngine
from producer.simulation.learned_model import fit_learned_model
from producer.simulation.reference_data import describe, load_profile
from tests.producer_process import run_producer

pytestmark = pytest.mark.unit

SENSORS = ("ankle_vert", "bearing_temp", "pump_rpm", "flow")
RECORDING = ReferenceColumns.parse(
    label="is_anomaly", label_set=True, normal_labels="0", time="timestamp", group="recording"
)


def recordings(rows_per_recording: int = 120, recordings: int = 3, seed: int = 4) -> pd.DataFrame:
    """Several recordings, rows shuffled; ``bearing_temp`` on a 0.1 grid, ``pump_rpm``
    integers, a 5 % ``is_anomaly`` share."""
    rng = np.random.default_rng(seed)
    frames = []
    for r in range(recordings):
        n = rows_per_recording
        start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(hours=r)
        anomaly = (rng.uniform(size=n) < 0.05).astype(int)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": [start + pd.Timedelta(seconds=2 * i) for i in range(n)],
                    "recording": f"rec-{r}",
                    "ankle_vert": rng.normal(0.0, 1.0, n) + 3.0 * anomaly,
                    "bearing_temp": np.round(rng.normal(60.0, 4.0, n), 1),
                    "pump_rpm": rng.integers(1400, 1500, n).astype(float),
                    "flow": rng.gamma(2.0, 3.0, n),
                    "is_anomaly": anomaly,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        out = frame.copy()
        if "timestamp" in out:
            out["timestamp"] = out["timestamp"].map(lambda t: t.isoformat())
        out.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_recording_as_users_have_it_is_read_with_settings_alone(
    tmp_path: Path, suffix: str
) -> None:
    frame = recordings()
    profile = load_profile(write(frame, tmp_path / f"rec{suffix}"), columns=RECORDING)
    assert profile.sensor_names == SENSORS  # label, time and group columns are not sensors
    assert profile.failure_types == ("1",)
    assert profile.failure_rows == (int(frame["is_anomaly"].sum()),)
    assert profile.normal_rows == int((frame["is_anomaly"] == 0).sum())
    assert profile.labelled_share == pytest.approx(frame["is_anomaly"].mean())
    series = profile.series
    assert series is not None
    assert series.timestamps
    assert series.group_count == 3
    assert series.median_step == pytest.approx(2.0)
    # rows are ordered by recording, then time
    assert np.all(np.diff(series.groups) >= 0)
    same = series.groups[1:] == series.groups[:-1]
    assert np.all(np.diff(series.times)[same] > 0)
    text = describe(profile)
    assert "TIME_COLUMN" in text
    assert "GROUP_COLUMN" in text
    assert "NORMAL_LABELS" in text


def test_numeric_time_column_and_text_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    status = rng.choice(["NORMAL", "BROKEN", "RECOVERING"], size=200, p=[0.9, 0.04, 0.06])
    frame = pd.DataFrame(
        {"t": np.arange(200)[::-1] * 0.5, "s1": rng.normal(size=200), "machine_status": status}
    )
    roles = ReferenceColumns.parse(
        label="machine_status", label_set=True, normal_labels="NORMAL", time="t"
    )
    profile = load_profile(write(frame, tmp_path / "pump.csv"), columns=roles)
    assert set(profile.failure_types) == {"BROKEN", "RECOVERING"}
    assert profile.series is not None
    assert not profile.series.timestamps
    assert profile.series.median_step == 0.5
    assert np.all(np.diff(profile.series.times) > 0)


@pytest.mark.parametrize(
    ("roles", "change", "message"),
    [
        (ReferenceColumns.parse(label="status", label_set=True), None, "LABEL_COLUMN='status'"),
        (ReferenceColumns.parse(label="is_anomaly", label_set=True), None, "NORMAL_LABELS"),
        (ReferenceColumns.parse(sensors="flow,nope"), None, "SENSOR_COLUMNS names 'nope'"),
        (
            ReferenceColumns.parse(sensors="flow,is_anomaly", label="is_anomaly"),
            None,
            "'is_anomaly' is in SENSOR_COLUMNS and is LABEL_COLUMN",
        ),
        (RECORDING, ("timestamp", "yesterday"), "(TIME_COLUMN)"),
        (RECORDING, ("recording", None), "(GROUP_COLUMN)"),
        (
            ReferenceColumns.parse(sensors="ankle_vert,flow", label="is_anomaly"),
            ("flow", "abc"),
            "non-numeric value 'abc' in column 'flow'",
        ),
    ],
)
def test_every_refusal_names_the_column_and_the_setting(
    tmp_path: Path,
    roles: ReferenceColumns,
    change: tuple[str, str | None] | None,
    message: str,
) -> None:
    frame = recordings().astype({"recording": object, "flow": object})
    frame["timestamp"] = frame["timestamp"].map(lambda t: t.isoformat()).astype(object)
    if change is not None:
        frame.loc[5, change[0]] = change[1]
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ReferenceDataError) as info:
        load_profile(path, columns=roles)
    assert message in str(info.value)


def test_default_sensors_skip_text_columns_and_say_why(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "note": ["x", "y", "z"], "Label": ["", "", ""]})
    profile = load_profile(write(frame, tmp_path / "t.csv"))
    assert profile.sensor_names == ("a",)
    assert any("'note' (values that are not numbers)" in note for note in profile.notes)


def test_original_bodies_keep_sensor_keys_and_extended_bodies_the_names() -> None:
    assert body_sensor_names(SENSORS, MessageFormat.ORIGINAL) == (
        "Sensor 1",
        "Sensor 2",
        "Sensor 3",
        "Sensor 4",
    )
    assert body_sensor_names(SENSORS, MessageFormat.EXTENDED) == SENSORS


def test_quantised_sensors_stay_on_their_grid(tmp_path: Path) -> None:
    profile = load_profile(write(recordings(400), tmp_path / "q.csv"), columns=RECORDING)
    model = fit_learned_model(profile.normal_values, profile.failure_values)
    assert model.decimals.tolist() == [6, 1, 0, 6]
    engine = SimulationEngine(
        profile,
        FailureModel(probability=0.05, min_cycles=5, max_cycles=10, ramp_cycles=3),
        first_machine=0,
        count=50,
        seed=3,
        simulation_name="grid",
        model=SimulationModel.LEARNED,
        learned=model,
    )
    micros = np.concatenate([engine.step().micros for _ in range(60)])
    assert np.all(micros[:, 1] % 100_000 == 0)  # bearing_temp: tenths
    assert np.all(micros[:, 2] % 1_000_000 == 0)  # pump_rpm: integers
    assert np.any(micros[:, 0] % 100_000 != 0)  # a continuous sensor is not rounded


def test_with_defaults_the_bundled_failing_share_is_its_labelled_share() -> None:
    profile = load_profile(DEFAULT_DATA_FILE, 2)
    failures = load_settings().failure_model(profile.labelled_share)
    engine = SimulationEngine(
        profile,
        failures,
        first_machine=0,
        count=2000,
        seed=7,
        simulation_name="share",
        model=SimulationModel.LEARNED,
    )
    burn_in, cycles = 1500, 4500
    failing = 0
    for cycle in range(cycles):
        result = engine.step()
        if cycle >= burn_in:
            failing += int(result.failing.sum())
    share = failing / (2000 * (cycles - burn_in))
    assert profile.labelled_share == pytest.approx(200 / 3200)
    assert abs(share - profile.labelled_share) < 0.01


def test_explicit_failure_probability_wins_over_the_share() -> None:
    settings = load_settings(failure_probability=0.2, failure_share=0.01)
    assert settings.failure_model(0.06).probability == 0.2
    assert load_settings(failure_share=0.01).failure_model(0.06).failing_share() == (
        pytest.approx(0.01)
    )


def test_the_producer_runs_and_profiles_a_recording_with_settings_alone(tmp_path: Path) -> None:
    path = write(recordings(), tmp_path / "rec.parquet")
    env = {
        "SENSOR_DATA_FILE": str(path),
        "LABEL_COLUMN": "is_anomaly",
        "NORMAL_LABELS": "0",
        "TIME_COLUMN": "timestamp",
        "GROUP_COLUMN": "recording",
        "NUM_MACHINES": "3",
        "SIMULATION_SEED": "1",
    }
    profiled = run_producer("profile", **env)
    assert profiled.returncode == 0, profiled.stderr
    assert "median step 2 s" in profiled.stdout
    assert "(integers)" in profiled.stdout
    assert "(on a 0.1 grid)" in profiled.stdout
    assert "from the reference's labelled share" in profiled.stdout

    for message_format, keys in (("extended", SENSORS), ("original", ("Sensor 1",))):
        run = run_producer(
            "--sink", "stdout", "--max-messages", "6", MESSAGE_FORMAT=message_format, **env
        )
        assert run.returncode == 0, run.stderr
        bodies = [orjson.loads(line) for line in run.stdout.splitlines() if line.strip()]
        assert len(bodies) == 6
        assert set(keys) <= set(bodies[0]["readings"]["readings"])

    refused = run_producer("profile", **{**env, "LABEL_COLUMN": "label"})
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "LABEL_COLUMN='label'" in lines[0]
