"""How a producer run ended: the summary it logs and the exit code it chooses."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from producer.errors import ExitCode, ProducerError
from producer.sinks.protocol import DeliveryStats

log = logging.getLogger("producer")


@dataclass(frozen=True, slots=True)
class RunSummary:
    cycles: int
    sent: int
    delivered: int
    failed: int
    exit_code: ExitCode


def summarise(
    stats: DeliveryStats,
    cycles: int,
    *,
    flushed: bool,
    failure: ProducerError | None,
    crashed: bool,
    transactional: bool,
    final_committed: bool,
) -> RunSummary:
    """Log the outcome and choose the exit code (a failure's message also to stderr).

    At-least-once, a run is whole when everything sent was acknowledged; exactly-once, when
    its last transaction committed (records that failed were aborted with their transaction
    and sent again in a later one)."""
    if transactional:
        ok = final_committed
    else:
        ok = flushed and stats.failed == 0 and stats.delivered == stats.sent
    if crashed:
        code = ExitCode.INTERNAL
    elif failure is not None:
        code = failure.exit_code
    else:
        code = ExitCode.OK if ok else ExitCode.UNDELIVERED
    log.info(
        "stopped after %d cycles: %d records sent, %d delivered, %d failed",
        cycles,
        stats.sent,
        stats.delivered,
        stats.failed,
    )
    if transactional:
        if stats.failed:
            log.info(
                "exactly-once: %d records failed in aborted transactions and were sent again "
                "in later ones",
                stats.failed,
            )
        if not ok:
            log.error(
                "exactly-once: the last transaction was not committed; a restart replays from "
                "the last committed checkpoint"
            )
    elif not ok:
        log.error(
            "%d records were not delivered%s",
            stats.sent - stats.delivered,
            f" (last error: {stats.last_error})" if stats.last_error else "",
        )
    if failure is not None:
        print(f"sensorsim-producer: error: {failure}", file=sys.stderr, flush=True)
    return RunSummary(cycles, stats.sent, stats.delivered, stats.failed, code)
