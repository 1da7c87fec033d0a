"""Prometheus metrics of one producer process (its own registry, no globals).

Hot-path counters (records sent, delivered, failed) live as plain integers in the sink and are
read at scrape time by a custom collector, so publishing a record costs no metric update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from producer.sinks.protocol import DeliveryStats

_PREFIX = "sensorsim"


class _DeliveryCollector(Collector):
    def __init__(self, stats: Callable[[], DeliveryStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        stats = self._stats()
        yield CounterMetricFamily(
            f"{_PREFIX}_records_sent", "Records handed to the sink.", value=stats.sent
        )
        yield CounterMetricFamily(
            f"{_PREFIX}_records_delivered",
            "Records acknowledged by the broker (or written, for stdout).",
            value=stats.delivered,
        )
        yield CounterMetricFamily(
            f"{_PREFIX}_delivery_errors", "Records whose delivery failed.", value=stats.failed
        )
        latency = stats.ack_latency
        cumulative = list(accumulate(latency.counts))
        buckets = [
            (repr(bound), count)
            for bound, count in zip(latency.bounds, cumulative[:-1], strict=True)
        ]
        yield HistogramMetricFamily(
            f"{_PREFIX}_ack_latency_seconds",
            "Seconds from handing a batch to the Kafka client to the broker's acknowledgement.",
            buckets=[*buckets, ("+Inf", cumulative[-1])],
            sum_value=latency.total,
        )


class ProducerMetrics:
    """The producer's Prometheus metrics (listed in README.md): records, errors, acknowledgement
    latency, failures, lag, cycle time, machines, shards."""

    def __init__(self, failure_types: Sequence[str], stats: Callable[[], DeliveryStats]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_DeliveryCollector(stats))
        r = self.registry
        self.machines = Gauge(
            f"{_PREFIX}_machines", "Machines simulated by this shard.", registry=r
        )
        self.shards = Gauge(
            f"{_PREFIX}_shards",
            "Shards of the simulation (SHARD_COUNT): how many producers should be up.",
            registry=r,
        )
        self.active_failures = Gauge(
            f"{_PREFIX}_active_failures", "Machines of this shard currently failing.", registry=r
        )
        self.failures_started = Counter(
            f"{_PREFIX}_failures_started",
            "Failure episodes started, by failure type.",
            ["type"],
            registry=r,
        )
        self.cycles = Counter(f"{_PREFIX}_cycles", "Cycles completed.", registry=r)
        self.cycle_lag = Gauge(
            f"{_PREFIX}_cycle_lag_seconds",
            "How late the last cycle started relative to its fixed schedule.",
            registry=r,
        )
        self.cycle_duration = Histogram(
            f"{_PREFIX}_cycle_duration_seconds",
            "Time to simulate, encode and hand over one cycle.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self._types = list(failure_types)
        self._started_children = [self.failures_started.labels(type=t) for t in self._types]

    def observe_failures(
        self,
        failing: npt.NDArray[np.bool_],
        started: npt.NDArray[np.bool_],
        types: npt.NDArray[np.int64],
    ) -> None:
        self.active_failures.set(int(failing.sum()))
        if self._types and started.any():
            counts = np.bincount(types[started], minlength=len(self._types))
            for child, count in zip(self._started_children, counts.tolist(), strict=True):
                if count:
                    child.inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
