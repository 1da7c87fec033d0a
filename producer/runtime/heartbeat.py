"""Liveness of the cycle loop: a heartbeat, so ``/healthz`` fails only when the loop is stuck.

The loop beats at every cycle and at least once a second while it waits (for the schedule,
for room in the sink's buffer, for metadata). The heartbeat is stale when no beat came for
``STALE_AFTER_SECONDS``, or for three times the longest recent cycle if that is longer (a
cycle of a million machines takes seconds of honest work). A stale heartbeat means the loop is
blocked where it should not be; the kubelet's liveness probe then restarts the container.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STALE_AFTER_SECONDS = 60.0
"""Longer than any bounded wait of the loop (each is at most ~1 s between beats) with a wide
margin for a loaded node; the operator's liveness probe adds 3 x 10 s on top."""


class Heartbeat:
    """Written by the cycle loop, read by the HTTP thread (plain floats: no lock needed)."""

    def __init__(
        self,
        stale_after: float = STALE_AFTER_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: monotonic seconds (a test passes a clock it moves by hand)."""
        self._stale_after = stale_after
        self._clock = clock
        self._last = clock()
        self._longest_cycle = 0.0

    def beat(self) -> None:
        self._last = self._clock()

    def cycle_took(self, seconds: float) -> None:
        """Report one cycle's duration (decays, so one slow cycle is forgotten)."""
        self._longest_cycle = max(seconds, self._longest_cycle * 0.99)
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last

    def alive(self) -> bool:
        return self.age() < max(self._stale_after, 3 * self._longest_cycle)
