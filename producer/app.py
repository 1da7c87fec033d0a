"""The producer process: wiring, the fixed-schedule cycle loop, shutdown."""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

from domain.machine_ids import machine_ids
from domain.messages import format_epoch
from domain.partitioning import shard_range
from domain.simulation_model import SimulationModel
from producer.continuity.checkpointing import Continuity
from producer.continuity.state_topic import StateTopic
from producer.errors import ConfigError, ExitCode, ProducerError, ReferenceDataError
from producer.kafka.sink import KafkaSink
from producer.runtime.heartbeat import Heartbeat
from producer.runtime.http_server import HealthServer
from producer.runtime.metrics import ProducerMetrics
from producer.runtime.stopping import (
    EXIT_MARGIN_SECONDS,
    GRACE_PERIOD_SECONDS,
    StopFlag,
    install_signal_handlers,
)
from producer.serialisation import EXACT_MAX_ABS, BodyEncoder
from producer.settings import ProducerSettings
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.reference_data import check_learned_model_data, load_profile
from producer.sinks.protocol import OutgoingCycle, Sink
from producer.sinks.stdout import StdoutSink

log = logging.getLogger("producer")

SinkKind = Literal["kafka", "stdout"]
_LAG_WARNING_EVERY = 30.0


@dataclass(frozen=True, slots=True)
class RunSummary:
    cycles: int
    sent: int
    delivered: int
    failed: int
    exit_code: ExitCode


class ProducerApp:
    """Builds everything from settings (failing fast on bad config or data), then runs."""

    def __init__(
        self,
        settings: ProducerSettings,
        sink_kind: SinkKind = "kafka",
        *,
        sink: Sink | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop or StopFlag()
        self.heartbeat = Heartbeat()
        # NUM_SENSORS left at its default takes a narrower file whole; set, it must fit.
        profile = load_profile(
            settings.sensor_data_file,
            settings.num_sensors,
            at_most="num_sensors" not in settings.model_fields_set,
        )
        if not profile.failures_enabled:
            log.warning(
                "reference data %s has no labelled rows: failures are disabled",
                settings.sensor_data_file,
            )
        if settings.simulation_model is SimulationModel.LEARNED:
            check_learned_model_data(profile)
        self.profile = profile
        shard = shard_range(settings.num_machines, settings.shard_count, settings.shard_index)
        self.shard = shard
        if settings.simulation_seed is None:
            self.seed = secrets.randbits(63)
            log.info("SIMULATION_SEED unset: using random seed %d", self.seed)
        else:
            self.seed = settings.simulation_seed
        try:
            self.machine_ids = machine_ids(settings.simulation_name, shard.indices())
            self.engine = self._make_engine()
        except MemoryError:
            raise ConfigError(
                f"NUM_MACHINES={settings.num_machines} with SHARD_COUNT={settings.shard_count}: "
                f"this shard's {shard.size} machines do not fit in memory; raise SHARD_COUNT "
                "or lower NUM_MACHINES"
            ) from None
        bound = self.engine.max_abs_reading
        if bound > EXACT_MAX_ABS:
            raise ReferenceDataError(
                settings.sensor_data_file,
                f"readings reach {bound:g} in magnitude; 6 exact decimals allow at most "
                f"{EXACT_MAX_ABS:.6f}",
            )
        self.encoder = BodyEncoder(
            profile.sensor_names,
            self.machine_ids,
            profile.failure_types,
            settings.message_format,
            max_abs_value=bound,
            max_episode_cycles=settings.failure_max_cycles,
        )
        if sink is not None:
            self.sink: Sink = sink
        elif sink_kind == "stdout":
            self.sink = StdoutSink()
        else:
            self.sink = KafkaSink(
                settings,
                self.machine_ids,
                profile.failure_types,
                stop=self.stop,
                heartbeat=self.heartbeat.beat,
                max_body_bytes=self.encoder.width,
            )
        self.metrics = ProducerMetrics(profile.failure_types, lambda: self.sink.stats)
        self.metrics.machines.set(shard.size)
        continuous = sink is None and sink_kind == "kafka" and settings.checkpoint_interval_ms > 0
        self.continuity = Continuity(
            settings,
            profile,
            self.machine_ids,
            StateTopic(settings, settings.state_topic) if continuous else None,
            self.metrics.registry,
        )
        self._ready = threading.Event()
        self._cycles_done = 0
        self._http: HealthServer | None = None

    def _make_engine(self) -> SimulationEngine:
        return SimulationEngine(
            self.profile,
            self.settings.failure_model,
            first_machine=self.shard.start,
            count=self.shard.size,
            seed=self.seed,
            simulation_name=self.settings.simulation_name,
            model=self.settings.simulation_model,
            persistence=self.settings.simulation_persistence,
        )

    # -- signals -----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        install_signal_handlers(self.stop, int(ExitCode.UNDELIVERED))

    def ready(self) -> bool:
        """Readiness: started, not stopping, and records are being delivered."""
        return self._ready.is_set() and not self.stop.is_set() and self.sink.delivering()

    # -- run -----------------------------------------------------------------------------------
    def _start_http(self) -> None:
        port = self.settings.http_port
        if port == 0:
            return
        try:
            self._http = HealthServer(
                port,
                live=self.heartbeat.alive,
                ready=self.ready,
                metrics=self.metrics.render,
            )
        except OSError as exc:
            raise ConfigError(f"HTTP_PORT={port}: cannot listen: {exc.strerror or exc}") from None
        self._http.start()
        log.info("serving /healthz, /readyz, /metrics on port %d", self._http.port)

    def run(self) -> RunSummary:
        s = self.settings
        self._start_http()
        cycles = 0
        failure: ProducerError | None = None
        crashed = False
        try:
            self.sink.start()
            self._resume()
            self._ready.set()
            log.info(
                "simulating machines %d..%d of %d (shard %d/%d), %d sensors, every %d ms, "
                "format %s",
                self.shard.start,
                self.shard.stop - 1,
                s.num_machines,
                s.shard_index,
                s.shard_count,
                self.profile.num_sensors,
                s.simulation_interval_ms,
                s.message_format.value,
            )
            try:
                self.continuity.catch_up(self.engine, self._send_rows, self.stop)
                cycles = self._loop()
            except ProducerError as exc:  # e.g. the topic turned out unusable: stop cleanly
                failure = exc
            except Exception as exc:  # a bug: still flush, close and summarise, then exit 4
                log.debug("cycle loop failed", exc_info=True)
                log.error("cycle loop stopped by an unexpected error: %s: %s", type(exc).__name__,
                          exc)  # fmt: skip
                crashed = True
            cycles = max(cycles, self._cycles_done)
            self._ready.clear()
            if self.stop.requested and self.stop.signal_name:
                log.info("%s: stopped generating; flushing", self.stop.signal_name)
            flushed = self.sink.flush(self._flush_budget())
            self.continuity.finish(self.engine, self.sink, flushed)
            self.sink.close()
        finally:
            if self._http is not None:
                self._http.stop()
        stats = self.sink.stats
        ok = flushed and stats.failed == 0 and stats.delivered == stats.sent
        if crashed:
            code = ExitCode.INTERNAL
        elif failure is not None:
            code = failure.exit_code
        else:
            code = ExitCode.OK if ok else ExitCode.UNDELIVERED
        summary = RunSummary(cycles, stats.sent, stats.delivered, stats.failed, code)
        log.info(
            "stopped after %d cycles: %d records sent, %d delivered, %d failed",
            cycles,
            stats.sent,
            stats.delivered,
            stats.failed,
        )
        if not ok:
            log.error(
                "%d records were not delivered%s",
                stats.sent - stats.delivered,
                f" (last error: {stats.last_error})" if stats.last_error else "",
            )
        if failure is not None:
            print(f"sensorsim-producer: error: {failure}", file=sys.stderr, flush=True)
        return summary

    def _resume(self) -> None:
        """Continue each machine from its checkpoint (continuity; nothing without a state
        topic), adopting the simulation's seed when the state topic has one."""
        try:
            seed = self.continuity.open(self.settings.simulation_seed, self.seed)
        except ProducerError:
            self.sink.close()
            raise
        if seed != self.seed:
            self.seed = seed
            self.engine = self._make_engine()
        self.continuity.restore(self.engine)

    def _flush_budget(self) -> float:
        """Seconds the shutdown flush may take: what is left of the grace period since the
        signal (the cycle in progress used some), minus a margin to close and exit."""
        since = self.stop.set_at if self.stop.requested else None
        start = since if since is not None else time.monotonic()
        deadline = start + GRACE_PERIOD_SECONDS - EXIT_MARGIN_SECONDS
        return max(1.0, deadline - time.monotonic())

    def _loop(self) -> int:
        s = self.settings
        interval = s.simulation_interval_ms / 1000
        remaining = s.max_messages
        start_mono = time.monotonic()
        to_mono = start_mono - time.time()  # the schedule is in wall time, waits in monotonic
        schedule = self.continuity.schedule
        stop_at = start_mono + s.duration_seconds if s.duration_seconds else None
        self.stop.set_deadline(stop_at)  # every wait of the process ends at the duration too
        cycle = self.engine.cycle  # of the simulation: continues where the machines were
        iterations = 0
        last_lag_warning = 0.0
        metrics = self.metrics
        while not self.stop.is_set():
            now = time.monotonic()
            if interval > 0:
                due = schedule.due(cycle) + to_mono
                if stop_at is not None and due >= stop_at:
                    break
                if now < due:
                    if self._sleep_until(due):
                        break
                    now = time.monotonic()
                lag = now - due
            else:
                lag = 0.0
            if stop_at is not None and now >= stop_at:
                break
            metrics.cycle_lag.set(lag)
            if lag > max(interval, 0.1) and now - last_lag_warning > _LAG_WARNING_EVERY:
                log.warning("running %.3f s behind schedule (cycle %d)", lag, cycle)
                last_lag_warning = now

            result = self.engine.step()
            count = self.engine.count if remaining is None else min(remaining, self.engine.count)
            self._send_rows(result, 0, count, 0)
            self.continuity.completed(result.cycle, count)
            metrics.cycles.inc()
            took = time.monotonic() - now
            metrics.cycle_duration.observe(took)
            self.heartbeat.cycle_took(took)
            self.continuity.maybe_checkpoint(self.engine, self.sink)
            cycle += 1
            iterations += 1
            self._cycles_done = iterations
            if remaining is not None:
                remaining -= count
                if remaining <= 0:
                    break
            if isinstance(self.sink, StdoutSink) and self.sink.closed_pipe:
                break
        return iterations

    def _sleep_until(self, due: float) -> bool:
        """Sleep until ``due`` (monotonic), beating the heartbeat every second; True if stopped."""
        while True:
            left = due - time.monotonic()
            if left <= 0:
                return False
            if self.stop.wait(min(left, 1.0)):
                return True
            self.heartbeat.beat()

    def _send_rows(self, result: CycleResult, first: int, stop: int, skipped: int) -> None:
        """Encode and hand over rows ``first..stop-1`` of a cycle, stamped with its due time."""
        if self.continuity.schedule.interval_ms > 0:
            timestamp = self.continuity.schedule.timestamp(result.cycle)
        else:
            timestamp = format_epoch(time.time())
        bodies = self.encoder.encode(result, timestamp, stop)
        rows = slice(first, stop)
        self.sink.send_cycle(
            OutgoingCycle(
                seq=result.cycle,
                bodies=bodies[first:] if first else bodies,
                failing=result.failing[rows].tolist(),
                failure_type=result.failure_type[rows].tolist(),
                first_row=first,
                skipped=skipped,
            )
        )
        self.metrics.observe_failures(
            result.failing[rows], result.started[rows], result.failure_type[rows]
        )
