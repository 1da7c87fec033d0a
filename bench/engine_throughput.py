"""Part (a) of the producer bench: engine + serialisation, messages per CPU second, one core.

The vectorised engine and encoder (both simulation models, and the learned one with dynamics
learned from a time column) are measured against a straightforward per-sensor Python
implementation of the original algorithm, so the table shows what vectorising buys on the
machine of the day; and the learned model with scenarios configured but none active against
the plain one, alternating runs, to show what configured scenarios cost while idle.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import median_high
from typing import Final

import numpy as np
import pandas as pd

from domain.machine_ids import machine_ids
from domain.messages import MessageFormat
from domain.reference_columns import ReferenceColumns
from domain.scenarios import Scenario, parse_scenarios
from domain.simulation_model import FailureModel, SimulationModel
from producer.serialisation import BodyEncoder
from producer.settings import DEFAULT_DATA_FILE
from producer.shard import scenario_fields
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile, load_profile

TIMESTAMP = "2026-11-29T12:34:56.789+00:00"

FAR_FUTURE: Final = 10**9
IDLE_SCENARIOS: Final = [
    {"target": {"machines": [17]}, "startCycle": FAR_FUTURE,
     "failure": {"type": "bearing_wear", "cycles": 50}},
    {"target": {"all": True}, "startCycle": FAR_FUTURE, "noFailures": {"cycles": 200}},
    {"target": {"fraction": 0.05}, "startCycle": FAR_FUTURE,
     "degradation": {"type": "overheating", "cycles": 1000}},
    {"target": {"all": True}, "startCycle": FAR_FUTURE,
     "quality": {"fault": "spike", "cycles": 100}},
    {"target": {"fraction": 0.1}, "startCycle": FAR_FUTURE,
     "quality": {"fault": "duplicate", "cycles": 100, "rate": 0.01}},
]  # fmt: skip
"""One scenario of each kind, none due before cycle 10**9: what configured scenarios cost
while none is active."""


class OriginalMachine:
    """The original producer's algorithm, one machine, written the straightforward way:
    a Python loop over sensors with numpy scalar draws, ``json.dumps`` per message (with the
    defects fixed that would change the work: one failure type per episode, real names)."""

    def __init__(self, profile: ReferenceProfile, machine_id: str) -> None:
        self.machine_id = machine_id
        self.names = list(profile.sensor_names)
        self.stats = [
            {
                "mean": float(profile.mean[j]),
                "std": float(profile.std[j]),
                "min": float(profile.lower[j]),
                "max": float(profile.upper[j]),
            }
            for j in range(len(self.names))
        ]
        self.patterns = [
            {
                "mean": profile.signature_mean[t].tolist(),
                "std": profile.signature_std[t].tolist(),
            }
            for t in range(len(profile.failure_types))
        ]
        self.values = [s["mean"] for s in self.stats]
        self.failure_active = False
        self.failure_cycle = 0
        self.failure_duration = 0
        self.pattern: dict[str, list[float]] | None = None

    def reading(self) -> bytes:
        readings = {}
        for j, name in enumerate(self.names):
            s = self.stats[j]
            value = self.values[j] + np.random.normal(0, s["std"] * 0.1)
            value += 0.05 * (s["mean"] - value)
            value = max(s["min"], min(s["max"], value))
            self.values[j] = value
            readings[name] = value
        if not self.failure_active and random.random() < 0.05:
            self.failure_active = True
            self.failure_cycle = 0
            self.failure_duration = random.randint(30, 60)
            self.pattern = random.choice(self.patterns)
        if self.failure_active and self.pattern is not None:
            self.failure_cycle += 1
            progress = min(1.0, self.failure_cycle / 10)
            for j, name in enumerate(self.names):
                target = np.random.normal(self.pattern["mean"][j], self.pattern["std"][j])
                readings[name] = readings[name] * (1 - progress) + target * progress
            if self.failure_cycle >= self.failure_duration:
                self.failure_active = False
        message = {
            "machine_id": self.machine_id,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "readings": {
                "readings": {k: round(v, 6) for k, v in readings.items()},
                "has_failure": self.failure_active,
            },
        }
        return json.dumps(message).encode()


def measure_baseline(
    profile: ReferenceProfile, machines: int, budget: float
) -> tuple[float, float]:
    """(messages per wall second, per CPU second) of the straightforward implementation (its
    cost per message does not depend on the fleet size, so large fleets are measured on their
    first 2,000 machines)."""
    fleet = [OriginalMachine(profile, i) for i in machine_ids("bench", range(min(machines, 2000)))]
    count = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        for machine in fleet:
            machine.reading()
        count += len(fleet)
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return count / elapsed, count / (time.process_time() - cpu_started)


def measure_vectorised(
    profile: ReferenceProfile,
    machines: int,
    budget: float,
    model: SimulationModel,
    scenarios: Sequence[Scenario] = (),
) -> tuple[float, float, float, float]:
    """(messages per wall second, per CPU second, engine share, encoder share) of
    ``engine.step`` + ``encoder.encode``; ``scenarios`` reach the engine and the encoder as
    in the producer (``producer.shard``)."""
    engine = SimulationEngine(
        profile,
        FailureModel(),
        first_machine=0,
        count=machines,
        seed=1,
        simulation_name="bench",
        model=model,
        scenarios=scenarios,
    )
    encoder = BodyEncoder(
        profile.sensor_names,
        machine_ids("bench", range(machines)),
        profile.failure_types,
        MessageFormat.ORIGINAL,
        max_abs_value=engine.max_abs_reading,
        scenarios=scenario_fields(engine),
    )
    encoder.encode(engine.step(), TIMESTAMP)  # warm up
    cycles = 0
    engine_time = encode_time = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        t0 = time.perf_counter()
        result = engine.step()
        t1 = time.perf_counter()
        encoder.encode(result, TIMESTAMP)
        t2 = time.perf_counter()
        engine_time += t1 - t0
        encode_time += t2 - t1
        cycles += 1
        elapsed = time.perf_counter() - started
        if elapsed >= budget and cycles >= 3:
            total = engine_time + encode_time
            cpu = time.process_time() - cpu_started
            return (
                machines * cycles / elapsed,
                machines * cycles / cpu,
                engine_time / total,
                encode_time / total,
            )


def timed_profile(directory: Path) -> ReferenceProfile:
    """The bundled rows with their row number as a time column: the learned model then runs a
    VAR(1) fitted to them."""
    frame = pd.read_csv(DEFAULT_DATA_FILE)
    frame.insert(0, "row", np.arange(len(frame)))
    path = directory / "timed.csv"
    frame.to_csv(path, index=False)
    return load_profile(path, 20, columns=ReferenceColumns(time="row"))


def print_engine_table(profile: ReferenceProfile, budget: float) -> None:
    """Part (a): the table of engine + serialisation throughput by fleet size."""
    print("(a) engine + serialisation, 20 sensors, original format, one core")
    print("    msg/s per CPU second of this process (wall-clock in brackets); both simulation")
    print("    models, the learned one against the original, and the original against a")
    print("    per-sensor Python implementation of the original algorithm")
    print(f"{'machines':>9} | {'learned CPU':>11} {'(wall)':>11} | {'original CPU':>12} "
          f"{'(wall)':>11} | {'learned/original':>16} | {'engine/encode':>13} | "
          f"{'per-sensor CPU':>14} | {'ratio':>6} | {'learned, dynamics':>17} "
          f"{'/original':>9}")  # fmt: skip
    print("-" * 156)
    with tempfile.TemporaryDirectory() as directory:
        timed = timed_profile(Path(directory))
    for machines in (1, 100, 10_000, 100_000):
        learned_wall, learned_cpu, _, _ = measure_vectorised(
            profile, machines, budget, SimulationModel.LEARNED
        )
        fast_wall, fast_cpu, engine_share, encode_share = measure_vectorised(
            profile, machines, budget, SimulationModel.ORIGINAL
        )
        _, slow_cpu = measure_baseline(profile, machines, budget)
        _, dynamics_cpu, _, _ = measure_vectorised(timed, machines, budget, SimulationModel.LEARNED)
        print(
            f"{machines:>9,} | {learned_cpu:>11,.0f} ({learned_wall:>9,.0f}) | "
            f"{fast_cpu:>12,.0f} ({fast_wall:>9,.0f}) | {learned_cpu / fast_cpu:>15.2f}x | "
            f"{engine_share:>6.0%}/{encode_share:<6.0%} | {slow_cpu:>14,.0f} | "
            f"{fast_cpu / slow_cpu:>5.1f}x | {dynamics_cpu:>17,.0f} "
            f"{dynamics_cpu / fast_cpu:>8.2f}x"
        )
    idle_scenarios_row(profile, budget)
    print()


def idle_scenarios_row(profile: ReferenceProfile, budget: float, machines: int = 10_000) -> None:
    """The learned model with ``IDLE_SCENARIOS`` configured against the plain learned model,
    three alternating runs each; the ratio of the medians (CPU)."""
    scenarios = parse_scenarios(IDLE_SCENARIOS)
    plain: list[float] = []
    idle: list[float] = []
    for _ in range(3):
        plain.append(measure_vectorised(profile, machines, budget, SimulationModel.LEARNED)[1])
        idle.append(
            measure_vectorised(profile, machines, budget, SimulationModel.LEARNED, scenarios)[1]
        )
    ratio = median_high(idle) / median_high(plain)
    print(
        f"learned, scenarios configured, none active ({len(scenarios)} scenarios, all from cycle "
        f"{FAR_FUTURE:,}), {machines:,} machines, 3 alternating runs, msg/s per CPU second:"
    )
    print(f"    plain learned {median_high(plain):,.0f} ({', '.join(f'{r:,.0f}' for r in plain)})")
    print(f"    with scenarios {median_high(idle):,.0f} ({', '.join(f'{r:,.0f}' for r in idle)})")
    print(f"    ratio with scenarios / plain (medians): {ratio:.3f} (cost {1 - ratio:.1%})")
