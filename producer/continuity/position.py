"""Where a shard's machines are in the simulation: the state that the start (restoration) sets
and the running checkpoints read, shared by both through one object."""

from __future__ import annotations

from dataclasses import dataclass, field

from producer.continuity.catch_up import Progress
from producer.continuity.history import History
from producer.continuity.schedule import Schedule
from producer.continuity.segments import ShardSegments


@dataclass
class ShardPosition:
    """The shard's machines (``machine_ids``, one per engine row), the simulation's schedule
    and configuration history, each row's progress, and (once restored) the engines of the
    segments the rows are in."""

    machine_ids: list[str]
    schedule: Schedule
    history: History
    progress: Progress
    segments: ShardSegments = field(init=False)
    """Set when the machines are restored (``Restoration.restore``)."""

    def completed(self, cycle: int, emitted: int) -> None:
        """Rows ``0..emitted-1`` emitted ``cycle``; the rest were stepped but not emitted."""
        progress = self.progress
        progress.next_cycle[:emitted] = cycle + 1
        if emitted < len(progress.next_cycle):
            progress.clean[emitted:] = False
