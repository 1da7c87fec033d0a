"""Hands a simulated cycle to the sink: encodes the rows, stamps them with the cycle's due time,
attaches the scenario labels, and carries out the faults of whole records (late, out of order,
duplicate) before the records leave."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from domain.messages import format_epoch
from producer.continuity.schedule import Schedule
from producer.runtime.metrics import ProducerMetrics
from producer.serialisation import BodyEncoder
from producer.simulation.engine import CycleResult
from producer.simulation.scenarios import record_headers
from producer.sinks.protocol import OutgoingCycle, Sink
from producer.sinks.record_faults import RecordFaultQueue


class CycleSender:
    """Sends cycles encoded by ``encoder`` to ``sink``, stamped by the schedule in force.

    The schedule is read through ``schedule_of`` on every cycle, because joining the simulation
    in the state topic replaces it after the sender is made."""

    def __init__(
        self,
        sink: Sink,
        encoder: BodyEncoder,
        schedule_of: Callable[[], Schedule],
        metrics: ProducerMetrics,
    ) -> None:
        self._sink = sink
        self._encoder = encoder
        self._schedule_of = schedule_of
        self._metrics = metrics
        self._held = RecordFaultQueue()
        """Records held back by an out-of-order fault, until their machine's next record."""

    @property
    def holding(self) -> bool:
        """Whether an out-of-order fault holds records back."""
        return len(self._held) > 0

    def send_rows(
        self, result: CycleResult, first: int, stop: int, skipped: int, encoder: BodyEncoder | None
    ) -> None:
        """Encode and hand over rows ``first..stop-1`` of a cycle, stamped with its due time
        (``encoder``: an earlier segment's, for a cycle caught up under it; None: the shard's)."""
        schedule = self._schedule_of()
        if schedule.stamped(result.cycle):
            timestamp = schedule.timestamp(result.cycle)
        else:
            timestamp = format_epoch(time.time())
        encoder = encoder or self._encoder
        bodies = encoder.encode(result, timestamp, stop)
        rows = slice(first, stop)
        labels = None
        if result.labels is not None:
            labels = record_headers(result.labels, first, stop)
        cycle = OutgoingCycle(
            seq=result.cycle,
            bodies=bodies[first:] if first else bodies,
            failing=result.failing[rows].tolist(),
            failure_type=result.failure_type[rows].tolist(),
            first_row=first,
            skipped=skipped,
            labels=labels,
        )
        faults = result.labels.records if result.labels is not None else None
        late = _LateStamps(encoder, schedule, result.cycle)
        for outgoing in self._held.outgoing(cycle, faults, late):
            self._sink.send_cycle(outgoing)
        self._metrics.observe_failures(
            result.failing[rows], result.started[rows], result.failure_type[rows]
        )

    def release_held(self) -> None:
        """Send the records an out-of-order fault holds back (before a checkpoint, or at the
        stop): none is lost, at the price of being in order."""
        for outgoing in self._held.release_all():
            self._sink.send_cycle(outgoing)

    def forget_held(self) -> None:
        """Drop held records: their transaction was aborted and the cycles are replayed."""
        self._held.clear()


@dataclass(frozen=True, slots=True)
class _LateStamps:
    """Restamps a late record of ``cycle``: the timestamp of the cycle ``k`` earlier (a cycle
    without a due time, SIMULATION_INTERVAL_MS=0, keeps its wall-clock stamp)."""

    encoder: BodyEncoder
    schedule: Schedule
    cycle: int

    def __call__(self, body: bytes, k: int) -> bytes:
        if not self.schedule.stamped(self.cycle):
            return body
        return self.encoder.restamp(body, self.schedule.timestamp(self.cycle - k))
