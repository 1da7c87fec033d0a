"""The fixed cycle schedule of a simulation (see docs/continuity.md, "The schedule").

Cycle ``c`` is due at ``epoch + c * interval``; its ``seq`` is ``c`` and its timestamp is the
due time, whichever process emits it. The epoch is adopted from the state topic's simulation
record, so every producer of the simulation stamps a cycle alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.messages import format_timestamp

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When each cycle of the simulation is due (``interval_ms`` 0: as fast as possible).
    Kept in integer milliseconds, so every process stamps a cycle with the same millisecond."""

    epoch_ms: int
    """POSIX milliseconds at which cycle 0 was due."""
    interval_ms: int

    @classmethod
    def starting(cls, seconds: float, interval_ms: int) -> Schedule:
        return cls(round(seconds * 1000), interval_ms)

    @property
    def interval(self) -> float:
        return self.interval_ms / 1000

    def due(self, cycle: int) -> float:
        """POSIX seconds at which ``cycle`` is due."""
        return (self.epoch_ms + cycle * self.interval_ms) / 1000

    def timestamp(self, cycle: int) -> str:
        """The body timestamp of ``cycle``: its due time, to the millisecond."""
        return format_timestamp(
            _UNIX_EPOCH + timedelta(milliseconds=self.epoch_ms + cycle * self.interval_ms)
        )

    def current_cycle(self, now: float) -> int | None:
        """The latest cycle due at ``now`` (None without a schedule)."""
        if self.interval_ms <= 0:
            return None
        return math.floor((now * 1000 - self.epoch_ms) / self.interval_ms)
