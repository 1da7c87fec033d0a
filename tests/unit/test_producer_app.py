"""The producer process in-process: cycle loop, schedule, stopping, HTTP endpoints."""

from __future__ import annotations

import io
import itertools
import socket
import threading
import time
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
from producer.errors import ConfigError, ExitCode
from producer.settings import ProducerSettings
from producer.sinks import DeliveryStats, OutgoingCycle
from producer.stdout_sink import StdoutSink

pytestmark = pytest.mark.unit


def make_settings(**overrides: Any) -> ProducerSettings:
    base: dict[str, Any] = {
        "http_port": 0,
        "simulation_interval_ms": 0,
        "simulation_seed": 3,
        "num_machines": 3,
    }
    return ProducerSettings(**{**base, **overrides})


def run_stdout(**overrides: Any) -> tuple[list[dict[str, Any]], ExitCode]:
    out = io.BytesIO()
    app = ProducerApp(make_settings(**overrides), sink=StdoutSink(out))
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
    assert 8 <= len(stamps) <= 13
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


class SlowSink:
    """Records cycles; takes a while per cycle so the test can look at the process."""

    def __init__(self) -> None:
        self.stats = DeliveryStats()
        self.cycles: list[OutgoingCycle] = []

    def start(self) -> None:
        time.sleep(0.3)

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        self.cycles.append(cycle)
        self.stats.sent += len(cycle.bodies)
        self.stats.delivered += len(cycle.bodies)

    def flush(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        return None


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


def test_http_endpoints_and_stop_event() -> None:
    port = free_port()
    sink = SlowSink()
    app = ProducerApp(make_settings(http_port=port, simulation_interval_ms=20), sink=sink)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("summary", app.run()))
    thread.start()
    deadline = time.monotonic() + 10
    status = 0
    while time.monotonic() < deadline:
        try:
            status, _ = get(port, "/healthz")
            break
        except OSError:
            time.sleep(0.02)
    assert status == 200
    assert get(port, "/readyz")[0] == 503  # the sink has not started yet
    while get(port, "/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
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
    thread.join(timeout=10)
    assert result["summary"].exit_code is ExitCode.OK
    assert result["summary"].sent == 3 * len(sink.cycles)
    assert [c.seq for c in sink.cycles] == list(range(len(sink.cycles)))


def test_undelivered_records_give_a_non_zero_exit() -> None:
    class LossySink(SlowSink):
        def start(self) -> None:
            return None

        def flush(self, timeout: float) -> bool:
            self.stats.delivered -= 1
            self.stats.failed += 1
            return False

    app = ProducerApp(make_settings(max_messages=6), sink=LossySink())
    assert app.run().exit_code is ExitCode.UNDELIVERED


def test_a_shard_too_large_for_memory_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr("producer.app.SimulationEngine", no_memory)
    with pytest.raises(ConfigError, match=r"NUM_MACHINES=10 with SHARD_COUNT=2: .* 5 machines"):
        ProducerApp(make_settings(num_machines=10, shard_count=2), sink=StdoutSink(io.BytesIO()))
