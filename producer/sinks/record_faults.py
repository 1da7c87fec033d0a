"""Faults of whole records, carried out on a cycle's outgoing records (the engine labels them,
``producer.simulation.quality_faults``; the bodies already say ``"quality"``):

* late: the body's timestamp is ``k`` cycles in the past (the record is sent on time);
* duplicate: the record is sent twice, the copy right after the cycle's records;
* out of order: the record is held back and sent right after its machine's next record.

A held-back record is never lost: it is sent before any checkpoint is written (a restart from
that checkpoint does not emit the record again) and before the producer stops. It is then
sent before its machine's next record, in order, still labelled; that happens only when a
checkpoint or the stop falls between the two records. Exactly-once: when a transaction is
aborted the held records are dropped with it (the replay emits them again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from producer.simulation.quality_faults import RecordFaults
from producer.sinks.protocol import OutgoingCycle

Restamp = Callable[[bytes, int], bytes]
"""``restamp(body, k)``: the body with its cycle's timestamp moved ``k`` cycles back."""


def _pick(cycle: OutgoingCycle, positions: Iterable[int]) -> OutgoingCycle:
    """The records at ``positions`` (indices into ``cycle.bodies``) as a cycle of their own."""
    chosen = list(positions)
    return OutgoingCycle(
        seq=cycle.seq,
        bodies=[cycle.bodies[i] for i in chosen],
        failing=[cycle.failing[i] for i in chosen],
        failure_type=[cycle.failure_type[i] for i in chosen],
        first_row=cycle.first_row + chosen[0],
        skipped=cycle.skipped,
        labels=None if cycle.labels is None else [cycle.labels[i] for i in chosen],
        rows=[cycle.first_row + i for i in chosen],
    )


class RecordFaultQueue:
    """Turns a cycle's records into what is sent, holding back the out-of-order ones."""

    def __init__(self) -> None:
        self._held: dict[int, OutgoingCycle] = {}
        """Shard row -> its held-back record (a cycle of one record)."""

    def __len__(self) -> int:
        return len(self._held)

    def outgoing(
        self, cycle: OutgoingCycle, faults: RecordFaults | None, restamp: Restamp
    ) -> list[OutgoingCycle]:
        """What to send for ``cycle`` (rows ``first_row..``), in order: its records but the
        held-back ones, the duplicates, then the records held back earlier of its machines."""
        first = cycle.first_row
        stop = first + len(cycle.bodies)
        released = [row for row in self._held if first <= row < stop]
        if faults is None and not released:
            return [cycle]
        sends: list[OutgoingCycle] = []
        held: list[int] = []
        if faults is not None:
            cycle = self._restamped(cycle, faults, restamp)
            held = np.flatnonzero(faults.held[first:stop]).tolist()
            duplicate = np.flatnonzero(faults.duplicate[first:stop]).tolist()
            if held:
                kept = sorted(set(range(len(cycle.bodies))) - set(held))
                if kept:
                    sends.append(_pick(cycle, kept))
            else:
                sends.append(cycle)
            if duplicate:
                sends.append(_pick(cycle, duplicate))
        else:
            sends.append(cycle)
        sends += self._release(released)
        for position in held:
            self._held[first + position] = _pick(cycle, [position])
        return sends

    def release_all(self) -> list[OutgoingCycle]:
        """Every held-back record, to send now (before a checkpoint, or at the stop)."""
        return self._release(list(self._held))

    def clear(self) -> None:
        """Forget the held-back records (their transaction was aborted)."""
        self._held.clear()

    def _release(self, rows: list[int]) -> list[OutgoingCycle]:
        """The held records of ``rows``, one cycle per (seq, skipped), rows ascending."""
        groups: dict[tuple[int, int], list[OutgoingCycle]] = {}
        for row in sorted(rows):
            record = self._held.pop(row)
            groups.setdefault((record.seq, record.skipped), []).append(record)
        return [
            OutgoingCycle(
                seq=seq,
                bodies=[r.bodies[0] for r in records],
                failing=[r.failing[0] for r in records],
                failure_type=[r.failure_type[0] for r in records],
                first_row=records[0].first_row,
                skipped=skipped,
                labels=[r.labels[0] if r.labels is not None else [] for r in records],
                rows=[r.first_row for r in records],
            )
            for (seq, skipped), records in sorted(groups.items())
        ]

    @staticmethod
    def _restamped(cycle: OutgoingCycle, faults: RecordFaults, restamp: Restamp) -> OutgoingCycle:
        first = cycle.first_row
        late = faults.late_cycles[first : first + len(cycle.bodies)]
        positions = np.flatnonzero(late).tolist()
        if not positions:
            return cycle
        bodies = list(cycle.bodies)
        for i in positions:
            bodies[i] = restamp(bodies[i], int(late[i]))
        return OutgoingCycle(
            seq=cycle.seq,
            bodies=bodies,
            failing=cycle.failing,
            failure_type=cycle.failure_type,
            first_row=cycle.first_row,
            skipped=cycle.skipped,
            labels=cycle.labels,
            rows=cycle.rows,
        )
