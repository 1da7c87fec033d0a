"""Scenarios: timed actions on chosen machines, as data (docs/scenarios.md).

A scenario list is part of a simulation's configuration: the producer reads it from SCENARIOS
(inline JSON) or SCENARIOS_FILE (JSON or YAML), the operator from ``spec.scenarios``. Each
scenario names its machines (``target``), the cycle it starts at (``startCycle``, or
``startTime`` turned into a cycle by the simulation's schedule) and exactly one action:

* ``failure``: a failure episode of a type for a number of cycles, whatever the random process
  would have done;
* ``noFailures``: no failing reading for a number of cycles (random starts are suppressed and
  an episode under way ends);
* ``degradation``: a health index declining from 1 to 0 over ``cycles`` (shape linear,
  exponential or knee), the type's sensors moving toward its signature along it, then a
  failure of the type for ``failureCycles``; records carry the health and the remaining useful
  life;
* ``quality``: a data-quality fault, labelled in every record it touches: of some sensors
  (stuck, dropout, spike, drift) or of whole records (late, out of order, duplicated); on every
  record of its window, or on each with a chance (``rate``).

Keys are camelCase, as on the Kubernetes resource; the same document goes in SCENARIOS.
Everything here is pure: which machines a fraction selects is drawn by the producer from the
seed (``producer.simulation.scenarios``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Self

import orjson
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

MAX_SCENARIOS: Final = 100
MAX_TARGET_MACHINES: Final = 10_000
MAX_SCENARIO_CYCLES: Final = 1_000_000
MAX_START_CYCLE: Final = 2**53
MAX_NAME: Final = 63
MAX_MAGNITUDE: Final = 100.0
MAX_QUALITY_CYCLES: Final = 2**53
"""A quality fault's window may be unbounded in practice (random faults by rate run for ever)."""
DEFAULT_LATE_CYCLES: Final = 5
DEFAULT_DEGRADATION_FAILURE_CYCLES: Final = 30
DEFAULT_MAGNITUDE: Final = 6.0


class DegradationShape(StrEnum):
    """How the health index falls from 1 to 0 over a degradation."""

    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    """Slow at first, fast near the end (wear that accelerates)."""
    KNEE = "knee"
    """A slight decline up to ``knee`` of the way, then a steep one."""


class QualityFault(StrEnum):
    """Data-quality faults of a sensor's readings."""

    STUCK = "stuck"
    """The sensor repeats one value for the window."""
    DROPOUT = "dropout"
    """The reading is ``null``."""
    SPIKE = "spike"
    """The reading is ``magnitude`` standard deviations away, up or down."""
    DRIFT = "drift"
    """A calibration offset growing linearly to ``magnitude`` standard deviations."""
    LATE = "late"
    """The record's timestamp is ``lateCycles`` cycles in the past."""
    OUT_OF_ORDER = "out_of_order"
    """The record is emitted after its machine's next record."""
    DUPLICATE = "duplicate"
    """The record is emitted twice, byte for byte."""


RECORD_FAULTS: Final = frozenset(
    {QualityFault.LATE, QualityFault.OUT_OF_ORDER, QualityFault.DUPLICATE}
)
"""Faults of whole records (the others change readings)."""
WINDOW_FAULTS: Final = frozenset({QualityFault.STUCK, QualityFault.DRIFT})
"""Faults that only mean something over a window of records (not by rate)."""
RATE_FAULTS: Final = tuple(f for f in QualityFault if f not in WINDOW_FAULTS)


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("startTime must carry a UTC offset, e.g. 2026-12-01T08:00:00Z")
    return moment


class Target(_Model):
    """Which machines: exactly one of ``machines`` (indices), ``machineIds``, ``fraction``
    (each machine drawn with this chance from the seed), ``all``."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.machines), has(self.machineIds), has(self.fraction), "
                    "has(self.all) && self.all].filter(x, x).size() == 1",
                    "message": "a target is exactly one of machines, machineIds, fraction, all",
                }
            ]
        }
    )

    machines: list[Annotated[int, Field(ge=0, lt=2**32, description="A machine index.")]] | None = (
        Field(None, min_length=1, max_length=MAX_TARGET_MACHINES, description="Machine indices.")
    )
    machine_ids: (
        list[Annotated[str, Field(pattern=r"^[0-9a-f]{8}$", max_length=8, description="An id.")]]
        | None
    ) = Field(
        None, min_length=1, max_length=MAX_TARGET_MACHINES, description="Machine ids (8 hex)."
    )
    fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="Each machine's chance of being chosen (from the seed)."
    )
    all: bool = Field(False, description="Every machine.")

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [
            self.machines is not None,
            self.machine_ids is not None,
            self.fraction is not None,
            self.all,
        ]
        if sum(given) != 1:
            raise ValueError("a target is exactly one of machines, machineIds, fraction, all")
        return self


class Failure(_Model):
    """A failure episode on demand."""

    type: str = Field(min_length=1, max_length=256, description="A failure type (label).")
    cycles: int = Field(ge=1, le=MAX_SCENARIO_CYCLES, description="Length of the episode.")


class NoFailures(_Model):
    """No failing reading for a window."""

    cycles: int = Field(ge=1, le=MAX_SCENARIO_CYCLES, description="Length of the window.")


class Degradation(_Model):
    """A health index falling to 0, then a failure."""

    type: str = Field(min_length=1, max_length=256, description="The failure it ends in.")
    cycles: int = Field(ge=1, le=MAX_SCENARIO_CYCLES, description="Cycles from health 1 to 0.")
    shape: DegradationShape = Field(
        DegradationShape.LINEAR, description="linear, exponential or knee."
    )
    knee: float = Field(0.7, gt=0.0, lt=1.0, description="Where the knee shape turns steep.")
    failure_cycles: int = Field(
        DEFAULT_DEGRADATION_FAILURE_CYCLES,
        ge=1,
        le=MAX_SCENARIO_CYCLES,
        description="Length of the failure at the end.",
    )


class Quality(_Model):
    """A data-quality fault of some sensors or of whole records."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.rate) || !(self.fault in ['stuck', 'drift'])",
                    "message": "stuck and drift need a window: they take no rate",
                }
            ]
        }
    )

    fault: QualityFault = Field(
        description="stuck, dropout, spike, drift, late, out_of_order or duplicate."
    )
    cycles: int = Field(ge=1, le=MAX_QUALITY_CYCLES, description="Length of the window.")
    rate: float | None = Field(
        None, gt=0.0, le=1.0, description="Each record's chance of the fault (unset: every one)."
    )
    late_cycles: int = Field(
        DEFAULT_LATE_CYCLES, ge=1, le=MAX_SCENARIO_CYCLES, description="Late: cycles early."
    )
    sensors: (
        list[Annotated[str, Field(min_length=1, max_length=256, description="A sensor.")]] | None
    ) = Field(
        None, min_length=1, max_length=1000, description="Unset: one sensor per machine, drawn."
    )
    magnitude: float = Field(
        DEFAULT_MAGNITUDE, gt=0.0, le=MAX_MAGNITUDE, description="Spike or drift, in stds."
    )

    @model_validator(mode="after")
    def _rate_fits(self) -> Self:
        if self.rate is not None and self.fault in WINDOW_FAULTS:
            raise ValueError("stuck and drift need a window: they take no rate")
        return self

    @property
    def of_records(self) -> bool:
        """Whether it is a fault of whole records (late, out of order, duplicate)."""
        return self.fault in RECORD_FAULTS

    def label(self, sensors: Sequence[str]) -> str:
        """What a record it touches says (``quality``): ``<fault>:<sensors>``, ``late:<k>``,
        ``out_of_order``, ``duplicate``."""
        if self.fault is QualityFault.LATE:
            return f"late:{self.late_cycles}"
        if self.of_records:
            return self.fault.value
        return f"{self.fault.value}:{','.join(sensors)}"


class Scenario(_Model):
    """One timed action."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.failure), has(self.noFailures), has(self.degradation), "
                    "has(self.quality)].filter(x, x).size() == 1",
                    "message": "a scenario has exactly one of failure, noFailures, degradation, "
                    "quality",
                },
                {
                    "rule": "has(self.startCycle) != has(self.startTime)",
                    "message": "a scenario has exactly one of startCycle, startTime",
                },
            ]
        }
    )

    name: str | None = Field(None, min_length=1, max_length=MAX_NAME, description="Unique name.")
    target: Target = Field(description="Which machines.")
    start_cycle: int | None = Field(None, ge=0, le=MAX_START_CYCLE, description="First cycle.")
    start_time: Annotated[datetime, AfterValidator(_aware)] | None = Field(
        None,
        description="Or: the first cycle due at this time (RFC 3339 with offset).",
        json_schema_extra={"maxLength": 64},
    )
    failure: Failure | None = Field(None, description="A failure on demand.")
    no_failures: NoFailures | None = Field(None, description="No failures for a window.")
    degradation: Degradation | None = Field(None, description="Degradation to failure.")
    quality: Quality | None = Field(None, description="A data-quality fault.")

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        actions = [self.failure, self.no_failures, self.degradation, self.quality]
        if sum(a is not None for a in actions) != 1:
            raise ValueError(
                "a scenario has exactly one of failure, noFailures, degradation, quality"
            )
        if (self.start_cycle is None) == (self.start_time is None):
            raise ValueError("a scenario has exactly one of startCycle, startTime")
        return self

    @property
    def action(self) -> Failure | NoFailures | Degradation | Quality:
        action = self.failure or self.no_failures or self.degradation or self.quality
        assert action is not None
        return action

    @property
    def kind(self) -> str:
        """``failure``, ``noFailures``, ``degradation`` or ``quality``."""
        for kind in ("failure", "no_failures", "degradation", "quality"):
            if getattr(self, kind) is not None:
                return to_camel(kind)
        raise AssertionError("validated: one action")

    @property
    def cycles(self) -> int:
        """Cycles the scenario lasts from its start (a degradation's failure included)."""
        action = self.action
        if isinstance(action, Degradation):
            return action.cycles + action.failure_cycles
        return action.cycles

    def document(self) -> dict[str, Any]:
        """The scenario as JSON data, camelCase, unset fields left out."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data

    def key(self) -> int:
        """A 64-bit key of the scenario (its name, else its content), non-zero: the draws that
        pick a fraction's machines and a fault's sensors are addressed by it, so adding another
        scenario never changes them."""
        text = self.name if self.name is not None else orjson.dumps(self.document()).decode()
        digest = hashlib.blake2b(text.encode(), digest_size=8, person=b"sensorsim-scen").digest()
        return int.from_bytes(digest, "big") | 1

    def label(self) -> str:
        """The scenario's name, or ``<kind>@<start>``."""
        if self.name is not None:
            return self.name
        if self.start_time is not None:
            return f"{self.kind}@{self.start_time.isoformat()}"
        return f"{self.kind}@{self.start_cycle}"


def _unique_names(scenarios: list[Scenario]) -> list[Scenario]:
    names = [s.name for s in scenarios if s.name is not None]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"scenario names must be unique: {', '.join(duplicated)}")
    return scenarios


ScenarioList = Annotated[
    list[Scenario],
    Field(max_length=MAX_SCENARIOS + len(RATE_FAULTS)),  # with those of QUALITY_FAULT_RATE
    AfterValidator(_unique_names),
]
_ADAPTER: Final = TypeAdapter(ScenarioList)


class ScenarioError(ValueError):
    """A scenario document that cannot be read; the message says where and why."""


def parse_scenarios(data: Any) -> list[Scenario]:
    """Scenarios from JSON data (a list, or ``{"scenarios": [...]}``)."""
    if isinstance(data, dict) and set(data) == {"scenarios"}:
        data = data["scenarios"]
    if data is None:
        return []
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise ScenarioError("; ".join(problems)) from None


def parse_scenarios_text(text: str) -> list[Scenario]:
    """Scenarios from a JSON or YAML document (JSON is YAML; an empty document: none)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"not JSON or YAML: {exc}") from None
    return parse_scenarios(data)


def canonical(scenarios: Sequence[Scenario]) -> list[dict[str, Any]]:
    """The scenario list as the configuration history records it."""
    return [s.document() for s in scenarios]


def degradation_health(shape: DegradationShape, knee: float, progress: Any) -> Any:
    """Health index (1 = new, 0 = failed) at ``progress`` = elapsed / cycles in [0, 1];
    monotone non-increasing in ``progress``; works on floats and numpy arrays.

    >>> float(degradation_health(DegradationShape.LINEAR, 0.7, 0.25))
    0.75
    >>> float(degradation_health(DegradationShape.KNEE, 0.5, 0.5))
    0.85
    """
    # numpy is imported here, not with the module: the operator imports this module for the
    # spec's scenarios and would otherwise hold numpy (~20 MiB resident) for nothing.
    import numpy as np  # noqa: PLC0415

    u = np.clip(np.asarray(progress, dtype=np.float64), 0.0, 1.0)
    if shape is DegradationShape.LINEAR:
        return 1.0 - u
    if shape is DegradationShape.EXPONENTIAL:
        return 1.0 - np.expm1(EXPONENTIAL_RATE * u) / np.expm1(EXPONENTIAL_RATE)
    early = 1.0 - KNEE_DROP * u / knee
    late = (1.0 - KNEE_DROP) * (1.0 - (u - knee) / (1.0 - knee))
    return np.where(u <= knee, early, late)


EXPONENTIAL_RATE: Final = 4.0
"""``exponential``: health ``1 - (e^(4u) - 1) / (e^4 - 1)``: 2 % of the decline in the first
quarter, 63 % in the last."""
KNEE_DROP: Final = 0.15
"""``knee``: the health lost before the knee."""


def random_quality_faults(
    rate: float, faults: Sequence[QualityFault], *, start_cycle: int = 0
) -> list[Scenario]:
    """The scenarios of QUALITY_FAULT_RATE: every machine, from ``start_cycle`` for ever, each
    record faulty with chance ``rate``, the fault one of ``faults`` (each its share of the
    rate; one sensor drawn per record for the faults of readings)."""
    share = rate / len(faults)
    return [
        Scenario(
            target=Target(all=True),
            start_cycle=start_cycle,
            quality=Quality(fault=fault, cycles=MAX_QUALITY_CYCLES, rate=share),
        )
        for fault in faults
    ]
