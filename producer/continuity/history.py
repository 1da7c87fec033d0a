"""The configuration history of a simulation (see docs/continuity.md, "Configuration history").

A change of the settings that shape the stream is a new segment of the same simulation: from
one cycle on, every machine runs under the new configuration. Segment 0 is the simulation
record's configuration; segment ``n`` is agreed like the simulation record: of the proposals
for index ``n`` in the state topic, the one at the lowest offset wins. Pure: the state topic
reads and writes the records, the coordinator decides when to propose.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from producer.continuity.codec import SegmentRecord, SimulationRecord
from producer.continuity.schedule import Piece, Schedule

SENSOR_STATE_KEYS = ("model", "sensors", "data_sha256", "regimes")
"""Configuration keys whose change re-starts each machine's sensor state."""


def segment_zero(simulation: SimulationRecord) -> SegmentRecord:
    """The simulation record as the first segment: its configuration from cycle 0 at the epoch."""
    return SegmentRecord(
        index=0,
        from_cycle=0,
        start_ms=simulation.epoch_ms,
        interval_ms=int(simulation.config.get("interval_ms", 0)),
        config=simulation.config,
    )


@dataclass(frozen=True, slots=True)
class History:
    """Segments ``0..n`` in index order; ``from_cycle`` never decreases."""

    segments: tuple[SegmentRecord, ...]

    @classmethod
    def agree(cls, simulation: SimulationRecord, proposals: Iterable[SegmentRecord]) -> History:
        """The history every producer reads from the same records: for each index in turn, the
        first proposal in offset order (``proposals`` is in offset order) that does not start
        before the segment it follows. It ends at the first index without one."""
        segments = [segment_zero(simulation)]
        pending = list(proposals)
        while True:
            index = len(segments)
            previous = segments[-1]
            chosen = next(
                (p for p in pending if p.index == index and p.from_cycle >= previous.from_cycle),
                None,
            )
            if chosen is None:
                return cls(tuple(segments))
            segments.append(chosen)

    @property
    def latest(self) -> SegmentRecord:
        return self.segments[-1]

    def index_at(self, cycle: int) -> int:
        """The segment in force at ``cycle``: the last one starting at or before it."""
        starts = [s.from_cycle for s in self.segments]
        return max(0, bisect.bisect_right(starts, cycle) - 1)

    def schedule(self) -> Schedule:
        pieces = (Piece(s.from_cycle, s.start_ms, s.interval_ms) for s in self.segments)
        return Schedule(tuple(pieces))

    def change_cycle(self, now: float, highest_checkpoint: int) -> int:
        """The first cycle a new segment may govern: the cycle after the one due ``now`` (no
        producer emits a cycle before it is due), and never before a cycle some machine has
        already checkpointed (``highest_checkpoint``: the highest next cycle of any checkpoint;
        all there is to go by without an interval) or the latest segment's start."""
        current = self.schedule().current_cycle(now)
        after = highest_checkpoint if current is None else max(current + 1, highest_checkpoint)
        return max(after, self.latest.from_cycle)

    def proposal(self, config: dict[str, Any], from_cycle: int, now_ms: int) -> SegmentRecord:
        """The next segment: ``config`` from ``from_cycle`` on, its first cycle due when the
        schedule had put it (now, when the latest segment has no interval)."""
        last = self.latest
        if last.interval_ms > 0:
            start = last.start_ms + (from_cycle - last.from_cycle) * last.interval_ms
        else:
            start = max(now_ms, last.start_ms)
        return SegmentRecord(
            index=last.index + 1,
            from_cycle=from_cycle,
            start_ms=start,
            interval_ms=int(config.get("interval_ms", 0)),
            config=config,
        )

    def first_cycle(self, machine: int) -> int:
        """The cycle a machine without a checkpoint starts at: the start of the first segment
        whose fleet includes it (a configuration without ``machines``, written before the
        history recorded it, includes every machine)."""
        for segment in self.segments:
            machines = segment.config.get("machines")
            if machines is None or machine < int(machines):
                return segment.from_cycle
        return self.latest.from_cycle


def sensor_state_kept(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a machine's sensor state still means something after a change from ``before``
    to ``after``: the same model, sensors and reference data."""
    return all(before.get(key) == after.get(key) for key in SENSOR_STATE_KEYS)


def episodes_kept(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a machine's failure episode carries over: the same failure types (by name; a
    configuration that does not list them is compared by its reference data)."""
    if "failure_types" in before and "failure_types" in after:
        return bool(before["failure_types"] == after["failure_types"])
    return bool(before.get("data_sha256") == after.get("data_sha256"))


def differences(recorded: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """``key: recorded -> mine`` for every setting that differs (values shortened), by key."""
    return [
        f"{key}: {_short(recorded.get(key))} -> {_short(mine.get(key))}"
        for key in sorted(set(mine) | set(recorded))
        if mine.get(key) != recorded.get(key)
    ]


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
