"""The message models and the timestamp format of the wire contract (DESIGN §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from domain.messages import (
    ExtendedSensorMessage,
    FailureInfo,
    SensorMessage,
    SensorReadings,
    format_epoch,
    format_timestamp,
)

pytestmark = pytest.mark.unit


def test_timestamp_is_utc_iso_with_milliseconds_and_offset() -> None:
    moment = datetime(2026, 11, 29, 13, 34, 56, 789999, tzinfo=timezone(timedelta(hours=1)))
    text = format_timestamp(moment)
    assert text == "2026-11-29T12:34:56.789+00:00"
    assert datetime.fromisoformat(text) == moment.replace(microsecond=789000)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 1, 1))


def test_epoch_formatting_truncates_to_milliseconds() -> None:
    assert format_epoch(0.0) == "1970-01-01T00:00:00.000+00:00"
    assert format_epoch(1_795_000_000.1239) == "2026-11-18T11:06:40.123+00:00"


def _message() -> SensorMessage:
    return SensorMessage(
        machine_id="3f2a9c1d",
        timestamp=datetime(2026, 11, 29, 12, 34, 56, 789000, tzinfo=UTC),
        readings=SensorReadings(
            readings={"Sensor 1": 0.452113, "Sensor 2": -0.120001}, has_failure=False
        ),
    )


def test_original_body_has_the_contract_keys_in_order() -> None:
    body = _message().to_json()
    assert body == (
        b'{"machine_id":"3f2a9c1d","timestamp":"2026-11-29T12:34:56.789+00:00",'
        b'"readings":{"readings":{"Sensor 1":0.452113,"Sensor 2":-0.120001},"has_failure":false}}'
    )
    assert list(orjson.loads(body)) == ["machine_id", "timestamp", "readings"]
    assert SensorMessage.from_json(body) == _message()


def test_extended_body_appends_seq_and_failure() -> None:
    base = _message()
    extended = ExtendedSensorMessage(
        **base.model_dump(),
        seq=7,
        failure=FailureInfo(type="bearing_wear", progress=0.3, cycle=3),
    )
    data = orjson.loads(extended.to_json())
    assert list(data) == ["machine_id", "timestamp", "readings", "seq", "failure"]
    assert data["failure"] == {"type": "bearing_wear", "progress": 0.3, "cycle": 3}
    assert ExtendedSensorMessage.from_json(extended.to_json()) == extended


@pytest.mark.parametrize(
    "change",
    [
        {"machine_id": "3F2A9C1D"},
        {"machine_id": "3f2a9c1"},
        {"timestamp": "2026-11-29T12:34:56.789"},
        {"extra": 1},
    ],
)
def test_invalid_bodies_are_rejected(change: dict[str, object]) -> None:
    data = orjson.loads(_message().to_json())
    data.update(change)
    with pytest.raises(ValidationError):
        SensorMessage.model_validate(data)


def test_failure_info_bounds() -> None:
    with pytest.raises(ValidationError):
        FailureInfo(type="x", progress=1.5, cycle=1)
    with pytest.raises(ValidationError):
        FailureInfo(type="x", progress=0.5, cycle=0)
