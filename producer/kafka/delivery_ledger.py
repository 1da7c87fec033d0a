"""The sink's delivery counts: ``sent = delivered + failed + pending``, exactly, whatever
happens to the client.

The records handed to each client instance are counted apart (a ``ClientGeneration``), so that
replacing the client keeps the totals exact: once a generation is retired, what it had not
resolved counts as failed and its late callbacks are ignored. ``sent`` is written by the cycle
loop's thread only; outcomes arrive from kafka-python's I/O thread; both go through one lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from producer.sinks.protocol import DeliveryStats

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds on a monotonic clock (``time.monotonic``)."""

_LOGGED_ERRORS = 10
"""Log the first delivery errors in full, then one summary line per ``_ERROR_LOG_EVERY``."""
_ERROR_LOG_EVERY = 10_000


@dataclass(eq=False, slots=True)
class ClientGeneration:
    """The records handed to one client instance and what became of them."""

    number: int
    started: float
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    retired: bool = False
    first_ack: float = 0.0
    """When the broker first acknowledged one of its batches (0: not yet)."""
    producers: set[tuple[int, int]] = field(default_factory=set)
    """(producer id, epoch) pairs the client used, for the delivery audit."""

    @property
    def unresolved(self) -> int:
        return self.sent - self.delivered - self.failed


class DeliveryLedger:
    """Counts every record from hand-over to outcome, per generation and in total."""

    def __init__(self, clock: Clock, on_error: Callable[[BaseException], None]) -> None:
        """``on_error`` hears every failed batch's error (after it is counted)."""
        self.stats = DeliveryStats()
        self._clock = clock
        self._on_error = on_error
        self._lock = threading.Lock()
        self._failed_batches = 0
        self.last_ack = clock()
        """When the broker last acknowledged a batch (or the ledger was reset)."""

    def new_generation(self, number: int) -> ClientGeneration:
        return ClientGeneration(number, self._clock())

    def reset_last_ack(self) -> None:
        """Start the wait for the first acknowledgement now (the client has just started)."""
        self.last_ack = self._clock()

    def count_sent(self, generation: ClientGeneration, count: int) -> None:
        """Records about to be queued; counted first, so that an acknowledgement arriving at
        once never finds more delivered than sent."""
        with self._lock:
            generation.sent += count
            self.stats.sent += count

    def now(self) -> float:
        """The ledger's clock: a batch's hand-over time for ``batch_done``'s ``sent_at``."""
        return self._clock()

    def batch_done(
        self,
        generation: ClientGeneration,
        records: int,
        error: BaseException | None,
        *,
        sent_at: float | None = None,
    ) -> None:
        """A batch's outcome, from kafka-python's I/O thread; ignored once retired. An
        acknowledged batch handed over at ``sent_at`` counts in the acknowledgement latency."""
        with self._lock:
            if generation.retired:
                return
            if error is None:
                generation.delivered += records
                self.stats.delivered += records
                self.last_ack = self._clock()
                if sent_at is not None:
                    self.stats.ack_latency.observe(self.last_ack - sent_at)
                if not generation.first_ack:
                    generation.first_ack = self.last_ack
                return
            generation.failed += records
        self._count_failure(error, records)

    def count_unsent(self, count: int, reason: str) -> None:
        """Records that never reached the client (no metadata): sent and failed at once."""
        if count <= 0:
            return
        with self._lock:
            self.stats.sent += count
            self.stats.failed += count
            self.stats.last_error = reason
            failed = self.stats.failed
        log.error("%d records not sent (%d failed so far): %s", count, failed, reason)

    def retire(self, generation: ClientGeneration) -> int:
        """Stop counting ``generation``'s callbacks; what it left unresolved counts as failed
        (returned)."""
        with self._lock:
            if generation.retired:
                return 0
            generation.retired = True
            lost = generation.unresolved
            generation.failed += lost
            self.stats.failed += lost
        return lost

    def credit_written(self, generation: ClientGeneration, written: int) -> int:
        """The broker holds ``written`` records of a retired generation: those beyond what it
        saw acknowledged move from failed to delivered (returned: how many)."""
        with self._lock:
            found = max(0, min(written - generation.delivered, generation.failed))
            generation.failed -= found
            generation.delivered += found
            self.stats.failed -= found
            self.stats.delivered += found
        return found

    def _count_failure(self, error: BaseException, records: int) -> None:
        with self._lock:
            before = self.stats.failed
            self.stats.failed += records
            failed = self.stats.failed
            self.stats.last_error = f"{type(error).__name__}: {error}"
            self._failed_batches += 1
            batches = self._failed_batches
        self._on_error(error)
        if batches <= _LOGGED_ERRORS:
            log.error(
                "delivery of %d records failed (%d so far): %s",
                records,
                failed,
                self.stats.last_error,
            )
        elif before // _ERROR_LOG_EVERY != failed // _ERROR_LOG_EVERY:
            log.error("%d deliveries failed so far; last: %s", failed, self.stats.last_error)
