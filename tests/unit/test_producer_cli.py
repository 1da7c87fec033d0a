"""``python -m producer`` as a user runs it: help, profile, errors, shards, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from producer.settings import env_table
from tests.producer_process import run_producer
from tests.synthetic_reference import SPECS, generate

pytestmark = pytest.mark.subprocess  # runs python -m producer

REPO = Path(__file__).resolve().parents[2]


def test_help_documents_commands_options_and_every_variable() -> None:
    result = run_producer("--help")
    assert result.returncode == 0
    for text in ("--sink", "--max-messages", "--duration", "profile", "exit codes"):
        assert text in result.stdout
    for name, _, _ in env_table():
        assert name in result.stdout
    profile_help = run_producer("profile", "--help")
    assert "--file" in profile_help.stdout


def test_profile_of_the_original_file(original_reference_csv: Path) -> None:
    result = run_producer("profile", "--file", str(original_reference_csv))
    assert result.returncode == 0, result.stderr
    assert "Sensor 0 " in result.stdout
    assert "Sensor 19" in result.stdout
    assert "'1' (10 rows)" in result.stdout


def test_stdout_run_on_the_original_file_emits_its_sensor_names(
    original_reference_csv: Path,
) -> None:
    result = run_producer(
        "--sink", "stdout", "--max-messages", "4",
        SENSOR_DATA_FILE=str(original_reference_csv), NUM_MACHINES="2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    body = orjson.loads(result.stdout.splitlines()[0])
    assert list(body["readings"]["readings"]) == [f"Sensor {n}" for n in range(20)]


def test_a_narrower_file_is_used_whole_unless_num_sensors_asks_for_more(tmp_path: Path) -> None:
    path = tmp_path / "six.csv"
    path.write_text(generate(SPECS[2]).to_csv(index=False))  # Sensor 0 .. Sensor 5
    result = run_producer(
        "--sink", "stdout", "--max-messages", "2", SENSOR_DATA_FILE=str(path), NUM_MACHINES="2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    body = orjson.loads(result.stdout.splitlines()[0])
    assert list(body["readings"]["readings"]) == [f"Sensor {n}" for n in range(6)]
    explicit = run_producer("--sink", "stdout", SENSOR_DATA_FILE=str(path), NUM_SENSORS="20")
    assert explicit.returncode == 2
    assert "has 6 sensor columns" in explicit.stderr
    assert "NUM_SENSORS=20" in explicit.stderr


def test_fidelity_command_reports_every_bound(tmp_path: Path) -> None:
    result = run_producer(
        "fidelity", "--machines", "50", "--cycles", "400", "--plot", str(tmp_path / "f.png")
    )
    assert result.returncode == 0, result.stderr
    for line in ("KS distance", "rank-correlation gap", "signature gap", "cross-validation",
                 "lag-1 autocorrelation"):  # fmt: skip
        assert line in result.stdout
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run_producer("fidelity", "--cycles", "100", "--burn-in", "150")
    assert bad.returncode == 2
    assert "--cycles (100) must be above --burn-in (150)" in bad.stderr


def test_invalid_configuration_is_one_line_exit_2() -> None:
    result = run_producer("--sink", "stdout", NUM_MACHINES="0", FAILURE_PROBABILITY="2")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "NUM_MACHINES" in result.stderr
    assert "FAILURE_PROBABILITY" in result.stderr


def test_unreachable_broker_is_one_line_exit_3() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        result = run_producer(
            "--max-messages", "1",
            KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", KAFKA_CONNECT_TIMEOUT_MS="1500",
            SIMULATION_SEED="1",
        )  # fmt: skip
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in errors[0]
    assert "KAFKA_BOOTSTRAP_SERVERS" in errors[0]


def bodies_by_machine(stdout: str) -> dict[str, list[bytes]]:
    machines: dict[str, list[bytes]] = defaultdict(list)
    for line in stdout.splitlines():
        body = orjson.loads(line)
        body["timestamp"] = None
        machines[body["machine_id"]].append(orjson.dumps(body))
    return machines


def test_one_shard_and_three_shards_emit_identical_machine_sequences() -> None:
    env = {"NUM_MACHINES": "10", "SIMULATION_SEED": "42", "SIMULATION_NAME": "plant-7",
           "MESSAGE_FORMAT": "extended", "FAILURE_PROBABILITY": "0.2",
           "FAILURE_MIN_CYCLES": "2", "FAILURE_MAX_CYCLES": "5"}  # fmt: skip
    cycles = 30
    whole = run_producer("--sink", "stdout", "--max-messages", str(10 * cycles), **env)
    assert whole.returncode == 0, whole.stderr
    expected = bodies_by_machine(whole.stdout)
    combined: dict[str, list[bytes]] = {}
    for index, size in enumerate([4, 3, 3]):
        part = run_producer(
            "--sink", "stdout", "--max-messages", str(size * cycles),
            SHARD_COUNT="3", SHARD_INDEX=str(index), **env,
        )  # fmt: skip
        assert part.returncode == 0, part.stderr
        shard = bodies_by_machine(part.stdout)
        assert len(shard) == size
        combined.update(shard)
    assert combined == expected
    assert all(len(seq) == cycles for seq in expected.values())


def test_sigterm_stops_after_a_whole_cycle_with_exit_0() -> None:
    env = {**os.environ, "HTTP_PORT": "0", "SIMULATION_INTERVAL_MS": "50", "NUM_MACHINES": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "producer", "--sink", "stdout"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    assert process.stdout is not None
    while b"simulating machines" not in process.stderr.readline():  # running
        assert process.poll() is None
    first_cycle = [process.stdout.readline() for _ in range(3)]  # a whole cycle is written
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = [line.rstrip(b"\n") for line in first_cycle] + out.splitlines()
    assert len(lines) >= 3
    assert len(lines) % 3 == 0  # whole cycles only
    assert b"stopped after" in err
