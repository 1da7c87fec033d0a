"""Part (c) of the producer bench: the peak resident set size of ``python -m producer`` by
fleet size and sensors per machine, with the stdout sink and (given a broker) the Kafka sink.

Each run is a child process whose peak RSS comes from ``wait4``: the figure the operator's
memory formula (docs/operator.md, "Memory") is checked against.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from producer.settings import DEFAULT_DATA_FILE

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mib(command: list[str], env: dict[str, str]) -> float:
    """Peak resident set size (MiB) of a child process, from ``wait4``'s rusage."""
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=devnull, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        errors = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed: {errors[-2000:]}")
    return usage.ru_maxrss / 1024


def wide_reference(sensors: int, directory: Path) -> Path:
    """The bundled reference table with its sensor columns repeated to ``sensors`` columns
    (``Sensor 1`` .. ``Sensor N``, then the label): a stand-in for a wider table of the same
    length, so the producer's memory can be measured by sensor count."""
    lines = DEFAULT_DATA_FILE.read_text().splitlines()
    rows = [line.split(",") for line in lines[1:] if line]
    width = len(lines[0].split(",")) - 1
    header = [f"Sensor {i + 1}" for i in range(sensors)] + ["Label"]
    path = directory / f"sensors-{sensors}.csv"
    body = (",".join([row[i % width] for i in range(sensors)] + [row[width]]) for row in rows)
    path.write_text("\n".join([",".join(header), *body]) + "\n")
    return path


def print_peak_rss(
    bootstrap: str | None, machines_grid: list[int], sensors_grid: list[int]
) -> None:
    """Peak RSS of ``python -m producer`` by fleet size and sensors, 3 cycles at full speed."""
    print("(c) peak RSS of `python -m producer`, 3 cycles at full speed")
    print(f"{'machines':>9} | {'sensors':>7} | {'stdout sink MiB':>15} | {'Kafka sink MiB':>14}")
    print("-" * 56)
    with tempfile.TemporaryDirectory() as directory:
        for machines in machines_grid:
            for sensors in sensors_grid:
                env = {**os.environ, "NUM_MACHINES": str(machines), "NUM_SENSORS": str(sensors),
                       "SIMULATION_INTERVAL_MS": "0", "HTTP_PORT": "0",
                       "SIMULATION_SEED": "1"}  # fmt: skip
                if sensors > 20:
                    env["SENSOR_DATA_FILE"] = str(wide_reference(sensors, Path(directory)))
                run = [sys.executable, "-m", "producer", "--max-messages", str(3 * machines)]
                stdout = peak_rss_mib([*run, "--sink", "stdout"], env)
                kafka = "-"
                if bootstrap is not None:
                    topic = f"bench-rss-{uuid.uuid4().hex[:8]}"
                    # The final flush must see every record acknowledged, however long a
                    # million machines' cycles take on a shared broker: a failed run measures
                    # nothing.
                    kafka_env = {**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                                 "KAFKA_TOPIC": topic, "KAFKA_CREATE_TOPIC": "true",
                                 "SHUTDOWN_GRACE_SECONDS": "1800"}  # fmt: skip
                    kafka = f"{peak_rss_mib(run, kafka_env):,.0f}"
                print(f"{machines:>9,} | {sensors:>7} | {stdout:>15,.0f} | {kafka:>14}", flush=True)
    print()
