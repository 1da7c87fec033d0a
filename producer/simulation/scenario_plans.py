"""Scenarios resolved for a shard (``scenarios`` applies them cycle by cycle): which rows each
one targets, its window, its failure type or faulty sensors and its per-machine draws.

Every choice is drawn from counter-based words addressed by (scenario key, machine), not by
position in any list, so a machine is planned alike in any shard layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from domain.machine_ids import machine_id_values
from domain.scenarios import Degradation, Failure, Quality, Scenario
from producer.simulation.randomness import derive_key, normals, uniforms
from producer.simulation.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

DOMAIN_SCENARIO_MACHINE: Final = 2
"""Philox counter domain of the per-machine draws of a scenario (the engine uses 0 and 1)."""
DOMAIN_SCENARIO_CYCLE: Final = 3
"""... and of its per-cycle draws (a spike's sign)."""
PATH_SPREAD: Final = 0.25
"""Machines of one degradation differ: machine ``m`` follows the shape at ``u ** g_m`` with
``log g_m ~ N(0, PATH_SPREAD)`` (still 1 at the start, 0 at the end, monotone)."""


class ScenarioConfigError(ValueError):
    """A scenario that does not fit the simulation (an unknown failure type or sensor)."""


def machine_words(
    seed: int,
    name: str,
    key: int,
    machines: tuple[int, int],
    *,
    cycle: int = 0,
    domain: int = DOMAIN_SCENARIO_MACHINE,
) -> npt.NDArray[np.uint64]:
    """Four words per machine for scenario ``key``: of ``machines`` = (first, count), machine
    ``first + i`` gets row ``i``."""
    first, count = machines
    counter = np.array([first, key, cycle, domain], dtype=np.uint64)
    words: npt.NDArray[np.uint64] = (
        np.random.Philox(key=derive_key(seed, name), counter=counter)
        .random_raw(4 * count)
        .reshape(count, 4)
    )
    return words


@dataclass(frozen=True, slots=True)
class PlannedScenario:
    """One scenario resolved for this shard."""

    scenario: Scenario
    rows: IntArray
    """The shard rows it targets."""
    start: int | None
    """Its first cycle (None: a start time not yet turned into a cycle)."""
    end: int
    failure_type: int
    """Index of the failure type (failure, degradation), else -1."""
    sensors: BoolArray
    """Quality: which sensors of each targeted row, shape (rows, sensors)."""
    label_base: int
    """Quality: its first label in the plan's ``quality_labels``."""
    label_rows: IntArray
    """Quality: each targeted row's label."""
    draws: FloatArray
    """Per-row uniforms: [selection, sensor, stuck value, unused]."""
    warp: FloatArray
    """Per-row exponent of the degradation path (``PATH_SPREAD``)."""

    @property
    def steers(self) -> bool:
        """Whether it rewrites the failure episodes (every action but a quality fault)."""
        return not isinstance(self.scenario.action, Quality)


def plan_scenarios(
    scenarios: Sequence[Scenario],
    profile: ReferenceProfile,
    *,
    seed: int,
    simulation_name: str,
    first_machine: int,
    count: int,
) -> tuple[list[PlannedScenario], tuple[str, ...]]:
    """Each scenario resolved for shard rows ``0..count-1`` (machines ``first_machine..``),
    and the quality labels they index; ``ScenarioConfigError`` if one does not fit
    ``profile``."""
    labels: list[str] = []
    ids = machine_id_values(simulation_name, range(first_machine, first_machine + count))
    planned = []
    for scenario in scenarios:
        key = scenario.key()
        words = machine_words(seed, simulation_name, key, (first_machine, count))
        draws = uniforms(words)
        rows = _target_rows(scenario, first_machine, count, ids, draws[:, 0])
        warp = np.exp(PATH_SPREAD * normals(words[rows, 3]))
        planned.append(_plan(profile, scenario, rows, draws[rows], warp, labels=labels))
    return planned, tuple(labels)


def _plan(
    profile: ReferenceProfile,
    scenario: Scenario,
    rows: IntArray,
    draws: FloatArray,
    warp: FloatArray,
    *,
    labels: list[str],
) -> PlannedScenario:
    """``scenario`` on ``rows``, its quality labels appended to ``labels``."""
    action = scenario.action
    failure_type = -1
    sensors = np.zeros((rows.size, profile.num_sensors), dtype=np.bool_)
    label_rows = np.full(rows.size, -1, dtype=np.int64)
    base = len(labels)
    if isinstance(action, Failure | Degradation):
        if action.type not in profile.failure_types:
            raise ScenarioConfigError(
                f"scenario {scenario.label()!r}: failure type {action.type!r} is not one of "
                f"the reference data's types {list(profile.failure_types)}"
            )
        failure_type = profile.failure_types.index(action.type)
    if isinstance(action, Quality):
        names = profile.sensor_names
        if action.sensors is not None:
            unknown = [s for s in action.sensors if s not in names]
            if unknown:
                raise ScenarioConfigError(
                    f"scenario {scenario.label()!r}: sensors {unknown} are not among {list(names)}"
                )
            sensors[:, [names.index(s) for s in action.sensors]] = True
            labels.append(f"{action.fault.value}:{','.join(action.sensors)}")
            label_rows[:] = base
        else:
            chosen = np.minimum((draws[:, 1] * len(names)).astype(np.int64), len(names) - 1)
            sensors[np.arange(rows.size), chosen] = True
            labels.extend(f"{action.fault.value}:{name}" for name in names)
            label_rows = base + chosen
    start = scenario.start_cycle
    end = (start if start is not None else 0) + scenario.cycles
    return PlannedScenario(
        scenario, rows, start, end, failure_type, sensors, base, label_rows, draws, warp
    )


def _target_rows(
    scenario: Scenario,
    first: int,
    count: int,
    ids: npt.NDArray[np.uint64],
    selection: FloatArray,
) -> IntArray:
    target = scenario.target
    if target.all:
        return np.arange(count, dtype=np.int64)
    if target.fraction is not None:
        return np.flatnonzero(selection < target.fraction).astype(np.int64)
    if target.machines is not None:
        wanted = np.array(target.machines, dtype=np.int64)
        return np.unique(wanted[(wanted >= first) & (wanted < first + count)] - first)
    assert target.machine_ids is not None
    values = np.array([int(m, 16) for m in target.machine_ids], dtype=np.uint64)
    return np.flatnonzero(np.isin(ids, values)).astype(np.int64)
