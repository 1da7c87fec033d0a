"""A progress line every few seconds, read from the producer's own metrics registry (what
/metrics serves): records sent and acknowledged per second, mean acknowledgement latency, lag
behind the schedule, machines failing, records failed.

``ProgressReporter`` runs on a daemon thread while the producer runs; ``progress_line`` is the
pure part, the difference of two ``Snapshot``s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, TextIO

from prometheus_client import CollectorRegistry

DEFAULT_PROGRESS_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The metrics the progress line reads, at one moment (``at``: monotonic seconds)."""

    at: float
    sent: float
    delivered: float
    failed: float
    ack_seconds: float
    acks: float
    lag: float
    failing: float
    machines: float


def snapshot(registry: CollectorRegistry, at: float) -> Snapshot:
    """The progress metrics of ``registry`` now (a metric not there reads 0)."""

    def value(name: str) -> float:
        return registry.get_sample_value(name) or 0.0

    return Snapshot(
        at=at,
        sent=value("sensorsim_records_sent_total"),
        delivered=value("sensorsim_records_delivered_total"),
        failed=value("sensorsim_delivery_errors_total"),
        ack_seconds=value("sensorsim_ack_latency_seconds_sum"),
        acks=value("sensorsim_ack_latency_seconds_count"),
        lag=value("sensorsim_cycle_lag_seconds"),
        failing=value("sensorsim_active_failures"),
        machines=value("sensorsim_machines"),
    )


def progress_line(before: Snapshot, now: Snapshot) -> str:
    """What happened between two snapshots, as one line."""
    seconds = max(now.at - before.at, 1e-9)
    acks = now.acks - before.acks
    latency = (
        f"ack {1000 * (now.ack_seconds - before.ack_seconds) / acks:.1f} ms"
        if acks > 0
        else "ack -"
    )
    return (
        f"progress: {(now.sent - before.sent) / seconds:,.0f} records/s sent, "
        f"{(now.delivered - before.delivered) / seconds:,.0f}/s acknowledged, {latency}, "
        f"lag {now.lag:.3f} s, {now.failing:,.0f}/{now.machines:,.0f} machines failing, "
        f"{now.sent:,.0f} sent, {now.failed:,.0f} failed"
    )


class ProgressReporter:
    """Writes ``progress_line`` to ``out`` every ``interval`` seconds between ``start()`` and
    ``stop()`` (or as a context manager)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        out: TextIO,
        interval: float = DEFAULT_PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._out = out
        self._interval = interval
        self._clock = clock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._report, name="progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> ProgressReporter:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _report(self) -> None:
        before = snapshot(self._registry, self._clock())
        while not self._stopped.wait(self._interval):
            now = snapshot(self._registry, self._clock())
            self._out.write(progress_line(before, now) + "\n")
            self._out.flush()
            before = now
