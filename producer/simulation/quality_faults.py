"""Data-quality faults of a cycle, by shard row (``domain.scenarios.Quality``).

At most one fault per machine and cycle: of the quality scenarios active at a cycle, the one
listed last that hits the machine owns its record, and only the owner's fault is applied and
labelled (nothing is changed without its label). Which records a fault hits is a function of
(seed, simulation name, scenario, machine, cycle):

* over a window (no ``rate``): every record of it; ``out_of_order`` every other one (the
  first, the third, ...), since a held-back record is emitted after the next one;
* by ``rate``: each record with that chance, drawn from counter-based words addressed by
  (scenario key, machine, cycle); a fault of readings without named sensors draws its sensor
  per record.

An ``out_of_order`` record whose machine's previous record was also owned by an out-of-order
fault is left alone (unlabelled), so that a held-back record is always followed by its
machine's next record, which is emitted in place. Faults of readings change the cycle's
readings; faults of whole records (late, out of order, duplicate) are carried out where the
records are sent (``producer.record_faults``); neither touches the checkpointed state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from domain.scenarios import Quality, QualityFault, Scenario
from producer.simulation.randomness import derive_key, uniforms
from producer.simulation.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

DOMAIN_SCENARIO_MACHINE: Final = 2
"""Philox counter domain of the per-machine draws of a scenario (the engine uses 0 and 1)."""
DOMAIN_SCENARIO_CYCLE: Final = 3
"""... and of its per-cycle draws (which records a rate hits, a spike's sign)."""


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


class PlannedFault(Protocol):
    """What this module reads of a quality scenario resolved for a shard."""

    @property
    def scenario(self) -> Scenario: ...
    @property
    def rows(self) -> IntArray: ...
    @property
    def start(self) -> int | None: ...
    @property
    def sensors(self) -> BoolArray: ...
    @property
    def label_base(self) -> int: ...
    @property
    def label_rows(self) -> IntArray: ...
    @property
    def draws(self) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class RecordFaults:
    """What happens to each row's record where it is sent."""

    late_cycles: IntArray
    """Its timestamp is this many cycles in the past (0: on time)."""
    held: BoolArray
    """It is emitted after its machine's next record."""
    duplicate: BoolArray
    """It is emitted twice."""


@dataclass(frozen=True, slots=True)
class QualityOutcome:
    """A cycle's quality faults: readings (a copy when changed), labels, nulls, records."""

    readings: FloatArray
    quality: IntArray
    """Index into the label table, -1 where no fault."""
    nulls: BoolArray | None
    records: RecordFaults | None


def _action(planned: PlannedFault) -> Quality:
    action = planned.scenario.action
    assert isinstance(action, Quality)
    return action


class ShardQualityFaults:
    """The quality faults of one shard's rows ``0..count-1`` (machines ``first..``)."""

    def __init__(
        self, profile: ReferenceProfile, *, seed: int, name: str, first: int, count: int
    ) -> None:
        self._profile = profile
        self._seed = seed
        self._name = name
        self._first = first
        self.count = count

    def _cycle_draws(self, planned: PlannedFault, cycle: int) -> FloatArray:
        """Per-cycle uniforms of the scenario's rows: [hit, sensor, sign, unused]."""
        words = machine_words(
            self._seed,
            self._name,
            planned.scenario.key(),
            (self._first, self.count),
            cycle=cycle,
            domain=DOMAIN_SCENARIO_CYCLE,
        )
        return uniforms(words[planned.rows])

    def owners(
        self, faults: Sequence[PlannedFault], cycle: int
    ) -> tuple[IntArray, list[FloatArray | None]]:
        """Which of ``faults`` owns each row's record at ``cycle`` (-1: none), and each fault's
        per-cycle draws (None where it has neither a rate nor a spike)."""
        owner = np.full(self.count, -1, dtype=np.int64)
        draws: list[FloatArray | None] = []
        for i, planned in enumerate(faults):
            action = _action(planned)
            assert planned.start is not None
            rows = planned.rows
            needs = action.rate is not None or action.fault is QualityFault.SPIKE
            cycle_draws = self._cycle_draws(planned, cycle) if needs else None
            draws.append(cycle_draws)
            if action.rate is not None:
                assert cycle_draws is not None
                rows = rows[cycle_draws[:, 0] < action.rate]
            elif action.fault is QualityFault.OUT_OF_ORDER and (cycle - planned.start) % 2:
                continue
            owner[rows] = i
        return owner, draws

    def apply(
        self,
        faults: Sequence[PlannedFault],
        cycle: int,
        readings: FloatArray,
        previous: Callable[[int], Sequence[PlannedFault]],
    ) -> QualityOutcome:
        """Apply ``faults`` (the quality scenarios active at ``cycle``, in list order) to
        ``readings``; ``previous(cycle)``: those active at an earlier cycle."""
        owner, draws = self.owners(faults, cycle)
        self._hold_once(owner, faults, cycle, previous)
        quality = np.full(self.count, -1, dtype=np.int64)
        if not (owner >= 0).any():
            return QualityOutcome(readings, quality, None, None)
        readings = readings.copy()
        nulls: BoolArray | None = None
        records: RecordFaults | None = None
        for i, planned in enumerate(faults):
            own = np.flatnonzero(owner[planned.rows] == i)
            if own.size == 0:
                continue
            action = _action(planned)
            rows = planned.rows[own]
            if action.of_records:
                records = self._record_fault(action, rows, records)
                quality[rows] = planned.label_base
                continue
            sensors = planned.sensors[own]
            labels = planned.label_rows[own]
            cycle_draws = draws[i]
            if action.rate is not None and action.sensors is None:
                assert cycle_draws is not None
                names = self._profile.num_sensors
                chosen = np.minimum((cycle_draws[own, 1] * names).astype(np.int64), names - 1)
                sensors = np.zeros_like(sensors)
                sensors[np.arange(own.size), chosen] = True
                labels = planned.label_base + chosen
            if action.fault is QualityFault.DROPOUT and nulls is None:
                nulls = np.zeros(readings.shape, dtype=np.bool_)
            sign_draws = None
            if cycle_draws is not None:
                sign_draws = cycle_draws[own, 2 if action.rate is not None else 0]
            self._fault(planned, own, sensors, cycle, readings, nulls=nulls, sign_draws=sign_draws)
            quality[rows] = labels
        return QualityOutcome(readings, quality, nulls, records)

    def _hold_once(
        self,
        owner: IntArray,
        faults: Sequence[PlannedFault],
        cycle: int,
        previous: Callable[[int], Sequence[PlannedFault]],
    ) -> None:
        """Leave alone an out-of-order record whose machine's previous record was owned by an
        out-of-order fault too (its held-back record is released after this one)."""
        held = [i for i, p in enumerate(faults) if _action(p).fault is QualityFault.OUT_OF_ORDER]
        if not held or cycle == 0:
            return
        held_now = np.isin(owner, held)
        if not held_now.any():
            return
        before = previous(cycle - 1)
        earlier, _ = self.owners(before, cycle - 1)
        also = [i for i, p in enumerate(before) if _action(p).fault is QualityFault.OUT_OF_ORDER]
        owner[held_now & np.isin(earlier, also)] = -1

    def _record_fault(
        self, action: Quality, rows: IntArray, records: RecordFaults | None
    ) -> RecordFaults:
        if records is None:
            records = RecordFaults(
                np.zeros(self.count, dtype=np.int64),
                np.zeros(self.count, dtype=np.bool_),
                np.zeros(self.count, dtype=np.bool_),
            )
        if action.fault is QualityFault.LATE:
            records.late_cycles[rows] = action.late_cycles
        elif action.fault is QualityFault.OUT_OF_ORDER:
            records.held[rows] = True
        else:
            records.duplicate[rows] = True
        return records

    def _fault(
        self,
        planned: PlannedFault,
        own: IntArray,
        sensors: BoolArray,
        cycle: int,
        readings: FloatArray,
        *,
        nulls: BoolArray | None,
        sign_draws: FloatArray | None,
    ) -> None:
        """A fault of readings on the scenario's rows ``own`` (positions in its rows)."""
        action = _action(planned)
        assert planned.start is not None
        rows = planned.rows[own]
        block = readings[rows]
        std = np.broadcast_to(self._profile.std, block.shape)
        if action.fault is QualityFault.STUCK:
            reference = self._profile.normal_values
            picked = np.minimum(
                (planned.draws[own, 2] * reference.shape[0]).astype(np.int64),
                reference.shape[0] - 1,
            )
            block = np.where(sensors, reference[picked], block)
        elif action.fault is QualityFault.DROPOUT:
            assert nulls is not None
            block = np.where(sensors, 0.0, block)
            nulls[rows] |= sensors
        elif action.fault is QualityFault.SPIKE:
            assert sign_draws is not None
            sign = np.where(sign_draws[:, None] < 0.5, -1.0, 1.0)
            block = block + np.where(sensors, sign * action.magnitude * std, 0.0)
        else:
            offset = action.magnitude * (cycle - planned.start + 1) / action.cycles
            block = block + np.where(sensors, offset * std, 0.0)
        readings[rows] = block
