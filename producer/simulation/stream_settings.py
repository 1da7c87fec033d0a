"""The settings an engine of a shard is built with, apart from the shard and the seed: what one
segment of a simulation's configuration history holds for the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.scenarios import Scenario
from domain.simulation_model import FailureModel, SimulationModel


@dataclass(frozen=True, slots=True)
class EngineSettings:
    model: SimulationModel
    persistence: float | None
    """The learned model's scalar persistence; None: the dynamics learned from the reference."""
    failures: FailureModel
    sensors: int
    """How many sensor columns of the reference data."""
    interval_ms: int
    scenarios: list[Scenario] = field(default_factory=list)
    regimes: int | None = None
    """The learned model's operating regimes (None: as many as the reference shows)."""
