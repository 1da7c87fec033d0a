"""The message a machine publishes every cycle, as pydantic models.

The default ("original") body is the compatibility contract with the downstream consumers
that read the original system's records (README.md shows the body)::

    {"machine_id": "3f2a9c1d",
     "timestamp": "2026-11-29T12:34:56.789+00:00",
     "readings": {"readings": {"Sensor 1": 0.452113, ...}, "has_failure": false}}

The extended format appends ``seq`` and ``failure`` (``null`` while healthy). Sensor keys: the
extended format uses the reference table's column names (``bearing_temp``); the original format
keeps its ``Sensor <n>`` keys, numbered in the order of the sensor columns, whatever the
columns are called (``body_sensor_names``). The producer
builds the bytes with a vectorised encoder; these models are the readable definition, validate
bodies in tests, and serialise single messages (``to_json``) when speed does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_serializer

MACHINE_ID_PATTERN = r"^[0-9a-f]{8}$"


class MessageFormat(StrEnum):
    """Which body the producer emits."""

    ORIGINAL = "original"
    EXTENDED = "extended"


def body_sensor_names(names: Sequence[str], message_format: MessageFormat) -> tuple[str, ...]:
    """The keys of the readings in a body: the column names in the extended format; in the
    original format the names when they are all ``Sensor <n>``, else ``Sensor 1..N`` in column
    order.

    >>> body_sensor_names(["temp", "rpm"], MessageFormat.ORIGINAL)
    ('Sensor 1', 'Sensor 2')
    >>> body_sensor_names(["temp", "rpm"], MessageFormat.EXTENDED)
    ('temp', 'rpm')
    >>> body_sensor_names(["Sensor 3", "Sensor 7"], MessageFormat.ORIGINAL)
    ('Sensor 3', 'Sensor 7')
    """
    if message_format is MessageFormat.EXTENDED or all(
        re.fullmatch(r"Sensor\s+\d+", name) for name in names
    ):
        return tuple(names)
    return tuple(f"Sensor {j + 1}" for j in range(len(names)))


def format_timestamp(moment: datetime) -> str:
    """UTC, ISO-8601 with milliseconds and offset: ``2026-11-29T12:34:56.789+00:00``.

    >>> format_timestamp(datetime(2026, 11, 29, 12, 34, 56, 789123, tzinfo=UTC))
    '2026-11-29T12:34:56.789+00:00'
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def format_epoch(seconds: float) -> str:
    """``format_timestamp`` of a POSIX time (truncated to the millisecond)."""
    millis = int(seconds * 1000) if seconds >= 0 else -int(-seconds * 1000)
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    return format_timestamp(moment)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset")
    return moment


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class SensorReadings(BaseModel):
    """The inner ``readings`` object: values by sensor name, and the ground truth."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    readings: dict[str, float | None]
    """``null`` only where a dropout scenario removed the reading (docs/scenarios.md)."""
    has_failure: bool


class FailureInfo(BaseModel):
    """What the extended format says about an active failure episode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1)
    progress: float = Field(ge=0.0, le=1.0)
    cycle: int = Field(ge=1, description="1-based cycle within the episode")


class SensorMessage(BaseModel):
    """The original body: machine id, timestamp, readings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    machine_id: str = Field(pattern=MACHINE_ID_PATTERN)
    timestamp: AwareDatetime
    readings: SensorReadings

    @field_serializer("timestamp")
    def _serialise_timestamp(self, value: datetime) -> str:
        return format_timestamp(value)

    def to_json(self) -> bytes:
        """The body in wire form (compact JSON, keys in contract order)."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, body: bytes | str) -> SensorMessage:
        return cls.model_validate(_loads(body))


class ExtendedSensorMessage(SensorMessage):
    """The extended body: the original keys first, then ``seq`` and ``failure``; with
    scenarios (docs/scenarios.md) also ``health``, ``rul_cycles`` and ``quality``."""

    seq: int = Field(ge=0, description="per-machine sequence number (the cycle)")
    failure: FailureInfo | None
    health: float | None = Field(None, ge=0.0, le=1.0, description="degradation health index")
    rul_cycles: int | None = Field(None, ge=0, description="cycles to the failure")
    quality: str | None = Field(None, description="data-quality fault: <fault>:<sensors>")

    def to_json(self) -> bytes:
        """The body in wire form; the scenario keys only when one of them is set (the producer
        writes all three, null where they do not apply, in every record of a simulation with
        scenarios)."""
        data = self.model_dump(mode="json")
        if self.health is None and self.rul_cycles is None and self.quality is None:
            for key in SCENARIO_KEYS:
                del data[key]
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, body: bytes | str) -> ExtendedSensorMessage:
        return cls.model_validate(_loads(body))


SCENARIO_KEYS = ("health", "rul_cycles", "quality")


def _loads(body: bytes | str) -> dict[str, Any]:
    data = orjson.loads(body)
    if not isinstance(data, dict):
        raise ValueError("a message body is a JSON object")
    return data
