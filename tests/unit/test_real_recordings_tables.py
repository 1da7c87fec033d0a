"""The readers and converters of bench/real_recordings.py, on small inline samples: a recording
as a package ships it becomes a table as users have it, which the producer reads with the
column settings alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import real_recordings as rr
from producer.settings import load_settings
from producer.simulation.reference_data import load_profile

pytestmark = pytest.mark.unit

TS_SAMPLE = """#A comment
@problemName BasicMotions
@dimensions 6
@classLabel true Standing Running Walking Badminton
@data
{standing}
{running}
"""


def ts_case(label: str, offset: float, length: int = 4) -> str:
    dimensions = [",".join(f"{offset + d + 0.1 * i:.1f}" for i in range(length)) for d in range(6)]
    return ":".join([*dimensions, label])


def ts_text() -> str:
    return TS_SAMPLE.format(standing=ts_case("Standing", 0.0), running=ts_case("Running", 10.0))


def test_parse_ts_reads_each_case_dimensions_by_length_and_its_label() -> None:
    cases = rr.parse_ts(ts_text())

    assert [label for _, label in cases] == ["Standing", "Running"]
    values, _ = cases[1]
    assert values.shape == (6, 4)
    np.testing.assert_allclose(values[2], [12.0, 12.1, 12.2, 12.3])


def test_parse_ts_refuses_a_file_without_data() -> None:
    with pytest.raises(ValueError, match="@data"):
        rr.parse_ts("@problemName X\n")


def test_basic_motions_table_has_one_recording_per_case_in_time_order() -> None:
    table = rr.basic_motions_table({"a_TRAIN.ts": ts_text().encode()})

    assert list(table.columns) == [
        "timestamp",
        "recording",
        *rr.BASIC_MOTIONS_SENSORS,
        "activity",
    ]
    assert list(table["recording"].unique()) == ["BM01", "BM02"]
    assert list(table["activity"].unique()) == ["Standing", "Running"]
    first = table[table["recording"] == "BM01"]["timestamp"]
    assert (first.diff().dropna() == rr.BASIC_MOTIONS_STEP).all()
    assert table.loc[5, "accel_y"] == pytest.approx(11.1)


def test_occupancy_and_daphnet_tables_name_their_columns_and_recording() -> None:
    occupancy = rr.occupancy_table(
        {"occupancy.csv": b"time,V1,V2,V3,V4\n2015-02-04 17:51:00,23.18,27.27,426.0,721.25\n"}
    )
    daphnet = rr.daphnet_table(
        {"S.csv": b"timestamp,ankle_vert,is_anomaly\n1970-01-01 00:04:40.000,1000,0\n"}
    )

    assert list(occupancy.columns) == [
        "timestamp",
        "recording",
        "temperature",
        "humidity",
        "light",
        "co2",
    ]
    assert list(daphnet.columns) == ["timestamp", "recording", "ankle_vert", "is_anomaly"]


def test_a_converted_table_is_read_with_its_column_settings_alone(tmp_path: Path) -> None:
    cases = "\n".join(ts_case(label, 3.0 * k, length=30) for k, label in enumerate("ABAB"))
    text = TS_SAMPLE.replace("{standing}\n{running}", cases)
    table = rr.basic_motions_table({"x.ts": text.encode()})
    rng = np.random.default_rng(1)
    sensors = list(rr.BASIC_MOTIONS_SENSORS)
    table[sensors] += rng.normal(size=(len(table), len(sensors)))
    path = tmp_path / "recordings.parquet"
    table.to_parquet(path)
    settings = {**rr.BY_NAME["basicmotions"].settings, "NORMAL_LABELS": "A"}

    loaded = load_settings(sensor_data_file=path, **{k.lower(): v for k, v in settings.items()})
    profile = load_profile(path, None, columns=loaded.reference_columns)

    assert profile.sensor_names == rr.BASIC_MOTIONS_SENSORS
    assert profile.normal_rows == 60
    assert profile.failure_types == ("B",)
    assert profile.series is not None
    assert isinstance(table["timestamp"].iloc[0], pd.Timestamp)
