"""The ``sensorsim`` command: options generated from the settings contract, options over the
environment, ``--version``, the progress line; and the acknowledgement latency it reports."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from domain import settings_contract as contract
from producer.cli.run import option_overrides, run_parser, settings_options
from producer.kafka.delivery_ledger import DeliveryLedger
from producer.runtime.metrics import ProducerMetrics
from producer.runtime.progress import ProgressReporter, Snapshot, progress_line
from producer.settings import ProducerSettings, load_settings
from testbed.polling import wait_until

REPO = Path(__file__).resolve().parents[2]
SAMPLE: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093,broker-2:9093",
    "KAFKA_TOPIC": "plant-readings",
    "SIMULATION_INTERVAL_MS": "250",
    "SENSOR_DATA_FILE": "data/data_sensors.csv",
    "NUM_MACHINES": "12",
    "SIMULATION_SEED": "42",
    "SIMULATION_MODEL": "original",
    "MESSAGE_FORMAT": "extended",
    "KAFKA_LINGER_MS": "20",
    "KAFKA_COMPRESSION_TYPE": "zstd",
    "SIMULATION_EPOCH": "2026-01-01T00:00:00Z",
}


def parse(*argv: str) -> ProducerSettings:
    return load_settings(**option_overrides(run_parser("sensorsim", "0").parse_args(argv)))


@pytest.mark.unit
def test_every_setting_but_the_secrets_has_exactly_one_option() -> None:
    flags = [setting.flag for setting in settings_options()]
    assert len(flags) == len(set(flags))
    secrets = {setting.env for setting in contract.SETTINGS if setting.secret}
    assert secrets  # the SASL credentials: never on a command line a process listing shows
    assert {s.env for s in settings_options()} == {s.env for s in contract.SETTINGS} - secrets
    help_text = run_parser("sensorsim", "0").format_help()
    for setting in contract.SETTINGS:
        assert setting.env in help_text  # an option's argument, or a secret in the epilog
    for flag in ("--bootstrap-servers", "--topic", "--machines", "--interval", "--seed",
                 "--model", "--data"):  # fmt: skip
        assert flag in flags


@pytest.mark.unit
@pytest.mark.parametrize("variable", sorted(SAMPLE))
def test_an_option_sets_the_same_field_as_its_variable(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = contract.setting(variable)
    assert setting.flag is not None
    default = getattr(load_settings(), setting.name)
    from_option = parse(setting.flag, SAMPLE[variable])
    monkeypatch.setenv(variable, SAMPLE[variable])
    from_env = load_settings()
    assert getattr(from_option, setting.name) == getattr(from_env, setting.name) != default


@pytest.mark.unit
def test_options_win_over_the_environment_and_the_rest_comes_from_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NUM_MACHINES", "3")
    monkeypatch.setenv("KAFKA_TOPIC", "from-env")
    monkeypatch.setenv("KAFKA_CREATE_TOPIC", "true")
    settings = parse("--machines", "9", "--no-create-topic")
    assert settings.num_machines == 9
    assert settings.kafka_create_topic is False
    assert settings.kafka_topic == "from-env"


@pytest.mark.unit
def test_a_bad_option_value_names_its_variable() -> None:
    with pytest.raises(Exception, match="NUM_MACHINES='0'"):
        parse("--machines", "0")


def snap(at: float, sent: float, delivered: float, **rest: float) -> Snapshot:
    values = {"failed": 0.0, "ack_seconds": 0.0, "acks": 0.0, "lag": 0.0, "failing": 0.0,
              "machines": 10.0, **rest}  # fmt: skip
    return Snapshot(at=at, sent=sent, delivered=delivered, **values)


@pytest.mark.unit
def test_the_progress_line_is_rates_over_the_interval_and_levels_now() -> None:
    before = snap(10.0, 1000, 900, ack_seconds=1.0, acks=100)
    now = snap(15.0, 6000, 5400, ack_seconds=1.6, acks=120, lag=0.25, failing=3, failed=2)
    line = progress_line(before, now)
    assert "1,000 records/s sent" in line
    assert "900/s acknowledged" in line
    assert "ack 30.0 ms" in line  # 0.6 s over 20 acknowledged batches
    assert "lag 0.250 s" in line
    assert "3/10 machines failing" in line
    assert "2 failed" in line
    assert "ack -" in progress_line(before, snap(15.0, 1000, 900, ack_seconds=1.0, acks=100))


@pytest.mark.unit
def test_the_reporter_reads_the_registry_until_stopped() -> None:
    registry = CollectorRegistry()
    sent = Counter("sensorsim_records_sent", "", registry=registry)
    Gauge("sensorsim_machines", "", registry=registry).set(4)
    out = io.StringIO()
    ticks = iter(range(1000))
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            return float(next(ticks))

    with ProgressReporter(registry, out, interval=0.01, clock=clock):
        sent.inc(10)
        wait_until(
            lambda: out.getvalue().count("\n") >= 2, timeout=10, message="two lines", interval=0.01
        )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("progress: 10 records/s sent")  # 10 records in one clock tick
    assert "0/4 machines failing" in lines[0]
    assert "0 records/s sent" in lines[1]


@pytest.mark.unit
def test_acknowledged_batches_are_timed_from_hand_over_and_exported() -> None:
    now = [100.0]
    ledger = DeliveryLedger(lambda: now[0], on_error=lambda error: None)
    generation = ledger.new_generation(1)
    ledger.count_sent(generation, 30)
    sent_at = ledger.now()
    now[0] = 100.004
    ledger.batch_done(generation, 10, None, sent_at=sent_at)
    now[0] = 100.3
    ledger.batch_done(generation, 10, None, sent_at=sent_at)
    ledger.batch_done(generation, 10, RuntimeError("gone"), sent_at=sent_at)  # not timed
    metrics = ProducerMetrics([], lambda: ledger.stats)
    sample = metrics.registry.get_sample_value
    assert sample("sensorsim_ack_latency_seconds_count") == 2
    assert sample("sensorsim_ack_latency_seconds_sum") == pytest.approx(0.304)
    assert sample("sensorsim_ack_latency_seconds_bucket", {"le": "0.005"}) == 1
    assert sample("sensorsim_ack_latency_seconds_bucket", {"le": "0.25"}) == 1
    assert sample("sensorsim_ack_latency_seconds_bucket", {"le": "0.5"}) == 2
    assert sample("sensorsim_ack_latency_seconds_bucket", {"le": "+Inf"}) == 2


def sensorsim(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).parent / "sensorsim"
    return subprocess.run(
        [str(command), *args],
        cwd=REPO,
        env={**os.environ, "HTTP_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.subprocess
def test_the_installed_command_prints_its_version() -> None:
    result = sensorsim("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sensorsim {metadata.version('sensorsim')}"


@pytest.mark.subprocess
def test_run_with_options_and_progress_only_when_asked() -> None:
    args = ("run", "--sink", "stdout", "--machines", "4", "--interval", "50", "--seed", "3",
            "--duration", "1.2")  # fmt: skip
    quiet = sensorsim(*args, NUM_MACHINES="2")  # standard error is a pipe here: no progress
    assert quiet.returncode == 0, quiet.stderr
    assert "progress:" not in quiet.stderr
    machines = {line.split('"machine_id":"')[1][:8] for line in quiet.stdout.splitlines()}
    assert len(machines) == 4  # the option won over NUM_MACHINES
    loud = sensorsim(*args, "--progress", "--progress-interval", "0.3")
    assert loud.returncode == 0, loud.stderr
    progress = [line for line in loud.stderr.splitlines() if line.startswith("progress:")]
    assert progress, loud.stderr
    assert "0/4 machines failing" in progress[0] or "/4 machines failing" in progress[0]
