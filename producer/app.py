"""The producer process: the fixed-schedule cycle loop over the parts it is given, and its
shutdown. ``producer.assembly`` builds the parts from settings."""

from __future__ import annotations

import logging
import time

from producer.continuity.coordinator import Continuity
from producer.cycle_sender import CycleSender
from producer.errors import ExitCode, IntervalAbortedError, ProducerError
from producer.run_summary import RunSummary, summarise
from producer.runtime.heartbeat import Heartbeat
from producer.runtime.http_server import HealthServer
from producer.runtime.metrics import ProducerMetrics
from producer.runtime.readiness import Readiness
from producer.runtime.stopping import EXIT_MARGIN_SECONDS, StopFlag, install_signal_handlers
from producer.serialisation import BodyEncoder
from producer.settings import ProducerSettings
from producer.shard import ShardSimulation
from producer.simulation.engine import SimulationEngine
from producer.simulation.stream_settings import EngineSettings
from producer.sinks.protocol import Sink

log = logging.getLogger("producer")

_LAG_WARNING_EVERY = 30.0


class ProducerApp:
    """Runs the cycle loop of one shard: simulate, encode, hand to the sink, checkpoint; then
    flush, checkpoint a last time and summarise."""

    def __init__(
        self,
        settings: ProducerSettings,
        simulation: ShardSimulation,
        sink: Sink,
        continuity: Continuity,
        *,
        stop: StopFlag,
        heartbeat: Heartbeat,
        readiness: Readiness,
        metrics: ProducerMetrics,
        http: HealthServer | None,
    ) -> None:
        self.settings = settings
        self.simulation = simulation
        self.sink = sink
        self.continuity = continuity
        self.stop = stop
        self.heartbeat = heartbeat
        self.readiness = readiness
        self.metrics = metrics
        self._http = http
        self._cycles_done = 0
        self._sender = CycleSender(sink, simulation.encoder, lambda: continuity.schedule, metrics)

    # -- signals -----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        install_signal_handlers(self.stop, int(ExitCode.UNDELIVERED))

    def ready(self) -> bool:
        """Readiness: started, not stopping, and records are being delivered."""
        return self.readiness()

    # -- run -----------------------------------------------------------------------------------
    def _start_http(self) -> None:
        if self._http is None:
            return
        self._http.start()
        log.info("serving /healthz, /readyz, /metrics on port %d", self._http.port)

    def run(self) -> RunSummary:
        settings = self.settings
        simulation = self.simulation
        self._start_http()
        cycles = 0
        failure: ProducerError | None = None
        crashed = False
        try:
            self.sink.start()
            self._resume()
            self.readiness.running()
            log.info(
                "simulating machines %d..%d of %d (shard %d/%d), %d sensors, every %d ms, "
                "format %s",
                simulation.machines.start,
                simulation.machines.stop - 1,
                settings.num_machines,
                settings.shard_index,
                settings.shard_count,
                simulation.profile.num_sensors,
                settings.simulation_interval_ms,
                settings.message_format.value,
            )
            try:
                cycles = self._run_cycles()
            except ProducerError as exc:  # e.g. the topic turned out unusable: stop cleanly
                failure = exc
            except Exception as exc:  # a bug: still flush, close and summarise, then exit 4
                log.debug("cycle loop failed", exc_info=True)
                log.error("cycle loop stopped by an unexpected error: %s: %s", type(exc).__name__,
                          exc)  # fmt: skip
                crashed = True
            cycles = max(cycles, self._cycles_done)
            if not crashed:
                self._sender.release_held()
            self.readiness.ended()
            if self.stop.requested and self.stop.signal_name:
                log.info("%s: stopped generating; flushing", self.stop.signal_name)
            flushed = self.sink.flush(self._flush_budget())
            self.continuity.finish(self.sink, flushed)
            self.sink.close()
        finally:
            if self._http is not None:
                self._http.stop()
        return summarise(
            self.sink.stats,
            cycles,
            flushed=flushed,
            failure=failure,
            crashed=crashed,
            transactional=self.continuity.transactional,
            final_committed=self.continuity.final_committed,
        )

    def _run_cycles(self) -> int:
        """Catch up, then the cycle loop. Exactly-once: when the transaction in progress is
        aborted, restore the machines from the last committed checkpoints and go on from
        there (the cycles since are emitted again, byte-identical, in a new transaction)."""
        cycles = 0
        while True:
            try:
                self.continuity.catch_up(self._sender.send_rows, self.stop)
                return cycles + self._loop()
            except IntervalAbortedError as exc:
                cycles += self._cycles_done
                self._cycles_done = 0
                self._sender.forget_held()
                self.continuity.aborted(exc)
                self._resume(replay=True)

    def _resume(self, *, replay: bool = False) -> None:
        """Continue each machine from its checkpoint (continuity; nothing without a state
        topic), adopting the simulation's seed when the state topic has one. ``replay``: the
        engine has run on since it was made, so a new one is made first (machines without a
        checkpoint start from the state a new process's engine has)."""
        try:
            seed = self.continuity.open(self.settings.simulation_seed, self.simulation.seed)
        except ProducerError:
            self.sink.close()
            raise
        if replay or seed != self.simulation.seed:
            self.simulation.reseed(seed)
        self._time_scenarios(self.simulation.engine)
        self.continuity.restore(self.simulation.engine, self._variant)

    def _variant(self, settings: EngineSettings) -> tuple[SimulationEngine, BodyEncoder]:
        """The shard under an earlier segment's settings (``ShardSimulation.variant``), its
        scenarios timed by the schedule."""
        engine, encoder = self.simulation.variant(settings)
        self._time_scenarios(engine)
        return engine, encoder

    def _time_scenarios(self, engine: SimulationEngine) -> None:
        """Turn the scenarios' ``startTime`` into cycles of the simulation's schedule."""
        if engine.scenarios is not None:
            engine.scenarios.resolve_times(self.continuity.schedule.first_cycle_at)

    def _flush_budget(self) -> float:
        """Seconds the shutdown flush may take: what is left of the grace period
        (SHUTDOWN_GRACE_SECONDS) since the signal (the cycle in progress used some), minus a
        margin to close and exit."""
        since = self.stop.set_at if self.stop.requested else None
        start = since if since is not None else time.monotonic()
        deadline = start + self.settings.shutdown_grace_seconds - EXIT_MARGIN_SECONDS
        return max(1.0, deadline - time.monotonic())

    def _loop(self) -> int:
        settings = self.settings
        engine = self.simulation.engine
        interval = settings.simulation_interval_ms / 1000
        remaining = settings.max_messages
        start_mono = time.monotonic()
        to_mono = start_mono - time.time()  # the schedule is in wall time, waits in monotonic
        schedule = self.continuity.schedule
        stop_at = start_mono + settings.duration_seconds if settings.duration_seconds else None
        self.stop.set_deadline(stop_at)  # every wait of the process ends at the duration too
        cycle = engine.cycle  # of the simulation: continues where the machines were
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

            result = engine.step()
            count = engine.count if remaining is None else min(remaining, engine.count)
            self._sender.send_rows(result, 0, count, 0, None)
            self.continuity.completed(result.cycle, count)
            metrics.cycles.inc()
            took = time.monotonic() - now
            metrics.cycle_duration.observe(took)
            self.heartbeat.cycle_took(took)
            self._maybe_checkpoint()
            cycle += 1
            iterations += 1
            self._cycles_done = iterations
            if remaining is not None:
                remaining -= count
                if remaining <= 0:
                    break
            if not self.sink.accepting:
                break
        return iterations

    def _maybe_checkpoint(self) -> None:
        if self._sender.holding and self.continuity.checkpoint_due():
            self._sender.release_held()
        self.continuity.maybe_checkpoint(self.sink)

    def _sleep_until(self, due: float) -> bool:
        """Sleep until ``due`` (monotonic), beating the heartbeat every second; True if stopped."""
        while True:
            left = due - time.monotonic()
            if left <= 0:
                return False
            if self.stop.wait(min(left, 1.0)):
                return True
            self.heartbeat.beat()
