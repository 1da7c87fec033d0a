"""What the cycle loop hands to a sink, and what every sink provides."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Final, Protocol

ACK_LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds) of the acknowledgement latency histogram's buckets."""


@dataclass(frozen=True, slots=True)
class OutgoingCycle:
    """The records of one cycle, machine by machine (row i = i-th machine of the shard)."""

    seq: int
    bodies: list[bytes]
    failing: list[bool]
    failure_type: list[int]
    """Index into the sink's failure type names; meaningful where ``failing``."""
    first_row: int = 0
    """Row of the shard of ``bodies[0]`` (catch-up emits some machines of a cycle only)."""
    skipped: int = 0
    """Cycles these machines skipped before this record (catch-up bound exceeded; 0: none)."""
    labels: list[list[tuple[str, bytes]]] | None = None
    """Scenario headers of each record (``health``, ``rul_cycles``, ``quality``), aligned with
    ``bodies``; None: no record has any."""
    rows: list[int] | None = None
    """The shard row of each body, ascending, when they are not the consecutive rows from
    ``first_row`` (records held back, duplicated or released by a data-quality fault)."""


@dataclass(slots=True)
class LatencyHistogram:
    """Seconds from hand-over to acknowledgement, one observation per acknowledged batch:
    plain counts per bucket (not cumulative; the last one is +Inf), read at scrape time."""

    bounds: tuple[float, ...] = ACK_LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(ACK_LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


@dataclass(slots=True)
class DeliveryStats:
    """Counters a sink keeps; read by /metrics and the exit summary."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str = field(default="")
    ack_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def pending(self) -> int:
        return self.sent - self.delivered - self.failed


class Sink(Protocol):
    """A destination for records."""

    stats: DeliveryStats

    def start(self) -> None:
        """Connect and check the destination; raise ``BrokerError`` if unusable."""

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        """Hand over the records of one cycle (may block for backpressure)."""

    def delivering(self) -> bool:
        """Readiness: records are being delivered (or nothing waits for delivery)."""

    @property
    def accepting(self) -> bool:
        """False once the destination takes no more records (the reader of standard output
        went away): the cycle loop then ends the run."""

    def wait_delivered(self, timeout: float) -> bool:
        """Wait, within ``timeout`` and without closing, until everything sent so far is
        acknowledged. True only if nothing is pending and nothing ever failed."""

    def flush(self, timeout: float) -> bool:
        """Wait until everything sent is acknowledged, within ``timeout``; what is not
        acknowledged by then counts as failed. False unless every record was delivered."""

    def close(self) -> None:
        """Release the connection at once (never raises)."""
