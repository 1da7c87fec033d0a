"""A shard's machines across the segments of the configuration history (see
docs/continuity.md, "Configuration history").

Each segment a machine still has cycles to emit under gets an engine of its own, built with
that segment's model, persistence, failure settings and sensors (the latest segment's engine is
the shard's). A machine's state lives in the engine of the segment it is in; when its next
cycle belongs to a later segment it moves there through each boundary in turn, keeping what
still means something: the sensor state unless the model, the sensors or the reference data
changed (else a fresh draw for that machine and cycle), the failure episode unless the failure
types changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.scenarios import ScenarioError, parse_scenarios
from domain.simulation_model import FailureModel, SimulationModel
from producer.continuity.codec import StateArrays
from producer.continuity.history import History, episodes_kept, sensor_state_kept
from producer.errors import ReferenceDataError
from producer.serialisation import BodyEncoder
from producer.simulation.engine import SimulationEngine
from producer.simulation.episodes import FailureEpisodes
from producer.simulation.stream_settings import EngineSettings

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
EngineFactory = Callable[[EngineSettings], tuple[SimulationEngine, BodyEncoder]]
"""The engine and encoder of the shard's machines under a segment's engine settings."""


def segment_parameters(
    config: dict[str, Any],
) -> EngineSettings:
    """What an engine of a segment is built with, from the segment's configuration."""
    probability, min_cycles, max_cycles, ramp_cycles = config["failures"]
    return EngineSettings(
        model=SimulationModel(config["model"]),
        persistence=None if config["persistence"] is None else float(config["persistence"]),
        failures=FailureModel(
            probability=float(probability),
            min_cycles=int(min_cycles),
            max_cycles=int(max_cycles),
            ramp_cycles=int(ramp_cycles),
        ),
        sensors=len(config["sensors"]),
        interval_ms=int(config["interval_ms"]),
        scenarios=parse_scenarios(config.get("scenarios")),
        regimes=int(config.get("regimes", 1)),  # absent: recorded without regimes
    )


class ShardSegments:
    """The engines of a shard's machines per segment, and the segment each machine is in."""

    def __init__(
        self,
        history: History,
        latest: SimulationEngine,
        rows: int,
        factory: EngineFactory | None,
    ) -> None:
        self.history = history
        self._latest = history.latest.index
        self._engines: dict[int, SimulationEngine | None] = {self._latest: latest}
        self._encoders: dict[int, BodyEncoder | None] = {self._latest: None}
        self._factory = factory
        self.row_segment: IntArray = np.full(rows, self._latest, dtype=np.int64)

    @property
    def latest(self) -> SimulationEngine:
        engine = self._engines[self._latest]
        assert engine is not None
        return engine

    def engine(self, index: int) -> SimulationEngine | None:
        """The engine of segment ``index`` (built on first use; None if this process cannot
        build it: an earlier segment with more sensors than its reference data has)."""
        if index not in self._engines:
            config = self.history.segments[index].config
            built: tuple[SimulationEngine, BodyEncoder] | None = None
            if self._factory is not None:
                try:
                    built = self._factory(segment_parameters(config))
                except (ReferenceDataError, ScenarioError, KeyError, TypeError, ValueError) as exc:
                    log.warning(
                        "cannot rebuild segment %d of the configuration history (%s): its "
                        "cycles are skipped by the machines that are behind in it",
                        index,
                        exc,
                    )
            self._engines[index] = None if built is None else built[0]
            self._encoders[index] = None if built is None else built[1]
        return self._engines[index]

    def encoder(self, index: int) -> BodyEncoder | None:
        """The encoder of segment ``index`` (None: the shard's own)."""
        return self._encoders.get(index)

    # -- placing machines --------------------------------------------------------------------
    def place(self, rows: IntArray, index: int, state: StateArrays) -> None:
        """Machines ``rows`` restored from checkpoints written under segment ``index``."""
        engine = self.engine(index)
        if engine is not None:
            engine.restore_state(rows, state)
        self.row_segment[rows] = index

    def start(self, rows: IntArray, cycle: int) -> None:
        """Machines ``rows`` without a checkpoint, starting at ``cycle``: in the segment in force
        then, from a fresh state drawn for ``cycle`` (at cycle 0, the state every engine starts
        with)."""
        index = self.history.index_at(cycle)
        self.row_segment[rows] = index
        engine = self.engine(index)
        if engine is None or (cycle == 0 and index == self._latest):
            return
        engine.restore_state(rows, _started(engine, rows, cycle))

    def enter(self, rows: IntArray, cycle: int) -> None:
        """Move machines ``rows``, whose next cycle is ``cycle``, into the segment in force at
        ``cycle``, through each boundary in turn."""
        target = self.history.index_at(cycle)
        while rows.size:
            behind = rows[self.row_segment[rows] < target]
            if behind.size == 0:
                return
            index = int(self.row_segment[behind].min())
            moving = behind[self.row_segment[behind] == index]
            self._cross(moving, index, index + 1, cycle)
            rows = behind

    def _cross(self, rows: IntArray, before: int, after: int, cycle: int) -> None:
        old = self.engine(before)
        new = self.engine(after)
        self.row_segment[rows] = after
        if new is None:
            return
        if old is None:
            new.restore_state(rows, _started(new, rows, cycle))
            return
        state = old.export_state(rows)
        configs = self.history.segments
        carried = _started(new, rows, cycle)
        if sensor_state_kept(configs[before].config, configs[after].config):
            carried[new.state_names[0]] = state[old.state_names[0]]
            carried.update({name: state[name] for name in _process_extras(old, new)})
        if episodes_kept(configs[before].config, configs[after].config):
            carried.update({name: state[name] for name in FailureEpisodes.STATE})
        new.restore_state(rows, carried)

    # -- reading machines --------------------------------------------------------------------
    def groups(self, rows: IntArray) -> list[tuple[int, IntArray, StateArrays]]:
        """(segment, rows, state) of machines ``rows`` by the segment they are in (a machine in
        a segment this process could not rebuild has no state to give)."""
        groups = []
        for index in np.unique(self.row_segment[rows]).tolist():
            group = rows[self.row_segment[rows] == index]
            engine = self.engine(int(index))
            if engine is not None:
                groups.append((int(index), group, engine.export_state(group)))
        return groups


def _process_extras(old: SimulationEngine, new: SimulationEngine) -> list[str]:
    """The sensor process's state beyond its first array (the regimes) that both engines keep."""
    kept = set(old.state_names) & set(new.state_names)
    return [name for name in new.state_names[1:] if name in kept and name not in _EPISODES]


_EPISODES = frozenset(FailureEpisodes.STATE)


def _started(engine: SimulationEngine, rows: IntArray, cycle: int) -> StateArrays:
    """The state of machines that start at ``cycle``: a fresh sensor state, no episode."""
    count = len(rows)
    extra = engine.regimes.fresh_extra(rows, cycle) if engine.regimes is not None else {}
    return {
        engine.state_names[0]: engine.fresh_state(rows, cycle),
        **extra,
        "remaining": np.zeros(count, dtype=np.int64),
        "episode_cycle": np.zeros(count, dtype=np.int64),
        "failure_type": np.zeros(count, dtype=np.int64),
        "was_failing": np.zeros(count, dtype=np.bool_),
    }
