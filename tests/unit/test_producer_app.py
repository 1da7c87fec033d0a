"""The producer process in-process: cycle loop, schedule, stopping, HTTP endpoints."""

from __future__ import annotations

import io
import itertools
import socket
import threading
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from domain.machine_ids import machine_ids
from domain.messages import ExtendedSensorMessage
from producer.app import ProducerApp
from producer.assembly import assemble, build_app, load_shard
from producer.errors import BrokerError, ConfigError, ExitCode
from producer.runtime.stopping import EXIT_MARGIN_SECONDS, GRACE_PERIOD_SECONDS
from producer.settings import ProducerSettings
from producer.sinks.protocol import DeliveryStats, OutgoingCycle, Sink
from producer.sinks.stdout import StdoutSink
from testbed.polling import wait_until

pytestmark = pytest.mark.unit


def make_settings(**overrides: Any) -> ProducerSettings:
    base: dict[str, Any] = {
        "http_port": 0,
        "simulation_interval_ms": 0,
        "simulation_seed": 3,
        "num_machines": 3,
    }
    return ProducerSettings(**{**base, **overrides})


def make_app(settings: ProducerSettings, sink: Sink) -> ProducerApp:
    """The producer over ``sink``, with no state topic (the schedule starts now)."""
    return assemble(settings, load_shard(settings), sink, None)


def run_stdout(**overrides: Any) -> tuple[list[dict[str, Any]], ExitCode]:
    out = io.BytesIO()
    app = make_app(make_settings(**overrides), StdoutSink(out))
    summary = app.run()
    return [orjson.loads(line) for line in out.getvalue().splitlines()], summary.exit_code


def test_machines_times_cycles_records() -> None:
    records, code = run_stdout(num_machines=5, max_messages=5 * 4)
    assert code is ExitCode.OK
    assert len(records) == 20
    counts = Counter(r["machine_id"] for r in records)
    assert set(counts) == set(machine_ids("sensorsim", range(5)))
    assert set(counts.values()) == {4}
    for r in records:
        datetime.fromisoformat(r["timestamp"])
        assert list(r["readings"]["readings"]) == [f"Sensor {n}" for n in range(1, 21)]


def test_partial_last_cycle_respects_max_messages() -> None:
    records, _ = run_stdout(num_machines=3, max_messages=7)
    assert [r["machine_id"] for r in records][-1] == machine_ids("sensorsim", [0])[0]
    assert len(records) == 7


def test_shard_emits_only_its_machines() -> None:
    records, _ = run_stdout(num_machines=10, shard_count=3, shard_index=1, max_messages=30)
    assert {r["machine_id"] for r in records} == set(machine_ids("sensorsim", range(4, 7)))


def test_fixed_schedule_timestamps() -> None:
    records, _ = run_stdout(
        num_machines=2, simulation_interval_ms=40, duration_seconds=0.5, message_format="extended"
    )
    stamps = sorted({r["timestamp"] for r in records})
    assert 2 <= len(stamps) <= 13  # at most 0.5 s / 40 ms cycles; fewer on a loaded machine
    times = [datetime.fromisoformat(s) for s in stamps]
    steps = {b - a for a, b in itertools.pairwise(times)}
    # deadlines, not sleep-after-work: exactly one interval apart (to the millisecond)
    assert steps <= {
        timedelta(milliseconds=39),
        timedelta(milliseconds=40),
        timedelta(milliseconds=41),
    }
    seqs = sorted({ExtendedSensorMessage.model_validate(r).seq for r in records})
    assert seqs == list(range(len(seqs)))


class GatedSink:
    """Records cycles; ``start`` waits until the test opens the gate, so the test can look at
    the process before and after the sink is up without timing assumptions."""

    def __init__(self) -> None:
        self.stats = DeliveryStats()
        self.cycles: list[OutgoingCycle] = []
        self.gate = threading.Event()
        self.cycle_seen = threading.Event()
        self.flush_budget: float | None = None
        self.closed = False
        self.deliver = True
        self.accepting = True

    def start(self) -> None:
        self.gate.wait(10)

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        self.cycles.append(cycle)
        self.stats.sent += len(cycle.bodies)
        if self.deliver:
            self.stats.delivered += len(cycle.bodies)
        self.cycle_seen.set()

    def delivering(self) -> bool:
        return self.stats.pending == 0

    def wait_delivered(self, timeout: float) -> bool:
        return self.stats.pending == 0 and self.stats.failed == 0

    def flush(self, timeout: float) -> bool:
        self.flush_budget = timeout
        self.stats.failed += self.stats.pending
        return self.stats.pending == 0 and self.stats.failed == 0

    def close(self) -> None:
        self.closed = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run_in_thread(app: ProducerApp) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("summary", app.run()))
    thread.start()
    return thread, result


def answers(port: int) -> bool:
    try:
        get(port, "/healthz")
    except OSError:
        return False
    return True


def test_http_endpoints_and_stop_event() -> None:
    port = free_port()
    sink = GatedSink()
    app = make_app(make_settings(http_port=port, simulation_interval_ms=20), sink)
    thread, result = run_in_thread(app)
    wait_until(lambda: answers(port), timeout=20.0, interval=0.01, message="the HTTP server")
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/readyz")[0] == 503  # the sink has not started yet (gate closed)
    sink.gate.set()
    wait_until(
        lambda: get(port, "/readyz")[0] == 200, timeout=20.0, interval=0.01, message="readiness"
    )
    assert sink.cycle_seen.wait(10)
    code, metrics = get(port, "/metrics")
    assert code == 200
    for name in (
        "sensorsim_records_sent_total",
        "sensorsim_records_delivered_total",
        "sensorsim_delivery_errors_total",
        "sensorsim_active_failures",
        "sensorsim_failures_started_total",
        "sensorsim_cycle_lag_seconds",
        "sensorsim_cycle_duration_seconds_bucket",
        "sensorsim_machines 3.0",
    ):
        assert name in metrics
    assert get(port, "/nope")[0] == 404
    app.stop.set()
    assert not app.ready()  # stopping: no longer ready
    thread.join(timeout=10)
    assert result["summary"].exit_code is ExitCode.OK
    assert result["summary"].sent == 3 * len(sink.cycles)
    assert [c.seq for c in sink.cycles] == list(range(len(sink.cycles)))
    assert sink.closed


def test_readiness_follows_delivery() -> None:
    sink = GatedSink()
    sink.gate.set()
    sink.deliver = False  # the broker acknowledges nothing
    app = make_app(make_settings(simulation_interval_ms=20), sink)
    thread, result = run_in_thread(app)
    assert sink.cycle_seen.wait(10)
    wait_until(lambda: not app.ready(), timeout=20.0, interval=0.01, message="readiness to drop")
    sink.deliver = True
    sink.stats.delivered = sink.stats.sent
    wait_until(app.ready, timeout=20.0, interval=0.01, message="readiness to return")
    app.stop.set()
    thread.join(timeout=10)
    assert result["summary"].exit_code in (ExitCode.OK, ExitCode.UNDELIVERED)


def test_undelivered_records_give_a_non_zero_exit() -> None:
    sink = GatedSink()
    sink.gate.set()
    sink.deliver = False
    app = make_app(make_settings(max_messages=6), sink)
    summary = app.run()
    assert summary.exit_code is ExitCode.UNDELIVERED
    assert (summary.sent, summary.delivered, summary.failed) == (6, 0, 6)


def test_the_flush_fits_in_the_grace_period_counted_from_the_signal() -> None:
    sink = GatedSink()
    sink.gate.set()
    app = make_app(make_settings(simulation_interval_ms=20), sink)
    thread, _ = run_in_thread(app)
    assert sink.cycle_seen.wait(10)
    app.stop.set()
    thread.join(timeout=10)
    assert sink.flush_budget is not None
    assert 1.0 <= sink.flush_budget <= GRACE_PERIOD_SECONDS - EXIT_MARGIN_SECONDS


class FailingSink(GatedSink):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.gate.set()
        self.error = error

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        if len(self.cycles) == 2:
            raise self.error
        super().send_cycle(cycle)


def test_an_unusable_target_mid_run_flushes_and_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    sink = FailingSink(BrokerError("topic 't' refused records: MessageSizeTooLargeError"))
    summary = make_app(make_settings(), sink).run()
    assert summary.exit_code is ExitCode.BROKER
    assert summary.sent == summary.delivered == 6
    assert sink.flush_budget is not None
    assert sink.closed
    err = capsys.readouterr().err
    assert "error: topic 't' refused records" in err


def test_an_unexpected_error_in_the_loop_still_flushes_and_exits_4() -> None:
    sink = FailingSink(ZeroDivisionError("a bug"))
    summary = make_app(make_settings(), sink).run()
    assert summary.exit_code is ExitCode.INTERNAL
    assert summary.cycles == 2
    assert sink.flush_budget is not None
    assert sink.closed


def test_duration_is_honoured() -> None:
    sink = GatedSink()
    sink.gate.set()
    app = make_app(make_settings(simulation_interval_ms=10_000, duration_seconds=0.3), sink)
    summary = app.run()  # with a 10 s interval, only the duration can end it early
    assert summary.exit_code is ExitCode.OK
    assert summary.cycles == 1


def test_a_shard_too_large_for_memory_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr("producer.shard.SimulationEngine", no_memory)
    with pytest.raises(ConfigError, match=r"NUM_MACHINES=10 with SHARD_COUNT=2: .* 5 machines"):
        make_app(make_settings(num_machines=10, shard_count=2), StdoutSink(io.BytesIO()))


class PipeClosingStream(io.BytesIO):
    """Standard output whose reader goes away (``| head``) after ``lines`` lines."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.lines = lines

    def write(self, data: Any) -> int:
        if self.getvalue().count(b"\n") >= self.lines:
            raise BrokenPipeError
        return super().write(data)


def test_a_sink_that_takes_no_more_ends_the_run_quietly() -> None:
    stream = PipeClosingStream(lines=2 * 3)
    summary = make_app(make_settings(), StdoutSink(stream)).run()
    assert summary.exit_code is ExitCode.OK
    assert summary.cycles == 3  # two written, the third met the closed pipe
    assert summary.sent == summary.delivered == 6


def test_the_stdout_sink_runs_without_a_state_topic() -> None:
    app = build_app(make_settings(), "stdout")
    assert isinstance(app.sink, StdoutSink)
    assert app.continuity.store is None


def test_kafka_continues_the_simulation_in_the_state_topic_unless_checkpoints_are_off() -> None:
    settings = make_settings(kafka_topic="readings")
    assert build_app(settings, "kafka").continuity.store is not None
    off = make_settings(kafka_topic="readings", checkpoint_interval_ms=0)
    assert build_app(off, "kafka").continuity.store is None
