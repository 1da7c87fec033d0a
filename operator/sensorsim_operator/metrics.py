"""Prometheus metrics of the operator, served on OPERATOR_METRICS_PORT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES: Final = Counter(
    "sensorsim_operator_reconciles_total",
    "Reconciles of SensorSimulations, by trigger and result (ok, error, gone).",
    ["trigger", "result"],
)
RECONCILE_ERRORS: Final = Counter(
    "sensorsim_operator_reconcile_errors_total",
    "Reconciles that failed, by trigger.",
    ["trigger"],
)
RECONCILE_DURATION: Final = Histogram(
    "sensorsim_operator_reconcile_duration_seconds",
    "Wall time of one reconcile (read, apply children, write status).",
    ["trigger"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
STATUS_WRITES: Final = Counter(
    "sensorsim_operator_status_writes_total",
    "Status patches written (reconciles whose computed status differed from the stored one).",
)


class _Result:
    """Mutable outcome label set by the caller inside :func:`observe`."""

    def __init__(self) -> None:
        self.value = "ok"


@contextmanager
def observe(trigger: str) -> Iterator[_Result]:
    """Count and time one reconcile; an exception counts as an error and propagates."""
    result = _Result()
    started = time.perf_counter()
    try:
        yield result
    except BaseException:
        result.value = "error"
        RECONCILE_ERRORS.labels(trigger=trigger).inc()
        raise
    finally:
        RECONCILE_DURATION.labels(trigger=trigger).observe(time.perf_counter() - started)
        RECONCILES.labels(trigger=trigger, result=result.value).inc()


_started: set[int] = set()


def serve(port: int) -> None:
    """Start the /metrics HTTP server once per port (a no-op for port 0)."""
    if port and port not in _started:
        start_http_server(port)
        _started.add(port)
