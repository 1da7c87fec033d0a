"""One cycle of one shard's readings, as the engine returns it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.simulation_model import MICROS
from producer.simulation.scenarios import ScenarioLabels

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class CycleResult:
    """One cycle of one shard; row ``i`` is machine ``first_machine + i``."""

    cycle: int
    micros: IntArray
    """Readings in millionths (rounded), shape (machines, sensors)."""
    failing: BoolArray
    failure_type: IntArray
    """Index into ``ReferenceProfile.failure_types``; meaningful where ``failing``."""
    progress: FloatArray
    episode_cycle: IntArray
    """1-based cycle within the episode; 0 where healthy."""
    started: BoolArray
    """An episode started at this cycle."""
    labels: ScenarioLabels | None = None
    """What scenarios did to the records of this cycle (None: no scenario is active)."""

    @property
    def values(self) -> FloatArray:
        """Readings rounded to 6 decimals, shape (machines, sensors)."""
        values: FloatArray = self.micros / MICROS
        return values
