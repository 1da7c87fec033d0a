"""The producer process: the fixed-schedule cycle loop over the parts it is given, and its
shutdown. ``producer.assembly`` builds the parts from settings."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

from domain.messages import format_epoch
from producer.continuity.coordinator import Continuity
from producer.continuity.schedule import Schedule
from producer.errors import ExitCode, IntervalAbortedError, ProducerError
from producer.runtime.heartbeat import Heartbeat
from producer.runtime.http_server import HealthServer
from producer.runtime.metrics import ProducerMetrics
from producer.runtime.readiness import Readiness
from producer.runtime.stopping import EXIT_MARGIN_SECONDS, StopFlag, install_signal_handlers
from producer.serialisation import BodyEncoder
from producer.settings import ProducerSettings
from producer.shard import ShardSimulation
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.scenarios import record_headers
from producer.simulation.stream_settings import EngineSettings
from producer.sinks.protocol import OutgoingCycle, Sink
from producer.sinks.record_faults import RecordFaultQueue

log = logging.getLogger("producer")

_LAG_WARNING_EVERY = 30.0


@dataclass(frozen=True, slots=True)
class RunSummary:
    cycles: int
    sent: int
    delivered: int
    failed: int
    exit_code: ExitCode


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
        self._record_faults = RecordFaultQueue()
        """Records held back by an out-of-order fault, until their machine's next record."""

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
                self._release_held()
            self.readiness.ended()
            if self.stop.requested and self.stop.signal_name:
                log.info("%s: stopped generating; flushing", self.stop.signal_name)
            flushed = self.sink.flush(self._flush_budget())
            self.continuity.finish(self.sink, flushed)
            self.sink.close()
        finally:
            if self._http is not None:
                self._http.stop()
        return self._summarise(cycles, flushed, failure, crashed=crashed)

    def _summarise(
        self, cycles: int, flushed: bool, failure: ProducerError | None, *, crashed: bool
    ) -> RunSummary:
        """Log the outcome and choose the exit code (a failure's message also to stderr)."""
        stats = self.sink.stats
        transactional = self.continuity.transactional
        if transactional:  # records that failed were aborted with their transaction and resent
            ok = self.continuity.final_committed
        else:
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
        if transactional:
            if stats.failed:
                log.info(
                    "exactly-once: %d records failed in aborted transactions and were sent "
                    "again in later ones",
                    stats.failed,
                )
            if not ok:
                log.error(
                    "exactly-once: the last transaction was not committed; a restart replays "
                    "from the last committed checkpoint"
                )
        elif not ok:
            log.error(
                "%d records were not delivered%s",
                stats.sent - stats.delivered,
                f" (last error: {stats.last_error})" if stats.last_error else "",
            )
        if failure is not None:
            print(f"sensorsim-producer: error: {failure}", file=sys.stderr, flush=True)
        return summary

    def _run_cycles(self) -> int:
        """Catch up, then the cycle loop. Exactly-once: when the transaction in progress is
        aborted, restore the machines from the last committed checkpoints and go on from
        there (the cycles since are emitted again, byte-identical, in a new transaction)."""
        cycles = 0
        while True:
            try:
                self.continuity.catch_up(self._send_rows, self.stop)
                return cycles + self._loop()
            except IntervalAbortedError as exc:
                cycles += self._cycles_done
                self._cycles_done = 0
                self._record_faults.clear()
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
            self._send_rows(result, 0, count, 0, None)
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
        if len(self._record_faults) and self.continuity.checkpoint_due():
            self._release_held()
        self.continuity.maybe_checkpoint(self.sink)

    def _release_held(self) -> None:
        """Send the records an out-of-order fault holds back (before a checkpoint, or at the
        stop): none is lost, at the price of being in order."""
        for outgoing in self._record_faults.release_all():
            self.sink.send_cycle(outgoing)

    def _sleep_until(self, due: float) -> bool:
        """Sleep until ``due`` (monotonic), beating the heartbeat every second; True if stopped."""
        while True:
            left = due - time.monotonic()
            if left <= 0:
                return False
            if self.stop.wait(min(left, 1.0)):
                return True
            self.heartbeat.beat()

    def _send_rows(
        self, result: CycleResult, first: int, stop: int, skipped: int, encoder: BodyEncoder | None
    ) -> None:
        """Encode and hand over rows ``first..stop-1`` of a cycle, stamped with its due time
        (``encoder``: an earlier segment's, for a cycle caught up under it; None: the shard's)."""
        schedule = self.continuity.schedule
        if schedule.stamped(result.cycle):
            timestamp = schedule.timestamp(result.cycle)
        else:
            timestamp = format_epoch(time.time())
        bodies = (encoder or self.simulation.encoder).encode(result, timestamp, stop)
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
        late = _LateStamps(encoder or self.simulation.encoder, schedule, result.cycle)
        for outgoing in self._record_faults.outgoing(cycle, faults, late):
            self.sink.send_cycle(outgoing)
        self.metrics.observe_failures(
            result.failing[rows], result.started[rows], result.failure_type[rows]
        )


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
