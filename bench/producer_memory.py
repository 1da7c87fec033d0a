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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from producer.settings import DEFAULT_DATA_FILE
from sensorsim_operator.children import pod_resources

MIB = 2**20

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
    return usage.ru_maxrss / 1024  # KiB


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
    measured: dict[tuple[int, int], float] = {}
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
                    measured[machines, sensors] = peak_rss_mib(run, kafka_env)
                    kafka = f"{measured[machines, sensors]:,.0f}"
                print(f"{machines:>9,} | {sensors:>7} | {stdout:>15,.0f} | {kafka:>14}", flush=True)
    print()
    if len(measured) >= len(MemoryFormula.__dataclass_fields__):
        print_fit(measured)


@dataclass(frozen=True)
class MemoryFormula:
    """``base + per_sensor x sensors + machines x (per_machine + per_machine_sensor x sensors)
    + min(machines, pending) x (per_pending + per_pending_sensor x sensors)``, in bytes, with
    ``pending`` the most records the Kafka client may hold (1.5 x the default
    ``KAFKA_MAX_PENDING_RECORDS``: the producer hands records over in slices of half of it)."""

    base: float
    per_sensor: float
    per_machine: float
    per_machine_sensor: float
    per_pending: float
    per_pending_sensor: float

    PENDING = pod_resources.DEFAULT_MAX_PENDING * 3 // 2

    @staticmethod
    def terms(machines: int, sensors: int) -> list[float]:
        pending = min(machines, MemoryFormula.PENDING)
        return [1.0, sensors, machines, machines * sensors, pending, pending * sensors]

    def need(self, machines: int, sensors: int) -> float:
        coefficients = (self.base, self.per_sensor, self.per_machine, self.per_machine_sensor,
                        self.per_pending, self.per_pending_sensor)  # fmt: skip
        return float(np.dot(coefficients, self.terms(machines, sensors)))

    def __str__(self) -> str:
        return (
            f"{self.base / MIB:,.0f} MiB + {self.per_sensor / 1024:,.0f} KiB x sensors + "
            f"machines x ({self.per_machine:,.0f} B + {self.per_machine_sensor:,.0f} B x sensors)"
            f" + min(machines, {self.PENDING:,}) x ({self.per_pending:,.0f} B + "
            f"{self.per_pending_sensor:,.0f} B x sensors)"
        )


def fitted_formula(measured: dict[tuple[int, int], float]) -> MemoryFormula:
    """The formula whose relative errors at the points have the least sum of squares."""
    points = sorted(measured)
    terms = np.array([MemoryFormula.terms(m, s) for m, s in points])
    weights = 1.0 / np.array([measured[p] * MIB for p in points])
    solution = np.linalg.lstsq(terms * weights[:, None], np.ones(len(points)), rcond=None)[0]
    return MemoryFormula(*(float(c) for c in solution))


def print_fit(measured: dict[tuple[int, int], float]) -> None:
    """The least-squares formula of the Kafka sink's points, and every point's error against
    it and against the operator's formula (``pod_resources``)."""
    fit = fitted_formula(measured)
    print(f"least-squares fit (relative error), Kafka sink: need = {fit}")
    print("the operator's formula: pod_resources.need_bytes")
    print(f"{'machines':>9} | {'sensors':>7} | {'measured MiB':>12} | {'fit':>7} | {'operator':>8}")
    for (machines, sensors), mib in sorted(measured.items()):
        needs = (fit.need(machines, sensors), pod_resources.need_bytes(machines, 1, sensors))
        errors = [need / (mib * MIB) - 1.0 for need in needs]
        print(f"{machines:>9,} | {sensors:>7} | {mib:>12,.0f} | {errors[0]:>+7.1%} | "
              f"{errors[1]:>+8.1%}")  # fmt: skip
    print()
