"""The cycle schedule of a simulation (see docs/continuity.md, "The schedule").

The schedule is piecewise: each segment of the configuration history starts a piece at its
``from_cycle``, due at ``start_ms``, with its own interval; cycle ``c`` of a piece is due at
``start_ms + (c - from_cycle) * interval_ms``. A new piece starts where the previous one had
put its first cycle, so each machine's timestamps stay monotone across an interval change.
A cycle's ``seq`` is ``c`` and its timestamp is its due time, whichever process emits it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.messages import format_timestamp

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Piece:
    """From ``from_cycle`` on: cycle ``from_cycle`` due at ``start_ms`` (POSIX milliseconds),
    then one every ``interval_ms`` (0: as fast as possible, no due times)."""

    from_cycle: int
    start_ms: int
    interval_ms: int


@dataclass(frozen=True, slots=True)
class Schedule:
    """When each cycle of the simulation is due. Kept in integer milliseconds, so every process
    stamps a cycle with the same millisecond."""

    pieces: tuple[Piece, ...]
    """By ``from_cycle`` (non-decreasing); the first starts at cycle 0."""

    @classmethod
    def uniform(cls, epoch_ms: int, interval_ms: int) -> Schedule:
        """Cycle ``c`` due at ``epoch_ms + c * interval_ms``."""
        return cls((Piece(0, epoch_ms, interval_ms),))

    @classmethod
    def starting(cls, seconds: float, interval_ms: int) -> Schedule:
        return cls.uniform(round(seconds * 1000), interval_ms)

    @property
    def epoch_ms(self) -> int:
        """POSIX milliseconds at which cycle 0 was due."""
        return self.pieces[0].start_ms

    @property
    def interval_ms(self) -> int:
        """The interval in force now (the last piece's)."""
        return self.pieces[-1].interval_ms

    @property
    def interval(self) -> float:
        return self.interval_ms / 1000

    def piece(self, cycle: int) -> Piece:
        """The piece ``cycle`` belongs to (the last one starting at or before it)."""
        starts = [p.from_cycle for p in self.pieces]
        return self.pieces[max(0, bisect.bisect_right(starts, cycle) - 1)]

    def due_ms(self, cycle: int) -> int:
        piece = self.piece(cycle)
        return piece.start_ms + (cycle - piece.from_cycle) * piece.interval_ms

    def due(self, cycle: int) -> float:
        """POSIX seconds at which ``cycle`` is due."""
        return self.due_ms(cycle) / 1000

    def stamped(self, cycle: int) -> bool:
        """Whether ``cycle`` has a due time to stamp (its piece has an interval)."""
        return self.piece(cycle).interval_ms > 0

    def timestamp(self, cycle: int) -> str:
        """The body timestamp of ``cycle``: its due time, to the millisecond."""
        return format_timestamp(_UNIX_EPOCH + timedelta(milliseconds=self.due_ms(cycle)))

    def current_cycle(self, now: float) -> int | None:
        """The latest cycle due at ``now`` (None when the last piece has no interval)."""
        last = self.pieces[-1]
        if last.interval_ms <= 0:
            return None
        return last.from_cycle + math.floor((now * 1000 - last.start_ms) / last.interval_ms)

    def first_cycle_at(self, moment: datetime) -> int:
        """The first cycle due at or after ``moment`` (cycle 0 before the epoch; with no
        interval in force at ``moment``, the first cycle of the next piece that has one, else
        the cycle after the last piece's start)."""
        ms = moment.timestamp() * 1000
        for index in range(len(self.pieces) - 1, -1, -1):
            piece = self.pieces[index]
            if ms < piece.start_ms and index > 0:
                continue
            if piece.interval_ms <= 0:
                later = self.pieces[index + 1 :]
                return later[0].from_cycle if later else piece.from_cycle + 1
            steps = max(0, math.ceil((ms - piece.start_ms) / piece.interval_ms))
            cycle = piece.from_cycle + steps
            following = self.pieces[index + 1 :]
            return min(cycle, following[0].from_cycle) if following else cycle
        return 0
